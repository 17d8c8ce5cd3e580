package mototest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"paydr/internal/local/moto/mototest"
)

// TestChildStart is run by TestMissingBinary in a child process.
func TestChildStart(t *testing.T) {
	if os.Getenv("MOTOTEST_CHILD") == "" {
		t.Skip("run by TestMissingBinary")
	}
	mototest.Start(t)
}

func TestMissingBinary(t *testing.T) {
	if os.Getenv("MOTOTEST_CHILD") != "" {
		t.Skip("parent-only test")
	}
	tests := []struct {
		name     string
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"skips locally", "", false, "--- SKIP: TestChildStart"},
		{"fails under CI", "true", true, "--- FAIL: TestChildStart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildStart$", "-test.v")
			cmd.Env = append(os.Environ(), "MOTOTEST_CHILD=1", "PAYDR_MOTO_SERVER=/nonexistent/moto_server", "CI="+tt.ci)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantFail || !strings.Contains(string(out), tt.wantOut) || !strings.Contains(string(out), "pip install") {
				t.Errorf("child with CI=%q: err = %v, output:\n%s\nwant failure %v, %q and the install hint", tt.ci, err, out, tt.wantFail, tt.wantOut)
			}
		})
	}
}
