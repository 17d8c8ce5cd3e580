package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"paydr/internal/local/pg/pgtest"
	"paydr/internal/needs"
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
	needs.CheckGate(t, "TestChildStart", "PGTEST_CHILD", []string{"PAYDR_PG_BIN=/nonexistent/pg/bin"}, "apt-get install postgresql-15")
}
