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
	dir := filepath.Join(t.TempDir(), "stacks", st.Config.StackName())
	zip := []byte("a zip")
	file, err := st.WriteDir(dir, zip)
	if err != nil {
		t.Fatalf("WriteDir() error: %v", err)
	}
	if want := filepath.Join(dir, FileName); file != want {
		t.Errorf("WriteDir() = %q, want %q", file, want)
	}
	zipPath := filepath.Join(dir, st.Config.ProcessorZip)
	for path, want := range map[string][]byte{file: js, zipPath: zip} {
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s holds %d bytes (%v), want the %d written", path, len(got), err, len(want))
		}
	}

	// An unchanged stack keeps its file times; a changed zip is rewritten.
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []string{file, zipPath} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.WriteDir(dir, []byte("another zip")); err != nil {
		t.Fatalf("WriteDir() again error: %v", err)
	}
	if fi, err := os.Stat(file); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("%s modified by an unchanged write (%v)", file, err)
	}
	if got, _ := os.ReadFile(zipPath); string(got) != "another zip" {
		t.Errorf("%s = %q after a changed zip, want %q", zipPath, got, "another zip")
	}
}
