package pgtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"paydr/internal/local/pg/pgtest"
)

func TestStartPair(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
		t.Skip("parent-only test")
	}
	primary, standby := pgtest.StartPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if in, err := primary.InRecovery(ctx); err != nil || in {
		t.Fatalf("primary.InRecovery() = %v, %v; want false, nil", in, err)
	}
	if in, err := standby.InRecovery(ctx); err != nil || !in {
		t.Fatalf("standby.InRecovery() = %v, %v; want true, nil", in, err)
	}
}

// TestChildStart is run by TestMissingBinaries in a child process.
func TestChildStart(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "" {
		t.Skip("run by TestMissingBinaries")
	}
	pgtest.Start(t)
}

func TestMissingBinaries(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") != "" {
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
			cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", "PAYDR_PG_BIN=/nonexistent/pg/bin", "CI="+tt.ci)
			out, err := cmd.CombinedOutput()
			if (err != nil) != tt.wantFail || !strings.Contains(string(out), tt.wantOut) || !strings.Contains(string(out), "apt-get install postgresql-15") {
				t.Errorf("child with CI=%q: err = %v, output:\n%s\nwant failure %v, %q and the install hint", tt.ci, err, out, tt.wantFail, tt.wantOut)
			}
		})
	}
}
