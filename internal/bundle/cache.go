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
	"syscall"
	"time"
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
//     and each file of a package directory (one holding a non-test .go
//     file) or of a directory below one (what //go:embed can reach), except
//     tests (*_test.go), testdata and hidden directories, and nested
//     modules. Directories outside every package, such as paydr synth's
//     default output cdktf.out/ (which holds this very zip), are not
//     hashed: writing them does not make the next build miss.
//
// That over-approximates the package's dependencies (any source change in
// the module rebuilds) and costs a few milliseconds, where asking the go
// command costs hundreds. The module's files are read only when their
// fingerprint (names, sizes, modification times) differs from the one
// remembered beside the artifact ("<zip>.files"): like make and rsync, an
// edit that keeps a file's size and modification time is not seen. The key is computed before and after a build, and
// stored beside the zip ("<zip>.key") only when both agree, so a tree edited
// during the build is never recorded as its input. A reused artifact is the
// zip a fresh build wrote, byte for byte.

// keySuffix names the file beside the zip that holds its inputs' key.
const keySuffix = ".key"

// cacheKey returns the hex key of a build of pkg in moduleDir, shipped
// with caBundle. memo, when not empty, is a file that remembers the
// module's digest with the fingerprint (names, sizes, modification times)
// of the files it was read from: while the fingerprint is unchanged the
// files are not read again, which is most of a reuse's cost.
func cacheKey(goCmd, moduleDir, pkg, goos, goarch, memo string, caBundle []byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "paydr bundle cache v2\nargs %q\nenv %q\nca %x\n", BuildArgs("OUT", pkg), BuildEnv(goos, goarch), sha256.Sum256(caBundle))
	if err := hashToolchain(h, goCmd); err != nil {
		return "", err
	}
	root, err := findModuleRoot(moduleDir)
	if err != nil {
		return "", err
	}
	digest, err := moduleDigest(root, memo)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "module %s\n", digest)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// memoSuffix names the file beside an artifact that remembers its module's
// digest (see cacheKey).
const memoSuffix = ".files"

