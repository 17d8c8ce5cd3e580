package bundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/bundle"
	"paydr/internal/bundle/rdsca"
)

// moduleRoot is the module directory (tests run in the package directory).
const moduleRoot = "../.."

func TestWriteZipIsDeterministic(t *testing.T) {
	files := map[string][]byte{"bootstrap": []byte("\x7fELF binary"), "a.txt": []byte("first")}
	var a, b bytes.Buffer
	if err := bundle.WriteZip(&a, files); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the wall clock must not matter
	if err := bundle.WriteZip(&b, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("WriteZip output differs between runs")
	}
	zr, err := zip.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()))
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		Name    string
		Mode    os.FileMode
		ModTime time.Time
		Method  uint16
		Content string
	}
	var got []entry
	for _, f := range zr.File {
		rc, _ := f.Open()
		content, _ := io.ReadAll(rc)
		rc.Close()
		got = append(got, entry{f.Name, f.Mode(), f.Modified.UTC(), f.Method, string(content)})
	}
	want := []entry{
		{"a.txt", 0o644, bundle.ZipTime, zip.Deflate, "first"},
		{"bootstrap", 0o755, bundle.ZipTime, zip.Deflate, "\x7fELF binary"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("zip entries mismatch (-want +got):\n%s", diff)
	}
}

func TestBuildTwiceIsIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("bundle: skipping the arm64 build in -short mode")
	}
	ctx := context.Background()
	first, err := bundle.Build(ctx, bundle.Options{OutDir: t.TempDir(), ModuleDir: moduleRoot})
	if err != nil {
		t.Fatalf("Build error = %v", err)
	}
	second, err := bundle.Build(ctx, bundle.Options{OutDir: t.TempDir(), ModuleDir: moduleRoot})
	if err != nil {
		t.Fatalf("Build (again) error = %v", err)
	}
	a, _ := os.ReadFile(first.ZipPath)
	b, _ := os.ReadFile(second.ZipPath)
	if !bytes.Equal(a, b) || first.SHA256Base64 != second.SHA256Base64 {
		t.Errorf("two builds differ: %s vs %s", first.SHA256Base64, second.SHA256Base64)
	}
	if filepath.Base(first.ZipPath) != "processor.zip" || first.Size != int64(len(a)) {
		t.Errorf("artifact = %+v, want processor.zip of %d bytes", first, len(a))
	}
	f, err := elf.Open(first.BinaryPath)
	if err != nil {
		t.Fatalf("bootstrap is not ELF: %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 {
		t.Errorf("bootstrap machine = %v, want EM_AARCH64", f.Machine)
	}
	t.Logf("processor.zip: %d bytes, source_code_hash %s", first.Size, first.SHA256Base64)
}

