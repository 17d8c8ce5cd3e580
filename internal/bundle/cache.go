package bundle

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// The build cache. A build is reused when its inputs have not changed: the
// key is a SHA-256 over
//
//   - the build's command line and environment overrides (BuildArgs,
//     BuildEnv: target, tags, flags) and the package built;
//   - the Go toolchain: the resolved path, size and modification time of
//     the go command, its GOROOT's VERSION file, and $GOTOOLCHAIN;
//   - the SHA-256 of the RDS CA bundle shipped beside the binary (which
//     may come from outside the module: Options.CABundle);
//   - every file of the module that can go into the binary: go.mod, go.sum,
//     and each file under the module directory except tests (*_test.go),
//     testdata and hidden directories, and nested modules.
//
// That over-approximates the package's dependencies (any source change in
// the module rebuilds) and costs a few milliseconds, where asking the go
// command costs hundreds. The key is computed before and after a build, and
// stored beside the zip ("<zip>.key") only when both agree, so a tree edited
// during the build is never recorded as its input. A reused artifact is the
// zip a fresh build wrote, byte for byte.

// keySuffix names the file beside the zip that holds its inputs' key.
const keySuffix = ".key"

// cacheKey returns the hex key of a build of pkg in moduleDir.
func cacheKey(goCmd, moduleDir, pkg, goos, goarch string, caBundle []byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "paydr bundle cache v2\nargs %q\nenv %q\nca %x\n", BuildArgs("OUT", pkg), BuildEnv(goos, goarch), sha256.Sum256(caBundle))
	if err := hashToolchain(h, goCmd); err != nil {
		return "", err
	}
	root, err := findModuleRoot(moduleDir)
	if err != nil {
		return "", err
	}
	if err := hashModule(h, root); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashToolchain writes what identifies the go command that builds.
func hashToolchain(w io.Writer, goCmd string) error {
	path, err := exec.LookPath(goCmd)
	if err != nil {
		return fmt.Errorf("bundle: cache: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("bundle: cache: %w", err)
	}
	version, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(path)), "VERSION"))
	fmt.Fprintf(w, "go %s %d %d\nVERSION %q\nGOTOOLCHAIN %q\n", path, fi.Size(), fi.ModTime().UnixNano(), version, os.Getenv("GOTOOLCHAIN"))
	return nil
}

// findModuleRoot returns the directory of the go.mod governing dir.
func findModuleRoot(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("bundle: cache: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("bundle: cache: no go.mod in %s or above", abs)
		}
	}
}

// hashModule writes the name and content of every file under root that can
// go into a binary, in a fixed order.
func hashModule(w io.Writer, root string) error {
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module is not ours
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(name, "_test.go") || strings.HasPrefix(name, ".") {
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return fmt.Errorf("bundle: cache: %w", err)
	}
	slices.Sort(files)
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("bundle: cache: %w", err)
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(w, "file %q %d\n", filepath.ToSlash(rel), len(data))
		w.Write(data)
	}
	return nil
}

// cached returns the artifact a build with key left in outDir, if its zip,
// binary and key are all there and agree.
func cached(outDir, zipName, key string) (Artifact, bool) {
	zipPath := filepath.Join(outDir, zipName)
	stored, err := os.ReadFile(zipPath + keySuffix)
	if err != nil || strings.TrimSpace(string(stored)) != key {
		return Artifact{}, false
	}
	bin := filepath.Join(outDir, BinaryName)
	if _, err := os.Stat(bin); err != nil {
		return Artifact{}, false
	}
	data, err := os.ReadFile(zipPath)
	if err != nil {
		return Artifact{}, false
	}
	sum := sha256.Sum256(data)
	return Artifact{BinaryPath: bin, ZipPath: zipPath, SHA256Base64: base64.StdEncoding.EncodeToString(sum[:]), Size: int64(len(data)), Reused: true}, true
}

// remember records key as the inputs of the zip at zipPath.
func remember(zipPath, key string) error {
	if err := writeFileAtomic(zipPath+keySuffix, []byte(key+"\n")); err != nil {
		return err
	}
	return nil
}

// forget removes a zip's key, before the zip is rewritten.
func forget(zipPath string) error {
	if err := os.Remove(zipPath + keySuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bundle: cache: %w", err)
	}
	return nil
}
