// Package needs gates tests on the tools they use (PostgreSQL, moto,
// Terraform and its provider mirror, aws-lambda-rie): when one is missing, a
// test skips with the reason on a developer's machine and fails in CI (env CI
// set), which must run every tier.
package needs

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"paydr/internal/tfcli"
)

// Tool skips or fails t when err, which says what is missing and how to get
// it, is not nil.
func Tool(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI runs every tier, and this test's tool is missing: %v", err)
	}
	t.Skipf("skipping: %v", err)
}

// Terraform requires the terraform binary and the provider mirror paydr's
// Terraform runs use.
func Terraform(t testing.TB) {
	t.Helper()
	_, errBin := tfcli.LookPath()
	_, errMirror := tfcli.FindMirror()
	Tool(t, errors.Join(errBin, errMirror))
}

// CheckGate proves a helper's gate on a missing tool: it runs test, a test
// of the calling package that calls the helper when env childVar is set, in
// a child process with env added (which hides the tool), once without CI
// and once with CI=true. The child must skip, then fail, and say hint (how
// to install the tool) both times.
func CheckGate(t *testing.T, test, childVar string, env []string, hint string) {
	t.Helper()
	tests := []struct {
		name     string
		ci       string
		wantFail bool
		wantOut  string
	}{
		{"skips locally", "", false, "--- SKIP: " + test},
		{"fails under CI", "true", true, "--- FAIL: " + test},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
			cmd.Env = append(append(os.Environ(), childVar+"=1", "CI="+tt.ci), env...)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantFail || !strings.Contains(string(out), tt.wantOut) || !strings.Contains(string(out), hint) {
				t.Errorf("child with CI=%q: err = %v, output:\n%s\nwant failure %v, %q and the install hint", tt.ci, err, out, tt.wantFail, tt.wantOut)
			}
		})
	}
}