// TestBuildReusesUnchangedInputs: a second build with the same inputs
// reuses the first one's zip, byte-identical to a fresh build; a change to
// anything that can go into the binary rebuilds, and a change to a test or
// testdata does not.
func TestBuildReusesUnchangedInputs(t *testing.T) {
	mod, write := helloModule(t)
	out := t.TempDir()
	ctx := context.Background()
	ca := "" // Options.CABundle of every build
	build := func(o bundle.Options) bundle.Artifact {
		t.Helper()
		o.ModuleDir, o.Package, o.GOARCH, o.CABundle = mod, "example.com/m", "amd64", ca
		if o.OutDir == "" {
			o.OutDir = out
		}
		art, err := bundle.Build(ctx, o)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return art
	}
	first := build(bundle.Options{})
	steps := []struct {
		name   string
		change func()
		reused bool
	}{
		{"unchanged", func() {}, true},
		{"a test file added", func() { write("main_test.go", "package main\n") }, true},
		{"testdata changed", func() { write("testdata/x.txt", "x") }, true},
		{"source changed", func() { write("main.go", "package main\n\nfunc main() { println(\"two\") }\n") }, false},
		{"unchanged again", func() {}, true},
		{"a new non-test file", func() { write("extra.go", "package main\n\nvar _ = 1\n") }, false},
		{"go.mod changed", func() { write("go.mod", "module example.com/m\n\ngo 1.25\n") }, false},
		{"another CA bundle", func() { ca = writeCABundle(t, rdsca.Global()[:rdsCertEnd(t)]) }, false},
		{"the same CA bundle again", func() { ca = writeCABundle(t, rdsca.Global()[:rdsCertEnd(t)]) }, true},
		{"the committed CA bundle", func() { ca = "" }, false},
	}
	prev := first
	for _, s := range steps {
		s.change()
		got := build(bundle.Options{})
		if got.Reused != s.reused {
			t.Errorf("%s: Reused = %v, want %v", s.name, got.Reused, s.reused)
		}
		if s.reused && got.SHA256Base64 != prev.SHA256Base64 {
			t.Errorf("%s: reused artifact hash %s, want the previous %s", s.name, got.SHA256Base64, prev.SHA256Base64)
		}
		fresh := build(bundle.Options{OutDir: t.TempDir(), NoCache: true})
		a, _ := os.ReadFile(got.ZipPath)
		b, _ := os.ReadFile(fresh.ZipPath)
		if !bytes.Equal(a, b) || got.SHA256Base64 != fresh.SHA256Base64 || fresh.Reused {
			t.Errorf("%s: artifact differs from a fresh build (%s vs %s)", s.name, got.SHA256Base64, fresh.SHA256Base64)
		}
		prev = got
	}
	if prev.SHA256Base64 == first.SHA256Base64 {
		t.Error("the source changes did not change the artifact")
	}
	// A zip rewritten behind the cache (another size) is hashed again, not
	// taken at the recorded digest.
	if err := os.WriteFile(prev.ZipPath, []byte("not the zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := build(bundle.Options{}); !got.Reused || got.Size != int64(len("not the zip")) || got.SHA256Base64 == prev.SHA256Base64 {
		t.Errorf("after the zip was rewritten: Reused %v, Size %d, SHA256 %s; want the rewritten zip's size and digest", got.Reused, got.Size, got.SHA256Base64)
	}
	// A zip whose key is gone is rebuilt, not trusted.
	if err := os.Remove(prev.ZipPath + ".key"); err != nil {
		t.Fatal(err)
	}
	if got := build(bundle.Options{}); got.Reused {
		t.Error("Reused = true without a key file")
	}
}

// TestBuildReusesWithOutputInModule: the default layout, paydr synth's
// cdktf.out/ inside the checkout, still reuses the build. Files outside
// every package directory (the build's own output, the synthesized stacks,
// documents) are not inputs; a file a package can embed is.
func TestBuildReusesWithOutputInModule(t *testing.T) {
	mod := t.TempDir()
	write := moduleWriter(t, mod)
	write("go.mod", "module example.com/m\n\ngo 1.24\n")
	write("cmd/m/main.go", "package main\n\nimport \"example.com/m/internal/p\"\n\nfunc main() { println(p.Data) }\n")
	write("internal/p/p.go", "package p\n\nimport _ \"embed\"\n\n//go:embed data/x.txt\nvar Data string\n")
	write("internal/p/data/x.txt", "one")
	ctx := context.Background()
	build := func() bundle.Artifact {
		t.Helper()
		art, err := bundle.Build(ctx, bundle.Options{ModuleDir: mod, Package: "example.com/m/cmd/m", GOARCH: "amd64", OutDir: filepath.Join(mod, "cdktf.out", "build")})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return art
	}
	build()
	steps := []struct {
		name   string
		change func()
		reused bool
	}{
		{"unchanged (the output and its key are in the module)", func() {}, true},
		{"a synthesized stack written", func() { write("cdktf.out/stacks/S/cdk.tf.json", "{}") }, true},
		{"a document outside every package", func() { write("docs/notes.md", "x") }, true},
		{"an embedded file changed", func() { write("internal/p/data/x.txt", "two") }, false},
		{"unchanged again", func() {}, true},
	}
	for _, s := range steps {
		s.change()
		if got := build(); got.Reused != s.reused {
			t.Errorf("%s: Reused = %v, want %v", s.name, got.Reused, s.reused)
		}
	}
}

// TestBuildToolReuses: BuildTool builds a command once and reuses it while
// its inputs are unchanged.
func TestBuildToolReuses(t *testing.T) {
	mod := t.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/m\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	main := filepath.Join(mod, "main.go")
	if err := os.WriteFile(main, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := bundle.ToolOptions{ModuleDir: mod, Package: "example.com/m", OutDir: filepath.Join(mod, ".bin"), Name: "m"}
	build := func() os.FileInfo {
		t.Helper()
		p, err := bundle.BuildTool(context.Background(), o)
		if err != nil {
			t.Fatalf("BuildTool: %v", err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	first := build()
	if again := build(); !os.SameFile(first, again) || !again.ModTime().Equal(first.ModTime()) {
		t.Error("BuildTool rebuilt an unchanged command")
	}
	if err := os.WriteFile(main, []byte("package main\n\nfunc main() { println() }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed := build(); os.SameFile(first, changed) {
		t.Error("BuildTool reused the binary of a changed command")
	}
}

// TestModuleRoot finds paydr's checkout from below it, and refuses another
// module.
func TestModuleRoot(t *testing.T) {
	root, err := bundle.ModuleRoot(".")
	if err != nil {
		t.Fatalf("ModuleRoot(.) error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "paydr")); err != nil {
		t.Errorf("ModuleRoot(.) = %s, which has no cmd/paydr", root)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.ModuleRoot(other); err == nil {
		t.Errorf("ModuleRoot(%s) error = nil, want one: it is module example.com/m", other)
	}
}

// TestBuildReadsFilesOnlyWhenTheyChange: a file rewritten with the same
// content (a new modification time) is read again and the build still
// reused; a change of content with the size and time kept is not seen (the
// documented limit of the quick check); any other change rebuilds.
func TestBuildReadsFilesOnlyWhenTheyChange(t *testing.T) {
	mod := t.TempDir()
	main := filepath.Join(mod, "main.go")
	write := func(content string, at time.Time) {
		t.Helper()
		if err := os.WriteFile(main, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(main, at, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module example.com/m\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	write("package main\n\nfunc main() { println(\"one\") }\n", t0)
	out := t.TempDir()
	build := func() bundle.Artifact {
		t.Helper()
		art, err := bundle.Build(context.Background(), bundle.Options{ModuleDir: mod, Package: "example.com/m", GOARCH: "amd64", OutDir: out})
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return art
	}
	build()
	steps := []struct {
		name   string
		change func()
		reused bool
	}{
		{"the same content, a new time", func() { write("package main\n\nfunc main() { println(\"one\") }\n", t0.Add(time.Hour)) }, true},
		{"new content, a new time", func() { write("package main\n\nfunc main() { println(\"two\") }\n", t0.Add(2*time.Hour)) }, false},
		{"new content of the same size and time (not seen)", func() { write("package main\n\nfunc main() { println(\"owt\") }\n", t0.Add(2*time.Hour)) }, true},
	}
	for _, s := range steps {
		s.change()
		if got := build(); got.Reused != s.reused {
			t.Errorf("%s: Reused = %v, want %v", s.name, got.Reused, s.reused)
		}
	}
}

// rdsCertEnd returns the length of the committed bundle's first
// certificate: a bundle of its own for tests.
func rdsCertEnd(t *testing.T) int {
	t.Helper()
	const end = "-----END CERTIFICATE-----\n"
	i := bytes.Index(rdsca.Global(), []byte(end))
	if i < 0 {
		t.Fatal("no certificate in the committed bundle")
	}
	return i + len(end)
}

func writeCABundle(t *testing.T, pem []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(p, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// zipEntry returns the content of the zip's entry name.
func zipEntry(t *testing.T, zipPath, name string) []byte {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name == name {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("%s has no entry %s", zipPath, name)
	return nil
}

// TestBuildShipsTheCABundle: the zip carries the committed RDS CA bundle as
// rds-ca-bundle.pem, or the operator's own file (Options.CABundle, else
// $PAYDR_RDS_CA_BUNDLE), and a file that is not a CA bundle is refused
// with its name and where to get a good one.
func TestBuildShipsTheCABundle(t *testing.T) {
	mod := t.TempDir()
	for name, content := range map[string]string{"go.mod": "module example.com/m\n\ngo 1.24\n", "main.go": "package main\n\nfunc main() {}\n"} {
		if err := os.WriteFile(filepath.Join(mod, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := func(o bundle.Options) (bundle.Artifact, error) {
		o.ModuleDir, o.Package, o.GOARCH, o.OutDir = mod, "example.com/m", "amd64", t.TempDir()
		return bundle.Build(context.Background(), o)
	}
	t.Setenv(bundle.EnvCABundle, "")
	art, err := build(bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := zipEntry(t, art.ZipPath, rdsca.ZipName); !bytes.Equal(got, rdsca.Global()) {
		t.Errorf("%s in the zip is %d bytes, want the committed bundle (%d bytes)", rdsca.ZipName, len(got), len(rdsca.Global()))
	}
	own := rdsca.Global()[:rdsCertEnd(t)]
	t.Setenv(bundle.EnvCABundle, writeCABundle(t, own))
	art, err = build(bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := zipEntry(t, art.ZipPath, rdsca.ZipName); !bytes.Equal(got, own) {
		t.Errorf("with %s set, %s in the zip is %d bytes, want that file's %d", bundle.EnvCABundle, rdsca.ZipName, len(got), len(own))
	}
	bad := writeCABundle(t, []byte("<!DOCTYPE html><html>AccessDenied</html>"))
	_, err = build(bundle.Options{CABundle: bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), rdsca.SourceURL) {
		t.Errorf("Build with an HTML page as CA bundle: error = %v, want one naming %s and %s", err, bad, rdsca.SourceURL)
	}
}

// moduleWriter returns a function writing a file, with its directories,
// into the module directory mod.
// helloModule writes a module example.com/m whose main package prints
// "one", and returns its directory and a writer of its files.
func helloModule(t *testing.T) (string, func(name, content string)) {
	mod := t.TempDir()
	write := moduleWriter(t, mod)
	write("go.mod", "module example.com/m\n\ngo 1.24\n")
	write("main.go", "package main\n\nfunc main() { println(\"one\") }\n")
	return mod, write
}

func moduleWriter(t *testing.T, mod string) func(name, content string) {
	return func(name, content string) {
		t.Helper()
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBuildSharesAcrossOutDirs: with a shared cache, a new output directory
// copies the artifact of unchanged inputs that another built, byte for byte
// what a fresh build writes, with an executable binary; changed inputs
// build afresh.
func TestBuildSharesAcrossOutDirs(t *testing.T) {
	mod, write := helloModule(t)
	shared := t.TempDir()
	build := func(o bundle.Options) bundle.Artifact {
		t.Helper()
		o.ModuleDir, o.Package, o.GOARCH, o.OutDir = mod, "example.com/m", "amd64", t.TempDir()
		art, err := bundle.Build(context.Background(), o)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		return art
	}
	first := build(bundle.Options{SharedCache: shared})
	second := build(bundle.Options{SharedCache: shared})
	fresh := build(bundle.Options{NoCache: true})
	if first.Reused || !second.Reused || fresh.Reused {
		t.Errorf("Reused = %v, %v, %v; want a build, a copy from the shared cache, a build", first.Reused, second.Reused, fresh.Reused)
	}
	a, _ := os.ReadFile(second.ZipPath)
	b, _ := os.ReadFile(fresh.ZipPath)
	if !bytes.Equal(a, b) || second.SHA256Base64 != fresh.SHA256Base64 || second.Size != int64(len(b)) {
		t.Errorf("shared copy %s (%d bytes) differs from a fresh build %s", second.SHA256Base64, second.Size, fresh.SHA256Base64)
	}
	if fi, err := os.Stat(second.BinaryPath); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("copied binary %s: %v, %v; want it executable", second.BinaryPath, fi, err)
	}
	// Reused in its own directory from then on, without the shared cache.
	if again, err := bundle.Build(context.Background(), bundle.Options{ModuleDir: mod, Package: "example.com/m", GOARCH: "amd64", OutDir: filepath.Dir(second.ZipPath)}); err != nil || !again.Reused {
		t.Errorf("build again in the shared copy's directory: Reused %v, %v; want reused", again.Reused, err)
	}
	write("main.go", "package main\n\nfunc main() { println(\"two\") }\n")
	if changed := build(bundle.Options{SharedCache: shared}); changed.Reused || changed.SHA256Base64 == first.SHA256Base64 {
		t.Errorf("after a source change: Reused %v, hash %s; want a new build", changed.Reused, changed.SHA256Base64)
	}
}
