package pg_test

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paydr/internal/local/daemon"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
)

// backendPID opens a connection to srv, as a client's pool holds one, and
// returns it with the pid of the backend serving it.
func backendPID(t *testing.T, ctx context.Context, srv *pg.Server) (*pgx.Conn, int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return conn, pid
}

// queryWithin runs SELECT 1 on conn bounded by d.
func queryWithin(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// TestFreezeLeavesNoQueryAnswered: a frozen server answers no query, on a
// connection opened before the freeze (a pool's) or a new one, and every
// process of it is stopped, the backends that called setsid included; after
// Thaw the open connection works again. (SIGSTOP to the postmaster's process
// group, what cut-region did before, left the open connection answering.)
func TestFreezeLeavesNoQueryAnswered(t *testing.T) {
	primary, standby := pgtest.StartPair(t)
	ctx := testContext(t)
	conn, backend := backendPID(t, ctx, primary)
	if g, _ := syscall.Getpgid(backend); g == primary.PID() {
		t.Fatalf("backend %d is in the postmaster's process group; this test needs PostgreSQL's setsid", backend)
	}

	t0 := time.Now()
	if err := primary.Freeze(ctx); err != nil {
		t.Fatalf("Freeze() error = %v", err)
	}
	t.Logf("freeze (with its checks) took %v", time.Since(t0))
	if !primary.Frozen() {
		t.Error("Frozen() = false after Freeze")
	}
	tree := daemon.Tree(primary.PID())
	if len(tree) < 5 {
		t.Errorf("Tree(postmaster) = %v, want the postmaster and its backends, WAL writer, walsender, ...", tree)
	}
	for _, p := range tree {
		if !daemon.Stopped(p) {
			t.Errorf("process %d of the frozen server is not stopped", p)
		}
	}
	if !daemon.Stopped(backend) {
		t.Errorf("backend %d of the open connection is not stopped", backend)
	}
	if err := queryWithin(ctx, conn, time.Second); err == nil {
		t.Error("query on the connection opened before Freeze succeeded; want it to time out")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	if c, err := pgx.Connect(cctx, primary.DSN("postgres")); err == nil {
		c.Close(ctx)
		t.Error("new connection to the frozen server succeeded; want it to time out")
	}
	cancel()
	// The standby's reads are not the frozen region's: it still answers.
	if _, err := standby.InRecovery(ctx); err != nil {
		t.Errorf("standby InRecovery() while the primary is frozen = %v", err)
	}
	// Freezing again is a no-op.
	if err := primary.Freeze(ctx); err != nil {
		t.Errorf("second Freeze() error = %v", err)
	}

	if err := primary.Thaw(); err != nil {
		t.Fatalf("Thaw() error = %v", err)
	}
	if primary.Frozen() {
		t.Error("Frozen() = true after Thaw")
	}
	conn2, _ := backendPID(t, ctx, primary)
	if err := queryWithin(ctx, conn2, 5*time.Second); err != nil {
		t.Errorf("query on a new connection after Thaw = %v, want it to succeed", err)
	}
	if err := primary.Thaw(); err != nil {
		t.Errorf("second Thaw() error = %v", err)
	}
}

// TestKillLeavesNoProcess: Kill leaves no process of the server alive, the
// backend of an open connection and the walsender included, and the open
// connection fails. (SIGKILL to the process group, what Kill did before,
// left the backend alive.)
func TestKillLeavesNoProcess(t *testing.T) {
	primary, _ := pgtest.StartPair(t)
	ctx := testContext(t)
	conn, backend := backendPID(t, ctx, primary)
	tree := daemon.Tree(primary.PID())
	if err := primary.Kill(); err != nil {
		t.Fatalf("Kill() error = %v", err)
	}
	for _, p := range tree {
		if daemon.Alive(p, "") {
			t.Errorf("process %d of the killed server is alive", p)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if daemon.Alive(backend, "") {
		t.Errorf("backend %d alive after Kill", backend)
	}
	if err := queryWithin(ctx, conn, time.Second); err == nil {
		t.Error("query on a connection opened before Kill succeeded")
	}
	if err := primary.Freeze(ctx); err == nil || errors.As(err, new(*pg.FrozenError)) {
		t.Errorf("Freeze(killed) error = %v, want a not-running error", err)
	}
}
