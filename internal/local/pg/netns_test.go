package pg_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paydr/internal/local/netns/netnstest"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
)

// A primary and its standby in two namespaces of a fabric: each listens on
// its region address, the standby streams over the bridge, and a partition
// of the primary cuts the host and the standby off from it while it keeps
// serving clients inside its own namespace.
func TestPairAcrossNamespaces(t *testing.T) {
	f := netnstest.Fabric(t, "a", "b")
	dir := pgtest.TempDir(t)
	ctx := testContext(t)
	a, b := f.Members[0], f.Members[1]
	primary, err := pg.StartPrimary(ctx, pg.Options{DataDir: filepath.Join(dir, "a"), Host: a.Address.String(), Namespace: a.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, primary)
	if err := primary.CreateDatabase(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	exec(t, ctx, primary, "ledger", "CREATE TABLE payments (id text PRIMARY KEY)")
	exec(t, ctx, primary, "ledger", "INSERT INTO payments VALUES ('p1')")
	standby, err := pg.StartStandby(ctx, primary, pg.Options{DataDir: filepath.Join(dir, "b"), Host: b.Address.String(), Namespace: b.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, standby)
	if want := fmt.Sprintf("postgres://postgres@%s:%d/ledger?sslmode=disable", a.Address, primary.Port()); primary.DSN("ledger") != want {
		t.Errorf("DSN(ledger) = %q, want %q", primary.DSN("ledger"), want)
	}
	waitIDs(t, ctx, standby, []string{"p1"})

	// Open reads the place back from the data directory.
	opened, err := pg.Open(standby.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	if opened.Host() != b.Address.String() || opened.Namespace() != b.Namespace {
		t.Errorf("Open(standby) place = %s in %q, want %s in %q", opened.Host(), opened.Namespace(), b.Address, b.Namespace)
	}
	if reps, err := primary.ReplicationStatus(ctx); err != nil || len(reps) != 1 {
		t.Errorf("ReplicationStatus() = %v, %v; want the standby", reps, err)
	}

	if err := f.Partition(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = primary.InRecovery(short)
	cancel()
	if err == nil {
		t.Errorf("the host reached the partitioned primary")
	}
	// Inside its namespace the primary still takes writes.
	var conn string
	err = a.Namespace.Do(func() error {
		c, err := primary.Connect(ctx, "ledger") // pgx dials on this thread
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "INSERT INTO payments VALUES ('p2')")
		conn = "ok"
		return err
	})
	if err != nil || conn != "ok" {
		t.Errorf("write inside the partitioned namespace: %v", err)
	}
	if err := f.Heal(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitIDs(t, ctx, standby, []string{"p1", "p2"})
	if !strings.Contains(primary.DSN("x"), a.Address.String()) {
		t.Errorf("DSN lost the region address")
	}
}

func stop(t *testing.T, srv *pg.Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop %s: %v", srv.Name(), err)
		}
	})
}
