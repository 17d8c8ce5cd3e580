package localdr

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"paydr/internal/dr/drill"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/needs"
)

// faultEnv is a small environment for the faults, without paydr up: a
// PostgreSQL primary and standby (pgtest) and, standing in for each
// region's processor, an HTTP server in its own session (python3 -m
// http.server: /health answers 404, which is an answer). It returns the
// drill environment, the primary region's name and the primary server.
func faultEnv(t *testing.T) (*DrillEnv, string, *pg.Server) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		needs.Tool(t, err)
	}
	// Past a pyenv shim, so the pid started is the server's.
	out, err := exec.Command(py, "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	py = strings.TrimSpace(string(out))
	primary, standby := pgtest.StartPair(t)
	dir := t.TempDir()
	m := &env.Manifest{StateDir: dir, Regions: map[env.Slot]*env.Region{}}
	for _, s := range env.Slots {
		srv, role, name := primary, env.RoleWriter, "us-east-1"
		if s == env.SlotSecondary {
			srv, role, name = standby, env.RoleStandby, "us-west-2"
		}
		port, err := daemon.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		p := env.Processor{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port,
			PIDFile: filepath.Join(dir, string(s)+".pid"), LogPath: filepath.Join(dir, string(s)+".log"),
			Command: []string{py, "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port)}}
		if p.PID, err = StartProcessor(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = daemon.Stop(context.Background(), daemon.ReadPIDFile(p.PIDFile), "http.server", time.Second)
		})
		if !daemon.WaitGone(time.Now().Add(30*time.Second), func() bool { return !daemon.Listening(port) }) {
			t.Fatalf("processor stand-in on port %d does not listen; log %s", port, p.LogPath)
		}
		m.Regions[s] = &env.Region{Slot: s, Name: name, Processor: p, Database: env.Database{
			Name: srv.Name(), DataDir: srv.DataDir(), Port: srv.Port(), DSN: srv.DSN("postgres"), Database: "postgres", Role: role}}
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b.DrillEnv(), "us-east-1", primary
}

// warmPool opens a pool of n connections to srv, each used once, as a
// processor's pool holds them.
func warmPool(t *testing.T, ctx context.Context, srv *pg.Server, n int) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinConns, cfg.MaxConns = int32(n), int32(n)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var conns []*pgxpool.Conn
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
	return pool
}

// pooledAnswers returns how many of the pool's idle connections answer a
// query within a second.
func pooledAnswers(ctx context.Context, pool *pgxpool.Pool) (answered, tried int) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conns := pool.AcquireAllIdle(ctx)
	done := make(chan bool, len(conns))
	for _, c := range conns {
		go func() {
			_, err := c.Exec(ctx, "SELECT 1")
			done <- err == nil
		}()
	}
	for range conns {
		if <-done {
			answered++
		}
	}
	for _, c := range conns {
		c.Release()
	}
	return answered, len(conns)
}

func healthAnswers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// TestCutRegionAnswersNothing: while a region is cut, no query succeeds on
// its database, on a connection a pool opened before the cut nor on a new
// one, and its processor does not answer; lifting the cut brings both back.
// (Before faults acted on whole process trees, the pool's connections kept
// answering: their backends had left the postmaster's process group.)
func TestCutRegionAnswersNothing(t *testing.T) {
	t.Parallel() // its own small environment: beside the shared ones coming up
	e, region, primary := faultEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool := warmPool(t, ctx, primary, 3)
	m, err := e.b.manifest()
	if err != nil {
		t.Fatal(err)
	}
	procURL := m.Regions[env.SlotPrimary].Processor.URL

	t0 := time.Now()
	restore, err := e.InjectFault(ctx, drill.FaultCutRegion, region)
	if err != nil {
		t.Fatalf("InjectFault(cut-region) error = %v", err)
	}
	t.Logf("cut-region injected and verified in %v", time.Since(t0))
	if n, of := pooledAnswers(ctx, pool); n != 0 || of != 3 {
		t.Errorf("pooled connections answering in the cut region = %d of %d, want 0 of 3", n, of)
	}
	cctx, ccancel := context.WithTimeout(ctx, time.Second)
	if _, err := primary.InRecovery(cctx); err == nil {
		t.Error("a new connection to the cut region's database answered")
	}
	ccancel()
	if healthAnswers(ctx, procURL) {
		t.Error("the cut region's processor answered /health")
	}

	if err := restore(ctx); err != nil {
		t.Fatalf("restore cut-region: %v", err)
	}
	// The pool dropped the connections that timed out; new ones work.
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Errorf("query through the pool after the cut is lifted = %v", err)
	}
	if !healthAnswers(ctx, procURL) {
		t.Error("processor does not answer /health after the cut is lifted")
	}
}

// TestKillFaultsLeaveNoProcess: kill-db leaves no process of the database
// (a pool's connections fail), kill-processor none of the processor, and
// lifting kill-processor starts it again.
func TestKillFaultsLeaveNoProcess(t *testing.T) {
	t.Parallel() // its own small environment: beside the shared ones coming up
	e, region, primary := faultEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool := warmPool(t, ctx, primary, 2)
	m, err := e.b.manifest()
	if err != nil {
		t.Fatal(err)
	}
	proc := m.Regions[env.SlotPrimary].Processor

	tree := daemon.Tree(primary.PID())
	if _, err := e.InjectFault(ctx, drill.FaultKillDB, region); err != nil {
		t.Fatalf("InjectFault(kill-db) error = %v", err)
	}
	if daemon.AnyAlive(tree) {
		t.Errorf("processes of the killed database alive: %v", tree)
	}
	if n, _ := pooledAnswers(ctx, pool); n != 0 {
		t.Errorf("%d pooled connections answer after kill-db, want 0", n)
	}

	restore, err := e.InjectFault(ctx, drill.FaultKillProcessor, region)
	if err != nil {
		t.Fatalf("InjectFault(kill-processor) error = %v", err)
	}
	if daemon.Alive(proc.PID, "") || healthAnswers(ctx, proc.URL) {
		t.Errorf("processor pid %d alive or answering after kill-processor", proc.PID)
	}
	if err := restore(ctx); err != nil {
		t.Fatalf("restore kill-processor: %v", err)
	}
	if !healthAnswers(ctx, proc.URL) {
		t.Error("processor does not answer after kill-processor is lifted")
	}
}
