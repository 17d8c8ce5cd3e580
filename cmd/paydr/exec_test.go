package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAWSCommandsRunInPaydrAWS runs the built paydr: the commands that call
// AWS APIs run in the paydr-aws beside it, with the same arguments, and a
// missing paydr-aws is an error that says what to do. Usage errors and help
// are paydr's own.
func TestAWSCommandsRunInPaydrAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the build of paydr and paydr-aws in -short mode")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "paydr/cmd/paydr", "paydr/cmd/paydr-aws")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	paydr := filepath.Join(bin, "paydr")
	alone := filepath.Join(t.TempDir(), "paydr") // without paydr-aws beside it
	if data, err := os.ReadFile(paydr); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir() // not paydr's checkout
	tests := []struct {
		name     string
		exe      string
		env      []string
		args     []string
		code     int
		want     string // in stdout or stderr
		dontWant string
	}{
		{"help lists dr and serve", paydr, nil, []string{"--help"}, 0, "  dr ", ""},
		{"a usage error stays in paydr", paydr, []string{"PAYDR_AWS_BIN=/nonexistent"}, []string{"dr", "abandon"}, 2, "dr abandon: --reason is required", ""},
		{"dr help stays in paydr", paydr, []string{"PAYDR_AWS_BIN=/nonexistent"}, []string{"dr", "status", "--help"}, 0, "--state-dir", ""},
		{"dr runs in paydr-aws", paydr, nil, []string{"dr", "abandon", "--state-dir", "st", "--reason", "r"}, 1, "no operation is unfinished; nothing to abandon", ""},
		{"serve runs in paydr-aws", paydr, []string{"PAYDR_REGION="}, []string{"serve"}, 1, "PAYDR_REGION", "paydr-aws not found"},
		{"PAYDR_AWS_BIN names it", paydr, []string{"PAYDR_AWS_BIN=" + filepath.Join(bin, "paydr-aws")}, []string{"dr", "abandon", "--state-dir", "st", "--reason", "r"}, 1, "nothing to abandon", ""},
		{"a missing PAYDR_AWS_BIN", paydr, []string{"PAYDR_AWS_BIN=/nonexistent"}, []string{"dr", "status", "--state-dir", "st"}, 1, "PAYDR_AWS_BIN=/nonexistent", ""},
		{"paydr-aws missing outside the checkout", alone, nil, []string{"dr", "status", "--state-dir", "st"}, 1, "go build -o DIR/ ./cmd/paydr ./cmd/paydr-aws", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(tt.exe, tt.args...)
			cmd.Dir = outside
			cmd.Env = append(os.Environ(), tt.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.want) || (tt.dontWant != "" && strings.Contains(out.String(), tt.dontWant)) {
				t.Errorf("paydr %s = exit %d, output:\n%s\nwant exit %d, output containing %q", strings.Join(tt.args, " "), code, out.String(), tt.code, tt.want)
			}
		})
	}
}
