package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// ModulePath is the module paydr's packages are in.
const ModulePath = "paydr"

// ModuleRoot returns the root of the paydr checkout holding dir (the
// current directory when empty): the directory of the nearest go.mod
// above it, which must declare module paydr.
func ModuleRoot(dir string) (string, error) {
	root, err := findModuleRoot(dir)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("bundle: %w", err)
	}
	if p := modulePath(data); p != ModulePath {
		return "", fmt.Errorf("bundle: %s is module %q, not %s", root, p, ModulePath)
	}
	return root, nil
}

// ToolOptions configure BuildTool.
type ToolOptions struct {
	ModuleDir string    // required: the module's root
	Package   string    // required: the command's package
	OutDir    string    // required: where the binary is written
	Name      string    // required: the binary's name in OutDir
	Go        string    // go command (default "go")
	Progress  io.Writer // when set, told when a build starts
}

// BuildTool builds the command o.Package for this machine into
// o.OutDir/o.Name, with the flags and build cache of Build: an earlier
// build whose inputs are unchanged is reused, and its path returned at the
// cost of hashing the module's files. The binary is written under a
// temporary name and renamed, so processes building it at once each see a
// whole binary.
func BuildTool(ctx context.Context, o ToolOptions) (string, error) {
	goCmd := or(o.Go, "go")
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return "", fmt.Errorf("bundle: build %s: %w", o.Package, err)
	}
	bin := filepath.Join(o.OutDir, o.Name)
	key, _ := cacheKey(goCmd, o.ModuleDir, o.Package, runtime.GOOS, runtime.GOARCH, bin+memoSuffix, nil)
	if key != "" {
		stored, err := os.ReadFile(bin + keySuffix)
		if _, serr := os.Stat(bin); err == nil && serr == nil && strings.TrimSpace(string(stored)) == key {
			return bin, nil
		}
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "building %s ...\n", o.Package)
	}
	tmp, err := os.CreateTemp(o.OutDir, "."+o.Name+"-*")
	if err != nil {
		return "", fmt.Errorf("bundle: build %s: %w", o.Package, err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.CommandContext(ctx, goCmd, BuildArgs(tmp.Name(), o.Package)...)
	cmd.Dir = o.ModuleDir
	cmd.Env = append(os.Environ(), BuildEnv(runtime.GOOS, runtime.GOARCH)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bundle: go build %s: %w: %s", o.Package, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", fmt.Errorf("bundle: build %s: %w", o.Package, err)
	}
	if err := forget(bin); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("bundle: build %s: %w", o.Package, err)
	}
	if key != "" {
		if after, _ := cacheKey(goCmd, o.ModuleDir, o.Package, runtime.GOOS, runtime.GOARCH, bin+memoSuffix, nil); after == key {
			if err := remember(bin, key, "", 0); err != nil {
				return "", err
			}
		}
	}
	return bin, nil
}

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(strings.SplitN(rest, "//", 2)[0]), `"`)
		}
	}
	return ""
}
