package pg_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"paydr/internal/local/daemon"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"

	"paydr/internal/needs"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func exec(t *testing.T, ctx context.Context, srv *pg.Server, db, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(ctx, srv.DSN(db))
	if err != nil {
		t.Fatalf("connect %s: %v", srv.Name(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("exec %q on %s: %v", sql, srv.Name(), err)
	}
}

func ids(ctx context.Context, srv *pg.Server, db string) ([]string, error) {
	conn, err := pgx.Connect(ctx, srv.DSN(db))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id FROM payments ORDER BY id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// waitIDs polls srv until payments holds want, bounded by 30 s.
func waitIDs(t *testing.T, ctx context.Context, srv *pg.Server, want []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var got []string
	var err error
	for {
		got, err = ids(ctx, srv, "ledger")
		if err == nil && cmp.Diff(want, got) == "" {
			return
		}
		select {
		case <-ctx.Done():
			logb, _ := os.ReadFile(srv.LogPath())
			t.Fatalf("payments on %s = %v (err %v), want %v within 30s (-want +got):\n%s\nlog:\n%s", srv.Name(), got, err, want, cmp.Diff(want, got), logb)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestPrimaryCreateDatabaseIsIdempotent(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	for range 2 {
		if err := srv.CreateDatabase(ctx, "ledger"); err != nil {
			t.Fatalf("CreateDatabase(ledger) error = %v", err)
		}
	}
	exec(t, ctx, srv, "ledger", "CREATE TABLE payments (id text PRIMARY KEY)")
	exec(t, ctx, srv, "ledger", "INSERT INTO payments VALUES ('p1')")
	got, err := ids(ctx, srv, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"p1"}, got); diff != "" {
		t.Errorf("payments mismatch (-want +got):\n%s", diff)
	}
	if in, err := srv.InRecovery(ctx); err != nil || in {
		t.Errorf("InRecovery() = %v, %v; want false, nil", in, err)
	}
	if want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/ledger?sslmode=disable", srv.Port()); srv.DSN("ledger") != want {
		t.Errorf("DSN(ledger) = %q, want %q", srv.DSN("ledger"), want)
	}
	if _, err := os.Stat(srv.LogPath()); err != nil {
		t.Errorf("log file: %v", err)
	}
}

// pairWithPayments starts a primary and a streaming standby, creates the
// ledger database with a payments table on the primary, inserts ids, and
// waits until the standby has them.
func pairWithPayments(t *testing.T, ids ...string) (primary, standby *pg.Server, ctx context.Context) {
	t.Helper()
	primary, standby = pgtest.StartPair(t)
	ctx = testContext(t)
	if err := primary.CreateDatabase(ctx, "ledger"); err != nil {
		t.Fatal(err)
	}
	exec(t, ctx, primary, "ledger", "CREATE TABLE payments (id text PRIMARY KEY)")
	for _, id := range ids {
		exec(t, ctx, primary, "ledger", "INSERT INTO payments VALUES ($1)", id)
	}
	waitIDs(t, ctx, standby, ids)
	return primary, standby, ctx
}

func TestPairReplicatesWrites(t *testing.T) {
	primary, standby, ctx := pairWithPayments(t, "p1", "p2")

	reps, err := primary.ReplicationStatus(ctx)
	if err != nil {
		t.Fatalf("ReplicationStatus() error = %v", err)
	}
	if len(reps) != 1 || reps[0].ApplicationName != "standby" || reps[0].State != "streaming" || reps[0].SyncState != "async" {
		t.Fatalf("ReplicationStatus() = %+v, want one async streaming replica named standby", reps)
	}
	if reps[0].ReplayLSN == 0 || reps[0].CurrentLSN < reps[0].ReplayLSN || reps[0].LagBytes != int64(reps[0].CurrentLSN-reps[0].ReplayLSN) {
		t.Errorf("ReplicationStatus()[0] = %+v: want ReplayLSN > 0, CurrentLSN >= ReplayLSN, LagBytes = their difference", reps[0])
	}
	st, err := standby.StandbyStatus(ctx)
	if err != nil {
		t.Fatalf("StandbyStatus() error = %v", err)
	}
	if st.ReceiverStatus != "streaming" || st.SenderPort != primary.Port() || st.ReplayLSN == 0 || st.LastReplayTime.IsZero() {
		t.Errorf("StandbyStatus() = %+v, want streaming from port %d with a replay LSN and time", st, primary.Port())
	}
	if _, err := primary.StandbyStatus(ctx); err == nil {
		t.Errorf("primary.StandbyStatus() error = nil, want one (not in recovery)")
	}

	conn, err := pgx.Connect(ctx, standby.DSN("ledger"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "INSERT INTO payments VALUES ('p3')"); err == nil {
		t.Errorf("write on the standby succeeded, want read-only error")
	}
}

func TestKillPromoteRebuild(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*pg.Server) error
		// diverge writes on the old primary after the standby stopped
		// receiving, so the old primary holds WAL the new one never saw.
		diverge bool
	}{
		{"kill primary (unplanned failover)", (*pg.Server).Kill, true},
		{"stop primary (planned switchover)", func(s *pg.Server) error { return s.Stop(context.Background()) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			primary, standby, ctx := pairWithPayments(t, "before")
			if tt.diverge {
				// Cut replication, then write: 'lost' never reaches the standby.
				if err := standby.DisconnectReplication(ctx); err != nil {
					t.Fatal(err)
				}
				exec(t, ctx, primary, "ledger", "INSERT INTO payments VALUES ('lost')")
			}

			pid := primary.PID()
			t0 := time.Now()
			if err := tt.fault(primary); err != nil {
				t.Fatalf("fault: %v", err)
			}
			t.Logf("fault took %v", time.Since(t0))
			if primary.Running() {
				t.Fatal("primary still running after the fault")
			}
			if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process group %d after the fault: kill(0) = %v, want ESRCH (no process left)", pid, err)
			}
			if !daemon.PortFree(primary.Port()) {
				t.Errorf("port %d still bound after the fault", primary.Port())
			}

			t0 = time.Now()
			if err := standby.Promote(ctx); err != nil {
				t.Fatalf("Promote() error = %v", err)
			}
			t.Logf("promote took %v", time.Since(t0))
			if in, err := standby.InRecovery(ctx); err != nil || in {
				t.Fatalf("InRecovery() after Promote = %v, %v; want false, nil", in, err)
			}
			exec(t, ctx, standby, "ledger", "INSERT INTO payments VALUES ('after')")
			if tt.diverge {
				exec(t, ctx, standby, "postgres", "ALTER SYSTEM RESET primary_conninfo")
			}

			t0 = time.Now()
			method, err := primary.RebuildAsStandby(ctx, standby)
			if err != nil {
				t.Fatalf("RebuildAsStandby() error = %v", err)
			}
			t.Logf("rebuild by %s took %v", method, time.Since(t0))
			if method != pg.RebuildRewind {
				logb, _ := os.ReadFile(primary.LogPath())
				var notes []string
				for _, l := range strings.Split(string(logb), "\n") {
					if strings.Contains(l, "paydr:") || strings.HasPrefix(l, "pg_rewind") {
						notes = append(notes, l)
					}
				}
				t.Errorf("RebuildAsStandby() method = %s, want %s; log notes:\n%s", method, pg.RebuildRewind, strings.Join(notes, "\n"))
			}
			if in, err := primary.InRecovery(ctx); err != nil || !in {
				t.Fatalf("old primary InRecovery() after rebuild = %v, %v; want true, nil", in, err)
			}
			exec(t, ctx, standby, "ledger", "INSERT INTO payments VALUES ('later')")
			// 'lost' is gone: the rebuilt standby follows the new writer.
			waitIDs(t, ctx, primary, []string{"after", "before", "later"})
			reps, err := standby.ReplicationStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 || reps[0].ApplicationName != "primary" {
				t.Errorf("new primary ReplicationStatus() = %+v, want the old primary streaming", reps)
			}
		})
	}
}

func TestDisconnectReconnectReplication(t *testing.T) {
	primary, standby, ctx := pairWithPayments(t, "before")

	if err := standby.DisconnectReplication(ctx); err != nil {
		t.Fatalf("DisconnectReplication() error = %v", err)
	}
	st, err := standby.StandbyStatus(ctx)
	if err != nil || st.ReceiverStatus != "" {
		t.Fatalf("StandbyStatus() after disconnect = %+v, %v; want no WAL receiver", st, err)
	}
	exec(t, ctx, primary, "ledger", "INSERT INTO payments VALUES ('during')")
	time.Sleep(500 * time.Millisecond)
	if got, err := ids(ctx, standby, "ledger"); err != nil || len(got) != 1 || got[0] != "before" {
		t.Errorf("standby rows while disconnected = %v, %v; want only [before]", got, err)
	}
	if reps, err := primary.ReplicationStatus(ctx); err != nil || len(reps) != 0 {
		t.Errorf("primary ReplicationStatus() while disconnected = %+v, %v; want no replica", reps, err)
	}

	if err := standby.ReconnectReplication(ctx); err != nil {
		t.Fatalf("ReconnectReplication() error = %v", err)
	}
	// The replication slot kept the WAL: the standby catches up.
	waitIDs(t, ctx, standby, []string{"before", "during"})
}

func TestStopFreesPortAndRestart(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	port := srv.Port()
	t0 := time.Now()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop() error = %v", err)
	}
	t.Logf("stop took %v", time.Since(t0))
	if srv.Running() {
		t.Error("Running() = true after Stop")
	}
	if !daemon.PortFree(port) {
		t.Errorf("port %d still bound after Stop", port)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop() error = %v, want nil", err)
	}
	// Starting the same data directory again keeps its port.
	again, err := pg.StartPrimary(ctx, pg.Options{DataDir: srv.DataDir()})
	if err != nil {
		t.Fatalf("StartPrimary(existing) error = %v", err)
	}
	defer again.Stop(ctx)
	if again.Port() != port {
		t.Errorf("restarted Port() = %d, want %d", again.Port(), port)
	}
}

func TestOpenAdoptsRunningServer(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := testContext(t)
	adopted, err := pg.Open(srv.DataDir())
	if err != nil {
		t.Fatalf("Open() error = %v", err)
	}
	if !adopted.Running() || adopted.Port() != srv.Port() || adopted.PID() != srv.PID() {
		t.Fatalf("Open() = running %v port %d pid %d, want running port %d pid %d",
			adopted.Running(), adopted.Port(), adopted.PID(), srv.Port(), srv.PID())
	}
	// Starting a running data directory returns it unchanged.
	again, err := pg.StartPrimary(ctx, pg.Options{DataDir: srv.DataDir()})
	if err != nil {
		t.Fatalf("StartPrimary(running) error = %v", err)
	}
	if again.PID() != srv.PID() {
		t.Errorf("StartPrimary(running).PID() = %d, want %d", again.PID(), srv.PID())
	}
	if err := adopted.Stop(ctx); err != nil {
		t.Fatalf("adopted Stop() error = %v", err)
	}
	if srv.Running() {
		t.Error("server still running after Stop through Open")
	}
	if _, err := pg.Open(t.TempDir()); err == nil {
		t.Error("Open(empty dir) error = nil, want one")
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := pg.FindBinDir(""); err != nil {
		needs.Tool(t, err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	tests := []struct {
		name         string
		opts         pg.Options
		wantIs       error
		wantContains []string
	}{
		{"missing binaries", pg.Options{BinDir: "/nonexistent/bin"}, pg.ErrNotInstalled,
			[]string{"initdb", "/nonexistent/bin", "apt-get install postgresql-15", "PAYDR_PG_BIN"}},
		{"port in use", pg.Options{Port: busyPort}, nil, []string{"port " + strconv.Itoa(busyPort), "in use"}},
		{"no data dir", pg.Options{DataDir: "-"}, nil, []string{"DataDir is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch tt.opts.DataDir {
			case "-":
				tt.opts.DataDir = ""
			default:
				dir := t.TempDir()
				os.Chmod(dir, 0o755)
				os.Chmod(filepath.Dir(dir), 0o755)
				tt.opts.DataDir = filepath.Join(dir, "primary")
			}
			ctx := testContext(t)
			srv, err := pg.StartPrimary(ctx, tt.opts)
			if err == nil {
				srv.Stop(ctx)
				t.Fatalf("StartPrimary(%+v) error = nil, want one", tt.opts)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("StartPrimary() error = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !strings.HasPrefix(err.Error(), "pg: ") {
				t.Errorf("StartPrimary() error = %q, want prefix \"pg: \"", err)
			}
			for _, want := range tt.wantContains {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("StartPrimary() error = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in      string
		want    pg.LSN
		wantErr bool
	}{
		{"0/0", 0, false},
		{"0/3000148", 0x3000148, false},
		{"16/B374D848", 0x16_B374D848, false},
		{"3000148", 0, true},
		{"x/1", 0, true},
	}
	for _, tt := range tests {
		got, err := pg.ParseLSN(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseLSN(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && got.String() != tt.in {
			t.Errorf("ParseLSN(%q).String() = %q, want %q", tt.in, got.String(), tt.in)
		}
	}
}

func TestLongDataDirFallsBackToTCPOnly(t *testing.T) {
	if _, err := pg.FindBinDir(""); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	ctx := testContext(t)
	// Too long for a Unix socket path (107 bytes on Linux).
	srv, err := pg.StartPrimary(ctx, pg.Options{DataDir: filepath.Join(dir, strings.Repeat("d", 110))})
	if err != nil {
		t.Fatalf("StartPrimary(long path) error = %v", err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	if err := srv.CreateDatabase(ctx, "ledger"); err != nil {
		t.Fatalf("CreateDatabase() over TCP error = %v", err)
	}
	if entries, _ := os.ReadDir(srv.SocketDir()); len(entries) != 0 {
		t.Errorf("SocketDir() holds %d entries, want none (TCP only)", len(entries))
	}
}

func logSize(t *testing.T, srv *pg.Server) int64 {
	t.Helper()
	fi, err := os.Stat(srv.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestStartChecksTheRoleBeforeStarting starts data directories in the role
// their files contradict. Each start must be refused before postgres runs
// (the server's log does not grow), above all a former primary started as a
// standby, which would be a second writer.
func TestStartChecksTheRoleBeforeStarting(t *testing.T) {
	primary, standby, ctx := pairWithPayments(t, "before")

	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	size := logSize(t, standby)
	_, err := pg.StartPrimary(ctx, pg.Options{DataDir: standby.DataDir()})
	if !errors.Is(err, pg.ErrIsStandby) || !strings.Contains(err.Error(), "StartStandby") {
		t.Errorf("StartPrimary(a standby's data dir) error = %v, want errors.Is ErrIsStandby, naming StartStandby", err)
	}
	if standby.Running() || logSize(t, standby) != size {
		t.Errorf("StartPrimary(a standby's data dir) ran postgres (running %v, log %d -> %d bytes); want it refused before", standby.Running(), size, logSize(t, standby))
	}
	if _, err := pg.StartStandby(ctx, primary, pg.Options{DataDir: standby.DataDir()}); err != nil {
		t.Fatalf("StartStandby(the standby's data dir) error = %v", err)
	}

	// A planned switchover: the primary shuts down cleanly, the standby
	// replays its last WAL and is promoted.
	if err := primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	size = logSize(t, primary)
	_, err = pg.StartStandby(ctx, standby, pg.Options{DataDir: primary.DataDir(), Name: "primary"})
	if !errors.Is(err, pg.ErrNotStandby) || !strings.Contains(err.Error(), "RebuildAsStandby") {
		t.Errorf("StartStandby(the former primary) error = %v, want errors.Is ErrNotStandby, naming RebuildAsStandby", err)
	}
	if primary.Running() || logSize(t, primary) != size {
		t.Errorf("StartStandby(the former primary) ran postgres (running %v, log %d -> %d bytes); want it refused before", primary.Running(), size, logSize(t, primary))
	}
	// Its files do not stand in the way of following (PostgreSQL lets a
	// cleanly switched-over primary follow): only the missing
	// standby.signal does.
	old, err := pg.Inspect(ctx, primary.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	cur, err := pg.Inspect(ctx, standby.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	if old.Standby || old.Running || old.Timeline != 1 || cur.Timeline != 2 || !cur.Running || len(cur.History) != 1 {
		t.Errorf("Inspect() = old %+v, new %+v; want the old one stopped, no standby.signal, timeline 1, the new one running on timeline 2 with one switch", old, cur)
	}
	if err := old.CanFollow(cur); err != nil {
		t.Errorf("CanFollow() after a clean switchover = %v, want nil", err)
	}
}

// TestStartStandbyRefusesADivergedFormerPrimary gives a failed-over primary
// that kept writing a standby.signal: its WAL goes past the point where the
// new primary's history left its timeline, so it cannot stream.
func TestStartStandbyRefusesADivergedFormerPrimary(t *testing.T) {
	primary, standby, ctx := pairWithPayments(t, "before")
	if err := standby.DisconnectReplication(ctx); err != nil {
		t.Fatal(err)
	}
	exec(t, ctx, primary, "ledger", "INSERT INTO payments VALUES ('lost')")
	exec(t, ctx, primary, "ledger", "CHECKPOINT")
	if err := primary.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(primary.DataDir(), "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	old, err := pg.Inspect(ctx, primary.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	cur, err := pg.Inspect(ctx, standby.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	var fe *pg.FollowError
	if err := old.CanFollow(cur); !errors.As(err, &fe) || !strings.Contains(err.Error(), "timeline 1") {
		t.Errorf("CanFollow() = %v, want a *FollowError about timeline 1", err)
	}
	size := logSize(t, primary)
	_, err = pg.StartStandby(ctx, standby, pg.Options{DataDir: primary.DataDir(), Name: "primary"})
	if !errors.As(err, &fe) {
		t.Errorf("StartStandby(diverged) error = %v, want a *FollowError", err)
	}
	if primary.Running() || logSize(t, primary) != size {
		t.Errorf("StartStandby(diverged) ran postgres (running %v, log %d -> %d bytes); want it refused before", primary.Running(), size, logSize(t, primary))
	}
}

// TestStartPicksAgain: a server that picks its own port picks another when
// the one it picked is taken before postgres binds it, and gives up, naming
// the port, after PickTries taken ones.
func TestStartPicksAgain(t *testing.T) {
	if _, err := pg.FindBinDir(""); err != nil {
		needs.Tool(t, err)
	}
	ctx := testContext(t)
	var picked []int
	taken := 0
	pick := func() (int, error) {
		port, err := daemon.FreePort()
		if err != nil {
			return 0, err
		}
		picked = append(picked, port)
		if len(picked) <= taken {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return 0, err
			}
			t.Cleanup(func() { l.Close() })
		}
		return port, nil
	}
	pg.SetFreePort(t, pick)

	taken = 2
	srv, err := pg.StartPrimary(ctx, pg.Options{DataDir: filepath.Join(pgtest.TempDir(t), "primary")})
	if err != nil {
		t.Fatalf("StartPrimary() with the first two picks taken: %v", err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	if len(picked) != 3 || srv.Port() != picked[2] {
		t.Errorf("StartPrimary() picked %v and listens on %d, want three picks and the last", picked, srv.Port())
	}

	picked, taken = nil, pg.PickTries
	_, err = pg.StartPrimary(ctx, pg.Options{DataDir: filepath.Join(pgtest.TempDir(t), "primary")})
	var inUse *pg.PortInUseError
	if !errors.As(err, &inUse) || len(picked) != pg.PickTries || inUse.Port != picked[len(picked)-1] {
		t.Fatalf("StartPrimary() with every pick taken = %v after picks %v; want a PortInUseError naming the last of %d", err, picked, pg.PickTries)
	}
}
