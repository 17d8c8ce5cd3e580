package mototest_test

import (
	"os"
	"testing"

	"paydr/internal/local/moto/mototest"
	"paydr/internal/needs"
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
	needs.CheckGate(t, "TestChildStart", "MOTOTEST_CHILD", []string{"PAYDR_MOTO_SERVER=/nonexistent/moto_server"}, "pip install")
}
