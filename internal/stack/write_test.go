package stack

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteDir: WriteDir lays out what Terraform runs on, the JSON and the
// zip it names, and leaves files that hold the same bytes untouched.
func TestWriteDir(t *testing.T) {
	st, err := Build(localConfig())
	if err != nil {
		t.Fatalf("Build() error: %v", err)
	}
	js, err := st.Synth()
	if err != nil {
		t.Fatalf("Synth() error: %v", err)
	}
	src := filepath.Join(t.TempDir(), "processor.zip")
	writeZip := func(content string, at time.Time) {
		t.Helper()
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(src, at, at); err != nil {
			t.Fatal(err)
		}
	}
	built := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	writeZip("a zip", built)
	dir := filepath.Join(t.TempDir(), "stacks", st.Config.StackName())
	file, err := st.WriteDir(dir, src)
	if err != nil {
		t.Fatalf("WriteDir() error: %v", err)
	}
	if want := filepath.Join(dir, FileName); file != want {
		t.Errorf("WriteDir() = %q, want %q", file, want)
	}
	zipPath := filepath.Join(dir, st.Config.ProcessorZip)
	for path, want := range map[string][]byte{file: js, zipPath: []byte("a zip")} {
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s holds %d bytes (%v), want the %d written", path, len(got), err, len(want))
		}
	}
	if fi, err := os.Stat(zipPath); err != nil || !fi.ModTime().Equal(built) {
		t.Errorf("%s: modification time %v (%v), want the zip's %v", zipPath, fi.ModTime(), err, built)
	}

	// An unchanged stack keeps its file times; a changed zip is copied again.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(file, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteDir(dir, src); err != nil {
		t.Fatalf("WriteDir() unchanged error: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("%s modified by an unchanged write (%v)", file, err)
	}
	writeZip("another zip", built.Add(time.Hour))
	if _, err := st.WriteDir(dir, src); err != nil {
		t.Fatalf("WriteDir() again error: %v", err)
	}
	if got, _ := os.ReadFile(zipPath); string(got) != "another zip" {
		t.Errorf("%s = %q after a changed zip, want %q", zipPath, got, "another zip")
	}
	// The zip built in place (paydr up builds it in the stack directory) is
	// left as it is.
	if _, err := st.WriteDir(dir, zipPath); err != nil {
		t.Fatalf("WriteDir(zip in place) error: %v", err)
	}
	if got, _ := os.ReadFile(zipPath); string(got) != "another zip" {
		t.Errorf("%s = %q after writing it in place, want %q", zipPath, got, "another zip")
	}
	if _, err := st.WriteDir(dir, filepath.Join(t.TempDir(), "missing.zip")); err == nil {
		t.Error("WriteDir(a missing zip) error = nil, want one")
	}
}
