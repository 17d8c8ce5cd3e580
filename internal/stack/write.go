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
// Terraform JSON as FileName, and zip, the processor's Lambda zip, as
// Config.ProcessorZip, the path the JSON names it by. dir is created when
// missing. A file that already holds the same bytes is left alone, so an
// unchanged synthesis keeps its file times. It returns FileName's path.
//
// The zip comes as bytes, not as a build: building it is package bundle's
// job, which synthesis does not need to link.
func (s *Stack) WriteDir(dir string, zip []byte) (string, error) {
	js, err := s.Synth()
	if err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	file := filepath.Join(dir, FileName)
	zipPath := filepath.Join(dir, s.Config.ProcessorZip)
	if err := os.MkdirAll(filepath.Dir(zipPath), 0o755); err != nil {
		return "", fmt.Errorf("stack: write %s: %w", dir, err)
	}
	for _, f := range []struct {
		path string
		b    []byte
	}{{file, js}, {zipPath, zip}} {
		if err := writeIfChanged(f.path, f.b); err != nil {
			return "", fmt.Errorf("stack: write %s: %w", dir, err)
		}
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
