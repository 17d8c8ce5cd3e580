package bundle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/bundle"
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
		{"a.txt", 0o755, bundle.ZipTime, zip.Deflate, "first"},
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
