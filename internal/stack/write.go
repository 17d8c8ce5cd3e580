package stack

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the synthesized Terraform JSON's name in a stack directory
// (cdktf.out/stacks/<StackName>/ for paydr synth, the stack directory of
// the local environment for paydr up).
const FileName = "cdk.tf.json"

// WriteDir writes the stack into dir, the directory Terraform runs in: its
// Terraform JSON as FileName, and a copy of the processor's Lambda zip at
// zipPath as Config.ProcessorZip, the path the JSON names it by. dir is
// created when missing. A file that already holds the same bytes is left
// alone, so an unchanged synthesis keeps its file times. The copy of the
// zip keeps the zip's modification time, and is left alone when it has the
// zip's size and modification time (the quick check of rsync) or is the
// zip itself: an unchanged synthesis reads no zip. It returns FileName's
// path.
//
// The zip comes as a file, not as a build: building it is package bundle's
// job, which synthesis does not need to link.
func (s *Stack) WriteDir(dir, zipPath string) (string, error) {
	js, err := s.Synth()
	if err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	file := filepath.Join(dir, FileName)
	dst := filepath.Join(dir, s.Config.ProcessorZip)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	if err := writeIfChanged(file, js); err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	if err := copyIfChanged(zipPath, dst); err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	return file, nil
}

// writeIfChanged writes b to path unless the file already holds exactly b.
func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	return os.WriteFile(path, b, 0o644)
}

// copyIfChanged copies src to dst with src's modification time, unless dst
// is src or has its size and modification time. The copy is written under
// a temporary name and renamed.
func copyIfChanged(src, dst string) error {
	si, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("processor zip: %w", err)
	}
	if di, err := os.Stat(dst); err == nil && (os.SameFile(si, di) || (di.Size() == si.Size() && di.ModTime().Equal(si.ModTime()))) {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("processor zip: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".zip-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Chtimes(tmp.Name(), si.ModTime(), si.ModTime()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