// moduleDigest returns the hex SHA-256 of the module's files (hashModule),
// taken from memo when the files' fingerprint matches the one it records,
// and recorded there otherwise (best effort).
func moduleDigest(root, memo string) (string, error) {
	files, err := moduleFiles(root)
	if err != nil {
		return "", err
	}
	fp := sha256.New()
	for _, path := range files {
		fi, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("bundle: cache: %w", err)
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(fp, "%q %d %d\n", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano())
	}
	fingerprint := hex.EncodeToString(fp.Sum(nil))
	if memo != "" {
		if b, err := os.ReadFile(memo); err == nil {
			if f, d, ok := strings.Cut(strings.TrimSpace(string(b)), " "); ok && f == fingerprint {
				return d, nil
			}
		}
	}
	h := sha256.New()
	if err := hashModule(h, root, files); err != nil {
		return "", err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	if memo != "" {
		_ = writeFileAtomic(memo, []byte(fingerprint+" "+digest+"\n"))
	}
	return digest, nil
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

// moduleFiles returns every file under root that can go into a binary,
// sorted.
func moduleFiles(root string) ([]string, error) {
	var files []string
	pkgDirs := map[string]bool{} // directories holding a non-test .go file
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
		if strings.HasSuffix(name, ".go") {
			pkgDirs[filepath.Dir(path)] = true
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: cache: %w", err)
	}
	files = slices.DeleteFunc(files, func(path string) bool {
		dir := filepath.Dir(path)
		if dir == root && (filepath.Base(path) == "go.mod" || filepath.Base(path) == "go.sum") {
			return false
		}
		for d := dir; ; d = filepath.Dir(d) {
			if pkgDirs[d] {
				return false
			}
			if d == root || filepath.Dir(d) == d {
				return true
			}
		}
	})
	slices.Sort(files)
	return files, nil
}

// hashModule writes the name and content of files, each under root.
func hashModule(w io.Writer, root string, files []string) error {
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
// binary and key are all there and agree. The zip's digest comes from the
// key file when it records one for a zip of the size found, so a reuse does
// not read the zip.
func cached(outDir, zipName, key string) (Artifact, bool) {
	zipPath := filepath.Join(outDir, zipName)
	stored, err := os.ReadFile(zipPath + keySuffix)
	if err != nil {
		return Artifact{}, false
	}
	lines := strings.Split(strings.TrimSpace(string(stored)), "\n")
	if lines[0] != key {
		return Artifact{}, false
	}
	bin := filepath.Join(outDir, BinaryName)
	if _, err := os.Stat(bin); err != nil {
		return Artifact{}, false
	}
	fi, err := os.Stat(zipPath)
	if err != nil {
		return Artifact{}, false
	}
	art := Artifact{BinaryPath: bin, ZipPath: zipPath, Size: fi.Size(), Reused: true}
	var size int64
	if len(lines) == 2 {
		if _, err := fmt.Sscanf(lines[1], "sha256 %s size %d", &art.SHA256Base64, &size); err == nil && size == fi.Size() {
			return art, true
		}
	}
	data, err := os.ReadFile(zipPath)
	if err != nil {
		return Artifact{}, false
	}
	sum := sha256.Sum256(data)
	art.SHA256Base64, art.Size = base64.StdEncoding.EncodeToString(sum[:]), int64(len(data))
	return art, true
}

// remember records key as the inputs of the file at path, with the zip's
// digest (base64 SHA-256) and size when digest is not empty.
func remember(path, key, digest string, size int64) error {
	content := key + "\n"
	if digest != "" {
		content += fmt.Sprintf("sha256 %s size %d\n", digest, size)
	}
	return writeFileAtomic(path+keySuffix, []byte(content))
}

// forget removes a zip's key, before the zip is rewritten.
func forget(zipPath string) error {
	if err := os.Remove(zipPath + keySuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bundle: cache: %w", err)
	}
	return nil
}

// The shared cache: artifacts by key in one directory for every output
// directory, so that a new one (a new local state directory, paydr synth
// --out elsewhere) copies the zip of an unchanged tree instead of building
// it (a cross-compile, link and deflate: 3-4 s with a warm Go build cache).
// Each entry is a directory named by the key holding the binary and the
// zip; it is written under a temporary name and renamed into place, so a
// reader sees all of it or none, and concurrent builds of the same key keep
// the first. The newest sharedKeep entries are kept.

// EnvSharedCache names the environment variable that sets SharedCacheDir's
// directory; "off" turns the shared cache off.
const EnvSharedCache = "PAYDR_BUNDLE_CACHE"

// sharedKeep is how many entries the shared cache keeps (each about 17 MB).
const sharedKeep = 8

// SharedCacheDir returns the shared cache directory: $PAYDR_BUNDLE_CACHE,
// else paydr/bundle under the user's cache directory; "" when the variable
// is "off" or there is no user cache directory.
func SharedCacheDir() string {
	if d := os.Getenv(EnvSharedCache); d != "" {
		if d == "off" {
			return ""
		}
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "paydr", "bundle")
}

// shared entry file names.
const (
	sharedBinary = "bootstrap"
	sharedZip    = "zip"
)

// fromShared copies the shared cache's entry for key, if any, into outDir
// as the binary and zipName, records key beside the zip, and returns the
// artifact.
func fromShared(dir, key, outDir, zipName string) (Artifact, bool) {
	if dir == "" {
		return Artifact{}, false
	}
	entry := filepath.Join(dir, key)
	zipData, err := os.ReadFile(filepath.Join(entry, sharedZip))
	if err != nil {
		return Artifact{}, false
	}
	binData, err := os.ReadFile(filepath.Join(entry, sharedBinary))
	if err != nil {
		return Artifact{}, false
	}
	bin, zipPath := filepath.Join(outDir, BinaryName), filepath.Join(outDir, zipName)
	if forget(zipPath) != nil || writeFileAtomic(bin, binData) != nil || os.Chmod(bin, 0o755) != nil || writeFileAtomic(zipPath, zipData) != nil {
		return Artifact{}, false
	}
	sum := sha256.Sum256(zipData)
	digest := base64.StdEncoding.EncodeToString(sum[:])
	if remember(zipPath, key, digest, int64(len(zipData))) != nil {
		return Artifact{}, false
	}
	now := time.Now()
	_ = os.Chtimes(entry, now, now) // most recently used: kept longest
	return Artifact{BinaryPath: bin, ZipPath: zipPath, SHA256Base64: digest, Size: int64(len(zipData)), Reused: true}, true
}

// toShared adds the binary and zip of key to the shared cache in dir and
// trims it to its newest sharedKeep entries.
func toShared(dir, key string, binData, zipData []byte) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // gone after the rename, unless it failed
	if err := os.WriteFile(filepath.Join(tmp, sharedBinary), binData, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, sharedZip), zipData, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// Rename refuses to replace a directory that holds files (ENOTEMPTY, or
	// EEXIST): another build stored the same key first, which is as good.
	if err := os.Rename(tmp, filepath.Join(dir, key)); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return err
	}
	return trimShared(dir, sharedKeep)
}

// trimShared removes all but the keep most recently used entries of dir.
func trimShared(dir string, keep int) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type entry struct {
		name string
		used time.Time
	}
	var es []entry
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			es = append(es, entry{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(es, func(a, b entry) int { return b.used.Compare(a.used) })
	for _, e := range es[min(keep, len(es)):] {
		_ = os.RemoveAll(filepath.Join(dir, e.name))
	}
	return nil
}
