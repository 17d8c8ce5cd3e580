package pgtest_test

import (
	"context"
	"testing"
	"time"

	"paydr/internal/local/pg/pgtest"
)

func TestStartPair(t *testing.T) {
	t0 := time.Now()
	primary, standby := pgtest.StartPair(t)
	t.Logf("pair up in %v", time.Since(t0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if in, err := primary.InRecovery(ctx); err != nil || in {
		t.Fatalf("primary.InRecovery() = %v, %v; want false, nil", in, err)
	}
	if in, err := standby.InRecovery(ctx); err != nil || !in {
		t.Fatalf("standby.InRecovery() = %v, %v; want true, nil", in, err)
	}
}
