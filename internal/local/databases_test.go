package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paydr/internal/dr"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/needs"
)

// The tests below drive the database step of paydr up (startDatabases) on
// real PostgreSQL servers in the states DR operations leave behind: each
// database must restart in the role env.json records, a fenced or
// superseded writer must never start writable, and a refusal must start
// nothing and stop nothing it did not start.

// dbEnv is a state directory holding the two slots' data directories and an
// env.json recording their roles, as paydr up and localdr leave them.
type dbEnv struct {
	t   *testing.T
	ctx context.Context
	l   env.Layout
}

// newDBEnv starts a writer in the primary slot and a streaming standby in
// the secondary slot, with a payments table holding one row, and records
// those roles in env.json.
func newDBEnv(t *testing.T) *dbEnv {
	t.Helper()
	if _, err := pg.FindBinDir(""); err != nil {
		if errors.Is(err, pg.ErrNotInstalled) {
			needs.Tool(t, err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	e := &dbEnv{t: t, ctx: ctx, l: env.Layout{Root: filepath.Join(pgtest.TempDir(t), "state")}}
	if err := os.MkdirAll(e.l.PGDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stop whatever runs from either data directory, whoever started it.
		for _, s := range env.Slots {
			if srv, err := pg.Open(e.l.DataDir(s)); err == nil {
				if err := srv.Stop(context.Background()); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
	})
	w, err := pg.StartPrimary(ctx, pg.Options{DataDir: e.l.DataDir(env.SlotPrimary), Name: string(env.SlotPrimary)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CreateDatabase(ctx, DatabaseName); err != nil {
		t.Fatal(err)
	}
	e.exec(env.SlotPrimary, "CREATE TABLE payments (id text PRIMARY KEY)", "INSERT INTO payments VALUES ('before')")
	if _, err := pg.StartStandby(ctx, w, pg.Options{DataDir: e.l.DataDir(env.SlotSecondary), Name: string(env.SlotSecondary)}); err != nil {
		t.Fatal(err)
	}
	e.waitRows(env.SlotSecondary, 1)
	m := &env.Manifest{Version: env.Version, StateDir: e.l.Root, Suffix: DefaultSuffix, Regions: map[env.Slot]*env.Region{}}
	for s, name := range map[env.Slot]string{env.SlotPrimary: "us-east-1", env.SlotSecondary: "us-west-2"} {
		m.Regions[s] = &env.Region{Slot: s, Name: name, Database: env.Database{Name: string(s), DataDir: e.l.DataDir(s), Role: env.RoleStandby}}
	}
	m.Regions[env.SlotPrimary].Database.Role = env.RoleWriter
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *dbEnv) server(s env.Slot) *pg.Server {
	e.t.Helper()
	srv, err := pg.Open(e.l.DataDir(s))
	if err != nil {
		e.t.Fatal(err)
	}
	return srv
}

func (e *dbEnv) exec(s env.Slot, stmts ...string) {
	e.t.Helper()
	conn, err := pgx.Connect(e.ctx, e.server(s).DSN(DatabaseName))
	if err != nil {
		e.t.Fatalf("connect %s: %v", s, err)
	}
	defer conn.Close(e.ctx)
	for _, q := range stmts {
		if _, err := conn.Exec(e.ctx, q); err != nil {
			e.t.Fatalf("%s on %s: %v", q, s, err)
		}
	}
}

// waitRows waits until slot s's payments table holds n rows.
func (e *dbEnv) waitRows(s env.Slot, n int) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		conn, err := pgx.Connect(e.ctx, e.server(s).DSN(DatabaseName))
		if err == nil {
			err = conn.QueryRow(e.ctx, "SELECT count(*) FROM payments").Scan(&got)
			conn.Close(e.ctx)
		}
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("payments rows on %s = %d (%v), want %d within 30s", s, got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recordWriter records w as the writer in env.json, as localdr's promote
// step does.
func (e *dbEnv) recordWriter(w env.Slot) {
	e.t.Helper()
	m, err := env.Load(e.l.Root)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := m.SetWriter(w); err != nil {
		e.t.Fatal(err)
	}
	if err := m.Save(); err != nil {
		e.t.Fatal(err)
	}
}

// failover does what paydr dr failover does locally: fence the primary
// slot's writer (a fast shutdown), promote the secondary slot's standby,
// and, when record is set, record the roles. With diverge, the standby is
// cut off first and the old writer commits a payment it never receives.
func (e *dbEnv) failover(diverge, record bool) {
	e.t.Helper()
	if diverge {
		if err := e.server(env.SlotSecondary).DisconnectReplication(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		e.exec(env.SlotPrimary, "INSERT INTO payments VALUES ('lost')", "CHECKPOINT")
	}
	if err := e.server(env.SlotPrimary).Stop(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if err := e.server(env.SlotSecondary).Promote(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if diverge {
		if err := e.server(env.SlotSecondary).ReconnectReplication(e.ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	// A payment on the new writer, so its timeline holds WAL of its own.
	e.exec(env.SlotSecondary, "INSERT INTO payments VALUES ('after')")
	if record {
		e.recordWriter(env.SlotSecondary)
	}
}

// running returns the postmaster pid of each slot (0: not running).
func (e *dbEnv) running() map[env.Slot]int {
	out := map[env.Slot]int{}
	for _, s := range env.Slots {
		out[s] = e.server(s).PID()
	}
	return out
}

// logSizes returns the size of each slot's server log: a server start
// writes to it.
func (e *dbEnv) logSizes() map[env.Slot]int64 {
	out := map[env.Slot]int64{}
	for _, s := range env.Slots {
		if fi, err := os.Stat(e.server(s).LogPath()); err == nil {
			out[s] = fi.Size()
		}
	}
	return out
}

// watchWriters samples pg_is_in_recovery on both slots' ports until stop is
// called, and returns the times both answered false (two writers).
func (e *dbEnv) watchWriters() (stop func() []string) {
	ports := map[env.Slot]int{}
	for _, s := range env.Slots {
		ports[s] = e.server(s).Port()
	}
	ctx, cancel := context.WithCancel(e.ctx)
	var mu sync.Mutex
	var both []string
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			writers := 0
			for _, p := range ports {
				qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				conn, err := pgx.Connect(qctx, fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", pg.Superuser, p))
				if err == nil {
					var in bool
					if conn.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&in) == nil && !in {
						writers++
					}
					conn.Close(context.Background())
				}
				qcancel()
			}
			if writers > 1 {
				mu.Lock()
				both = append(both, time.Now().Format("15:04:05.000"))
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return func() []string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return both
	}
}

// startStep runs the database step of paydr up on the environment, as Up
// would with the manifest it finds, watching for two writers meanwhile.
func (e *dbEnv) startStep(timeout time.Duration) (map[env.Slot]*pg.Server, []string, error) {
	e.t.Helper()
	prev, err := env.Load(e.l.Root)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, timeout)
	defer cancel()
	u := &upRun{o: UpOptions{Out: io.Discard, StateDir: e.l.Root}, l: e.l}
	if _, err := u.makeTLS(ctx); err != nil {
		e.t.Fatal(err)
	}
	stop := e.watchWriters()
	start := time.Now()
	dbs, err := u.startDatabases(ctx, prev)
	e.t.Logf("database step took %s; error: %v", time.Since(start).Round(time.Millisecond), err)
	both := stop()
	return dbs, both, err
}

func TestStartDatabasesRefusesRolesTheDataCannotHonour(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup brings the environment into the state up finds.
		setup func(e *dbEnv)
		// wantErr are substrings the refusal must hold: the slot and region
		// at fault, why, and what to do.
		wantErr []string
	}{{
		name:    "after a failover, the fenced writer is recorded as the standby; the new writer runs",
		setup:   func(e *dbEnv) { e.failover(false, true) },
		wantErr: []string{"primary (us-east-1)", "standby.signal", "second writer", "paydr dr failback", "secondary (us-west-2)"},
	}, {
		name: "after a failover, both databases stopped (a reboot)",
		setup: func(e *dbEnv) {
			e.failover(false, true)
			if err := e.server(env.SlotSecondary).Stop(e.ctx); err != nil {
				t.Fatal(err)
			}
		},
		wantErr: []string{"primary (us-east-1)", "standby.signal", "second writer", "paydr dr failback", "mv "},
	}, {
		name: "the old writer diverged, then was given a standby.signal by hand",
		setup: func(e *dbEnv) {
			e.failover(true, true)
			sig := filepath.Join(e.l.DataDir(env.SlotPrimary), "standby.signal")
			if err := os.WriteFile(sig, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		},
		wantErr: []string{"primary (us-east-1)", "timeline", "cannot stream from secondary (us-west-2)", "paydr dr failback"},
	}, {
		name: "a promotion was not recorded: env.json still names the fenced writer",
		setup: func(e *dbEnv) {
			e.failover(false, false)
			if err := e.server(env.SlotSecondary).Stop(e.ctx); err != nil {
				t.Fatal(err)
			}
		},
		wantErr: []string{"primary (us-east-1)", "superseded", "secondary (us-west-2)", "env.json"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newDBEnv(t)
			tt.setup(e)
			before, logs := e.running(), e.logSizes()

			_, both, err := e.startStep(40 * time.Second)

			if err == nil {
				t.Fatalf("startDatabases() error = nil, want a refusal")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("startDatabases() error = %q, want it to say %q", err, want)
				}
			}
			if len(both) > 0 {
				t.Errorf("pg_is_in_recovery() was false on both servers in %d samples from %s to %s: two writers", len(both), both[0], both[len(both)-1])
			}
			if e.server(env.SlotPrimary).Running() {
				t.Errorf("the fenced old writer (primary slot) runs after the refusal; it must stay stopped")
			}
			if after := e.running(); after[env.SlotPrimary] != before[env.SlotPrimary] || after[env.SlotSecondary] != before[env.SlotSecondary] {
				t.Errorf("postmaster pids = %v after the refusal, want %v as before it: stop what this run started, touch nothing else", after, before)
			}
			if after := e.logSizes(); after[env.SlotPrimary] != logs[env.SlotPrimary] || after[env.SlotSecondary] != logs[env.SlotSecondary] {
				t.Errorf("server log sizes = %v after the refusal, want %v: the roles must be checked before any server starts", after, logs)
			}
		})
	}
}

func TestStartDatabasesStartsEachInItsRecordedRole(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	e.failover(false, true)
	// The first half of paydr dr failback: the old writer rebuilt as a
	// standby of the new one.
	if _, err := e.server(env.SlotPrimary).RebuildAsStandby(e.ctx, e.server(env.SlotSecondary)); err != nil {
		t.Fatal(err)
	}
	for _, s := range env.Slots {
		if err := e.server(s).Stop(e.ctx); err != nil {
			t.Fatal(err)
		}
	}

	dbs, both, err := e.startStep(90 * time.Second)

	if err != nil {
		t.Fatalf("startDatabases() error = %v, want the writer in secondary and a standby in primary", err)
	}
	if len(both) > 0 {
		t.Errorf("pg_is_in_recovery() was false on both servers in %d samples from %s to %s: two writers", len(both), both[0], both[len(both)-1])
	}
	for s, want := range map[env.Slot]bool{env.SlotSecondary: false, env.SlotPrimary: true} {
		if in, err := dbs[s].InRecovery(e.ctx); err != nil || in != want {
			t.Errorf("%s InRecovery() = %v, %v; want %v (env.json records it as %s)", s, in, err, want, map[bool]string{false: "the writer", true: "the standby"}[want])
		}
	}
	st, err := dbs[env.SlotPrimary].StandbyStatus(e.ctx)
	if err != nil || st.ReceiverStatus != "streaming" || st.SenderPort != dbs[env.SlotSecondary].Port() {
		t.Errorf("primary StandbyStatus() = %+v, %v; want streaming from the writer on port %d", st, err, dbs[env.SlotSecondary].Port())
	}
	e.exec(env.SlotSecondary, "INSERT INTO payments VALUES ('later')")
	e.waitRows(env.SlotPrimary, 3) // before, after, later
	// Both serve TLS with the up's certificate, whichever role they have:
	// the standby of today is the writer after a failover.
	for _, s := range env.Slots {
		conn, err := dbs[s].Connect(e.ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		var ssl, cert string
		err = conn.QueryRow(e.ctx, "SELECT current_setting('ssl'), current_setting('ssl_cert_file')").Scan(&ssl, &cert)
		conn.Close(e.ctx)
		if err != nil || ssl != "on" || cert != filepath.Join(dbs[s].TLSDir(), "server.crt") {
			t.Errorf("%s: ssl = %q, ssl_cert_file = %q, %v; want on, its own %s/server.crt", s, ssl, cert, err, dbs[s].TLSDir())
		}
	}
}

// TestDecideDatabases covers checkDatabases' judgement on states that are
// awkward to produce with real servers, and the fresh and consistent ones.
func TestDecideDatabases(t *testing.T) {
	t.Parallel()
	l := env.Layout{Root: "/state"}
	prev := &env.Manifest{Regions: map[env.Slot]*env.Region{
		env.SlotPrimary:   {Name: "us-east-1", Database: env.Database{Role: env.RoleStandby}},
		env.SlotSecondary: {Name: "us-west-2", Database: env.Database{Role: env.RoleWriter}},
	}}
	r := rolesOf(l.Root, prev)
	const sys = 7714577718063144918
	// The writer (secondary slot) was promoted on timeline 2 when timeline 1
	// ended at 0/3000100.
	writer := func(running bool) dbFacts {
		return dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/secondary", Initialized: true, Running: running, SystemID: sys,
			State: "in production", Timeline: 2, Position: 0x3000200, PositionTimeline: 2,
			History: []pg.TimelineSwitch{{Timeline: 1, End: 0x3000100}}, HistoryKnown: true}}
	}
	standby := func(signal bool, pos pg.LSN, tli int) dbFacts {
		return dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/primary", Initialized: true, Standby: signal, SystemID: sys,
			State: "shut down", Timeline: tli, Position: pos, PositionTimeline: tli, HistoryKnown: tli == 1}}
	}
	tests := []struct {
		name    string
		w, s    dbFacts
		wantErr []string // nil: no refusal
	}{
		{"fresh: neither slot holds a cluster", dbFacts{Inspection: &pg.Inspection{}}, dbFacts{Inspection: &pg.Inspection{}}, nil},
		{"the standby was rebuilt from the writer (a failback's first half)", writer(true), standby(true, 0x3000300, 2), nil},
		{"a switched-over old writer given standby.signal follows", writer(false), standby(true, 0x3000028, 1), nil},
		{"a running standby is adopted", writer(true), dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/primary", Initialized: true, Running: true, Standby: true}, inRecovery: true}, nil},
		{"the writer runs as a standby", dbFacts{Inspection: &pg.Inspection{Initialized: true, Running: true}, inRecovery: true}, standby(true, 0x3000028, 1),
			[]string{"secondary (us-west-2), recorded in env.json as the writer, runs as a standby", "No database was started or stopped", "paydr dr status", "/state/env.json"}},
		{"the writer's data directory has standby.signal", dbFacts{Inspection: &pg.Inspection{Initialized: true, Standby: true, State: "shut down in recovery", Timeline: 2}}, standby(true, 0x3000028, 1),
			[]string{"secondary (us-west-2), recorded in env.json as the writer, has a standby's data directory", "no region would write", "paydr dr status"}},
		{"the writer's data directory is gone, the standby's is not", dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/secondary"}}, standby(true, 0x3000028, 1),
			[]string{"secondary (us-west-2), recorded in env.json as the writer, has no cluster in /state/pg/secondary", "empty writer", "paydr down"}},
		{"the standby runs as a writer", writer(true), dbFacts{Inspection: &pg.Inspection{Initialized: true, Running: true}},
			[]string{"primary (us-east-1), recorded in env.json as the standby, runs as a writer", "two writers", "touches neither"}},
		{"a former writer, the writer running", writer(true), standby(false, 0x3000028, 1),
			[]string{"primary (us-east-1), recorded in env.json as the standby, has a former writer's data directory", "second writer beside secondary (us-west-2)",
				"Run paydr dr failback", "mv /state/pg/primary /state/dr/preserved/up-primary"}},
		{"a former writer, the writer stopped", writer(false), standby(false, 0x3000028, 1),
			[]string{"second writer", "Move it aside", "mv /state/pg/primary /state/dr/preserved/up-primary", "paydr dr failback, which keeps a copy of it and rebuilds it in place, needs secondary (us-west-2) running"}},
		{"a diverged standby", writer(true), standby(true, 0x3000400, 1),
			[]string{"cannot stream from secondary (us-west-2), the writer", "past 0/3000100", "timeline 1", "paydr dr failback"}},
		{"a standby of another database system", writer(true), func() dbFacts { f := standby(true, 0x3000028, 1); f.SystemID = 1; return f }(),
			[]string{"cannot stream from secondary (us-west-2)", "another database system"}},
		{"the recorded writer was superseded by the recorded standby",
			dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/secondary", Initialized: true, SystemID: sys, State: "shut down", Timeline: 1, Position: 0x3000028, PositionTimeline: 1, HistoryKnown: true}},
			dbFacts{Inspection: &pg.Inspection{DataDir: "/state/pg/primary", Initialized: true, SystemID: sys, State: "shut down", Timeline: 2, Position: 0x3000200, PositionTimeline: 2,
				History: []pg.TimelineSwitch{{Timeline: 1, End: 0x3000100}}, HistoryKnown: true}},
			[]string{"secondary (us-west-2), recorded in env.json as the writer, is superseded: primary (us-east-1) was promoted after it", "/state/env.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := decideDatabases(r, tt.w, tt.s, l)
			if tt.wantErr == nil {
				if err != nil {
					t.Errorf("decideDatabases() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("decideDatabases() = nil, want a refusal saying %q", tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "up: ") {
				t.Errorf("decideDatabases() = %q, want the prefix \"up: \"", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("decideDatabases() = %q, want it to say %q", err, want)
				}
			}
		})
	}
}

// TestUpRefusesDuringAnUnfinishedDROperation: env.json records roles only
// when a promotion completes, so up must not start the databases in the
// middle of a DR operation (it would start a fenced writer).
func TestUpRefusesDuringAnUnfinishedDROperation(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	if err := checkNoUnfinishedDR(state); err != nil {
		t.Fatalf("checkNoUnfinishedDR(no journal) = %v, want nil", err)
	}
	j, err := dr.OpenJournal(env.Layout{Root: state}.DRJournalDir())
	if err != nil {
		t.Fatal(err)
	}
	plan := dr.Plan{Op: dr.Switchover, From: "us-east-1", To: "us-west-2", Steps: []dr.Step{{Action: dr.ActionFence, Region: "us-east-1"}}}
	if err := j.Begin("20260101T000000.000Z-switchover", plan, time.Now()); err != nil {
		t.Fatal(err)
	}
	err = checkNoUnfinishedDR(state)
	if err == nil || !strings.Contains(err.Error(), "20260101T000000.000Z-switchover (switchover from us-east-1 to us-west-2) is unfinished") || !strings.Contains(err.Error(), "paydr dr abandon") {
		t.Errorf("checkNoUnfinishedDR(unfinished switchover) = %v, want a refusal naming it and the way out", err)
	}
	if _, err := dr.Abandon(context.Background(), dr.FileLock{Path: env.Layout{Root: state}.DRLock()}, j, "test", "given up", false, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := checkNoUnfinishedDR(state); err != nil {
		t.Errorf("checkNoUnfinishedDR(abandoned) = %v, want nil", err)
	}
}
