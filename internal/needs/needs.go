// Package needs gates tests on the tools they use (PostgreSQL, moto,
// Terraform and its provider mirror, aws-lambda-rie): when one is missing, a
// test skips with the reason on a developer's machine and fails in CI (env CI
// set), which must run every tier.
package needs

import (
	"errors"
	"os"
	"testing"

	"paydr/internal/terraform"
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
	_, errBin := terraform.LookPath()
	_, errMirror := terraform.FindMirror()
	Tool(t, errors.Join(errBin, errMirror))
}
