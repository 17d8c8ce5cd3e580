package localdr

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paydr/internal/dr"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
)

// syncStandby returns synchronous_standby_names as srv applies it.
func syncStandby(t *testing.T, ctx context.Context, srv *pg.Server) string {
	t.Helper()
	p, err := srv.WALProgress(ctx, "standby")
	if err != nil {
		t.Fatal(err)
	}
	return p.SynchronousStandby
}

// TestRPOSteps: enforce-rpo records the bound as enforced on the region
// (and, under RPO 0, makes commits wait at once), relax-rpo records it off
// and makes commits wait for no standby, on a running database or a
// stopped one; both are idempotent, and Status shows the bound.
func TestRPOSteps(t *testing.T) {
	t.Parallel() // its own small environment: beside the shared ones coming up
	e, region, primary := faultEnv(t)
	b := e.b
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := b.manifest()
	if err != nil {
		t.Fatal(err)
	}
	standby, err := pg.Open(m.Regions[env.SlotSecondary].Database.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	m.RPO = &env.RPO{Bound: 0}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	enforce := dr.Step{Action: dr.ActionEnforceRPO, Region: region, Peer: "us-west-2"}
	relax := dr.Step{Action: dr.ActionRelaxRPO, Region: region}

	// RPO 0: commits wait for the standby at once.
	for range 2 {
		if out, err := b.Do(ctx, "op", enforce); err != nil {
			t.Fatalf("Do(enforce-rpo) under rpo 0 = %q, %v", out, err)
		}
	}
	if got := syncStandby(t, ctx, primary); got != `"standby"` {
		t.Errorf("synchronous_standby_names after enforce-rpo under rpo 0 = %q, want \"standby\"", got)
	}
	if st, err := b.Status(ctx); err != nil {
		t.Fatal(err)
	} else if r, _ := st.Region(region); !st.RPOZero || !r.Synchronous || r.RPOBound != 0 {
		t.Errorf("Status() RPOZero %v, %s Synchronous %v RPOBound %v; want true, true, 0", st.RPOZero, region, r.Synchronous, r.RPOBound)
	}
	for range 2 {
		if out, err := b.Do(ctx, "op", relax); err != nil {
			t.Fatalf("Do(relax-rpo) = %q, %v", out, err)
		}
	}
	if got := syncStandby(t, ctx, primary); got != "" {
		t.Errorf("synchronous_standby_names after relax-rpo = %q, want empty", got)
	}

	// A bound: recorded, but with no guard running nothing enforces it.
	if m, err = b.manifest(); err != nil {
		t.Fatal(err)
	}
	m.RPO.Bound = env.Duration(time.Second)
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Do(ctx, "op", enforce); err == nil || !strings.Contains(err.Error(), "rpo guard is not running") {
		t.Errorf("Do(enforce-rpo) without a guard = %v, want an error saying the guard is not running", err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Region(region); st.RPOTarget != time.Second || st.RPOZero || r.RPOBound != time.Second || r.Synchronous {
		t.Errorf("Status() RPOTarget %v RPOZero %v, %s RPOBound %v Synchronous %v; want 1s, false, 1s, false", st.RPOTarget, st.RPOZero, region, r.RPOBound, r.Synchronous)
	}
	if notes := strings.Join(st.Notes, "\n"); !strings.Contains(notes, "rpo guard of us-east-1 is not running") {
		t.Errorf("Status() notes = %q, want one saying the guard is not running", notes)
	}
	if _, err := b.Do(ctx, "op", relax); err != nil {
		t.Fatal(err)
	}
	if st, err = b.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.Region(region); r.RPOBound != 0 || r.Synchronous {
		t.Errorf("Status() %s RPOBound after relax-rpo = %v, Synchronous %v; want 0, false", region, r.RPOBound, r.Synchronous)
	}

	// The standby: running (ALTER SYSTEM takes no WAL), then stopped.
	if err := standby.SetSynchronousStandby(ctx, "primary"); err != nil {
		t.Fatalf("SetSynchronousStandby on a running standby: %v", err)
	}
	relaxStandby := dr.Step{Action: dr.ActionRelaxRPO, Region: "us-west-2"}
	if out, err := b.Do(ctx, "op", relaxStandby); err != nil {
		t.Fatalf("Do(relax-rpo) on the running standby = %q, %v", out, err)
	}
	if got := syncStandby(t, ctx, standby); got != "" {
		t.Errorf("standby's synchronous_standby_names after relax-rpo = %q, want empty", got)
	}
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.SetSynchronousStandby(ctx, "primary"); err != nil {
		t.Fatalf("SetSynchronousStandby on a stopped standby: %v", err)
	}
	auto := filepath.Join(standby.DataDir(), "postgresql.auto.conf")
	if conf, _ := os.ReadFile(auto); !strings.Contains(string(conf), `synchronous_standby_names = '"primary"'`) {
		t.Errorf("postgresql.auto.conf of the stopped standby = %q, want synchronous_standby_names set", conf)
	}
	if out, err := b.Do(ctx, "op", relaxStandby); err != nil || !strings.Contains(out, "when it starts") {
		t.Fatalf("Do(relax-rpo) on the stopped standby = %q, %v", out, err)
	}
	if conf, _ := os.ReadFile(auto); strings.Contains(string(conf), "synchronous_standby_names") {
		t.Errorf("postgresql.auto.conf after relax-rpo = %q, want no synchronous_standby_names", conf)
	}
}
