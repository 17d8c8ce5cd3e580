package localdr

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"paydr/internal/dr"
	"paydr/internal/dr/drill"
	"paydr/internal/dr/drtest"
	"paydr/internal/ledger"
	"paydr/internal/local/pg"
	"paydr/internal/needs"
)

// The integration tests run against two local environments per test binary
// (paydr up takes about 2½ minutes, most of it the provider's waiting), so
// that the drill matrix can run half its drills on each at once: envA, for
// every test, and envB, for the matrix's other half. (A third environment
// did not shorten the package in CI: four ups at once, with
// internal/local's, slowed every one of them.) $PAYDR_DR_TEST_STATE_DIR
// names an environment that already runs, which then serves as both; else
// the first test that asks for an environment builds paydr and brings it up
// in a temporary state directory, and TestMain takes it down at the end. A
// run that selects no such test brings nothing up. Without terraform,
// moto_server or PostgreSQL they skip, unless $CI is set.
//
// The tests that use an environment are parallel and take turns on it
// (testEnv.use): both environments come up at once, and while the matrix's
// half runs on envB the other tests run on envA.

// testEnv is one local environment the tests share.
type testEnv struct {
	name   string
	once   sync.Once
	dir    string // the state directory
	exe    string // the paydr bringUp built ("" for $PAYDR_DR_TEST_STATE_DIR)
	skip   string
	failed error
	down   func() // takes down what bringUp brought up
	turn   sync.Mutex
}

var (
	envA = &testEnv{name: "a"}
	envB = &testEnv{name: "b"}
	// buildOnce builds paydr once for both environments.
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// The tests' drills send testDrillRate payments/s for at least
// testDrillDuration with the fault at testDrillFaultAfter (the README's
// matrix runs 30 s). The drill itself runs traffic on to 5 s past the end
// of its operation (drill.Run), so recovery is seen however late it comes:
// the slow failovers (cut-region, partition: promotion about 11 s after
// the fault) run about 21 s whatever the duration, and 12 s lets the fast
// ones (kill-db, kill-processor, switchover: done about 7 s after the
// fault) end at about 17 s instead of 20 s, or 12 s with replication cut.
// Each drill must have sent at least minDrillSent, 90% of the planned
// payments, or the traffic did not flow.
const (
	testDrillRate       = 5
	testDrillDuration   = 12 * time.Second
	testDrillFaultAfter = 5 * time.Second
	minDrillSent        = testDrillRate * int(testDrillDuration/time.Second) * 9 / 10
)

// testRPOBound is the bound on loss the tests' environment enforces: drills
// use seconds, so a cut longer than the bound shows it holding.
const testRPOBound = "2s"

func TestMain(m *testing.M) {
	flag.Parse()
	// The environment tests are parallel but take turns on their
	// environment, so most of them wait at any moment; a parallelism of
	// GOMAXPROCS (2 here) would leave envB idle behind them.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "8")
	}
	code := m.Run()
	var downs sync.WaitGroup
	for _, e := range []*testEnv{envA, envB} {
		if e.down != nil {
			downs.Go(e.down)
		}
	}
	downs.Wait()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// buildPaydr builds paydr and paydr-aws into a temporary directory, once.
func buildPaydr() (string, error) {
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		if buildDir, err = os.MkdirTemp("", "paydr-dr-bin-"); err != nil {
			buildErr = err
			return
		}
		build := exec.Command("go", "build", "-o", buildDir+string(filepath.Separator), "./cmd/paydr", "./cmd/paydr-aws")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build paydr: %v\n%s", err, out)
		}
	})
	return filepath.Join(buildDir, "paydr"), buildErr
}

// bringUp sets e.dir to a running environment, or e.skip or e.failed.
func (e *testEnv) bringUp() {
	if testing.Short() {
		e.skip = "-short"
		return
	}
	if dir := os.Getenv("PAYDR_DR_TEST_STATE_DIR"); dir != "" {
		e.dir = dir
		return
	}
	for _, tool := range []string{"terraform", "moto_server"} {
		if _, err := exec.LookPath(tool); err != nil {
			e.skip = tool + " is not installed (see paydr up's prerequisites)"
			return
		}
	}
	root, err := moduleRoot()
	if err != nil {
		e.failed = err
		return
	}
	exe, err := buildPaydr()
	if err != nil {
		e.failed = err
		return
	}
	tmp, err := os.MkdirTemp("", "paydr-dr-"+e.name+"-")
	if err != nil {
		e.failed = err
		return
	}
	e.down = func() { os.RemoveAll(tmp) }
	// PostgreSQL runs as an unprivileged user when the tests run as root:
	// it must be able to reach its data directory.
	if err := os.Chmod(tmp, 0o755); err != nil {
		e.failed = err
		return
	}
	e.dir = filepath.Join(tmp, "state")
	e.down = func() {
		_ = exec.Command(exe, "down", "--state-dir", e.dir).Run()
		os.RemoveAll(tmp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e.exe = exe
	up := exec.CommandContext(ctx, exe, "up", "--state-dir", e.dir, "--rpo-bound", testRPOBound)
	up.Dir = root
	if out, err := up.CombinedOutput(); err != nil {
		e.failed = fmt.Errorf("paydr up (environment %s): %v\n%s", e.name, err, out)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// environment makes t parallel and returns envA's backend, or skips; t has
// the environment to itself until it ends.
func environment(t *testing.T) *Backend {
	t.Helper()
	t.Parallel()
	return envA.use(t)
}

// use brings e up if no test has yet, waits for e's turn, and returns its
// backend; the turn ends with t. t must be parallel, and use at most one
// environment at a time.
func (e *testEnv) use(t *testing.T) *Backend {
	t.Helper()
	if os.Getenv("PAYDR_DR_TEST_STATE_DIR") != "" && e != envA {
		// One environment given: it serves as both.
		return envA.use(t)
	}
	e.once.Do(e.bringUp)
	if e.failed != nil {
		t.Fatalf("local environment %s: %v", e.name, e.failed)
	}
	if e.skip != "" {
		needs.Tool(t, fmt.Errorf("no local environment: %s", e.skip))
	}
	e.turn.Lock()
	t.Cleanup(e.turn.Unlock)
	b, err := Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func operate(t *testing.T, b *Backend, req dr.Request) dr.Outcome {
	t.Helper()
	j, err := b.Journal()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	out, err := dr.Operate(context.Background(), b, b.Locker(), j, req, &log)
	if err != nil {
		t.Fatalf("%s: %v\n%s", req.Op, err, log.String())
	}
	t.Logf("%s:\n%s", req.Op, log.String())
	return out
}

func status(t *testing.T, b *Backend) dr.Status {
	t.Helper()
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func writer(t *testing.T, st dr.Status) string {
	t.Helper()
	ws := st.Writers()
	if len(ws) != 1 {
		t.Fatalf("writers = %v, want exactly one", ws)
	}
	return ws[0].Name
}

// restore returns the writer to the primary slot with a failback, when it
// is elsewhere.
func restore(t *testing.T, b *Backend) {
	t.Helper()
	st := status(t, b)
	home, _ := st.Slot("primary")
	if home.Role == dr.RoleWriter {
		return
	}
	operate(t, b, dr.Request{Op: dr.Failback, Owner: "test"})
	st = status(t, b)
	if got := writer(t, st); got != home.Name || !st.Replication.Streaming || st.Traffic != home.Name {
		t.Fatalf("after failback: writer %s, streaming %v, traffic %s; want %s, true, %s", got, st.Replication.Streaming, st.Traffic, home.Name, home.Name)
	}
}

// drill runs one drill and checks its report's targets.
func runDrill(t *testing.T, b *Backend, fault string, cut time.Duration) *drill.Report {
	t.Helper()
	j, _ := b.Journal()
	var log strings.Builder
	rep, err := drill.Run(context.Background(), b, b.DrillEnv(), b.Locker(), j, drill.Options{
		Fault: fault, Rate: testDrillRate, Duration: testDrillDuration, FaultAfter: testDrillFaultAfter, CutReplication: cut, Log: &log})
	if rep != nil {
		var text strings.Builder
		rep.Render(&text)
		t.Logf("drill %s:\n%s\n%s", fault, log.String(), text.String())
		if dir := os.Getenv("PAYDR_DR_TEST_OUT"); dir != "" {
			name := "test-drill-" + fault // apart from the matrix's drill-<case> files
			if cut > 0 {
				name += "-cut-replication"
			}
			if rep.RPOZero {
				name += "-rpo0"
			}
			f, _ := os.Create(filepath.Join(dir, name+".svg"))
			rep.WriteTimeline(f)
			f.Close()
			g, _ := os.Create(filepath.Join(dir, name+".txt"))
			g.WriteString(text.String())
			g.Close()
		}
	}
	if err != nil {
		t.Fatalf("drill %s: %v", fault, err)
	}
	for _, c := range rep.Checks {
		if !c.Pass {
			t.Errorf("drill %s: check %q failed: %s", fault, c.Name, c.Detail)
		}
	}
	if n := rep.Classification.Counts[drill.ClassDuplicated]; n != 0 {
		t.Errorf("drill %s: %d duplicated payments, want 0", fault, n)
	}
	if rep.Acked == 0 || rep.Sent < minDrillSent {
		t.Errorf("drill %s: %d sent, %d acknowledged; the traffic did not flow", fault, rep.Sent, rep.Acked)
	}
	return rep
}

func TestLocalDR(t *testing.T) {
	b := environment(t)
	restore(t, b)
	st := status(t, b)
	home, _ := st.Slot("primary")
	away, _ := st.Slot("secondary")
	if writer(t, st) != home.Name || !st.Replication.Streaming || st.Traffic != home.Name {
		t.Fatalf("initial status: %+v; want %s writing, streaming, traffic there", st, home.Name)
	}

	t.Run("backend contract", func(t *testing.T) { drtest.Contract(t, b) })

	t.Run("failover refuses while the writer is healthy", func(t *testing.T) {
		j, _ := b.Journal()
		_, err := dr.Operate(context.Background(), b, b.Locker(), j, dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}}, &strings.Builder{})
		var r *dr.Refusal
		if !errors.As(err, &r) || !strings.Contains(err.Error(), "use paydr dr switchover") {
			t.Errorf("failover on a healthy pair = %v, want a refusal pointing to switchover", err)
		}
	})

	t.Run("lock contention", func(t *testing.T) {
		unlock, err := b.Locker().Lock(context.Background(), dr.LockInfo{Owner: "other operator", PID: os.Getpid(), Host: "elsewhere", Op: "failover"})
		if err != nil {
			t.Fatal(err)
		}
		defer unlock(context.Background())
		j, _ := b.Journal()
		_, err = dr.Operate(context.Background(), b, b.Locker(), j, dr.Request{Op: dr.Switchover}, &strings.Builder{})
		if !errors.Is(err, dr.ErrLocked) {
			t.Errorf("switchover while locked = %v, want ErrLocked", err)
		}
		if got := writer(t, status(t, b)); got != home.Name {
			t.Errorf("writer after a refused switchover = %s, want %s", got, home.Name)
		}
	})

	t.Run("switchover resumes after a crash", func(t *testing.T) {
		j, _ := b.Journal()
		ctx, cancel := context.WithCancel(context.Background())
		crash := &crashAt{Backend: b, at: dr.ActionPromote, cancel: cancel}
		_, err := dr.Operate(ctx, crash, b.Locker(), j, dr.Request{Op: dr.Switchover, Owner: "test"}, &strings.Builder{})
		if err == nil {
			t.Fatal("switchover with a crash before promote succeeded")
		}
		u, err := j.Unfinished()
		// Every step before promote done (fence, wait, relax-rpo), promote not.
		promote := -1
		if err == nil && u != nil {
			promote = slices.IndexFunc(u.Plan.Steps, func(s dr.Step) bool { return s.Action == dr.ActionPromote })
		}
		if err != nil || u == nil || u.Plan.Op != dr.Switchover || promote < 2 || slices.Contains(u.Done[:promote], false) || u.Done[promote] {
			t.Fatalf("journal after the crash = %+v, %v; want an unfinished switchover with every step before promote done", u, err)
		}
		// The old writer is fenced (stopped), the standby not promoted:
		// nobody writes. Running the operation again resumes it.
		out := operate(t, b, dr.Request{Op: dr.Switchover, Owner: "test"})
		if out.OpID != u.ID || !out.Steps[0].Resumed {
			t.Errorf("resumed operation %s (step 1 resumed %v), want %s resumed", out.OpID, out.Steps[0].Resumed, u.ID)
		}
		if got := writer(t, status(t, b)); got != away.Name {
			t.Errorf("writer after resume = %s, want %s", got, away.Name)
		}
		restore(t, b)
	})

	// The drills (every fault, with and without a replication cut) are
	// TestDrillMatrix's.
}

// crashAt cancels the operation's context when it reaches action, as if
// the process died there.
type crashAt struct {
	*Backend
	at     dr.Action
	cancel context.CancelFunc
}

func (c *crashAt) Do(ctx context.Context, opID string, s dr.Step) (string, error) {
	if s.Action == c.at {
		c.cancel()
		return "", ctx.Err()
	}
	return c.Backend.Do(ctx, opID, s)
}

// preservedPayments starts a throwaway server on a copy of the data
// directory the drill's failover preserved, and returns the drill's
// payment ids found there.
func preservedPayments(t *testing.T, b *Backend, rep *drill.Report) map[string]bool {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(b.DRDir(), "preserved", rep.OpID+"-*"))
	// The copy, beside its TLS files (<copy>.tls).
	found := slices.DeleteFunc(slices.Clone(all), func(p string) bool { return strings.HasSuffix(p, ".tls") })
	if err != nil || len(found) != 1 || len(all) != 2 {
		t.Fatalf("preserved copy of operation %s: %v (%v)", rep.OpID, found, err)
	}
	m, err := b.manifest()
	if err != nil {
		t.Fatal(err)
	}
	var dsn string
	for _, r := range m.Regions {
		dsn = r.Database.DSN
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Path == "" {
		t.Fatalf("database of the environment: %q: %v", dsn, err)
	}
	tmp, err := os.MkdirTemp("", "paydr-preserved-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(tmp, "data")
	if out, err := exec.Command("cp", "-a", found[0], data).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", found[0], err, out)
	}
	// The copy's TLS files, which the preserve step keeps beside it.
	if out, err := exec.Command("cp", "-a", found[0]+".tls", data+".tls").CombinedOutput(); err != nil {
		t.Fatalf("copy the TLS files of %s: %v: %s", found[0], err, out)
	}
	port, err := pg.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pg.StartPrimary(ctx, pg.Options{DataDir: data, Port: port})
	if err != nil {
		t.Fatalf("start a server on the preserved copy: %v", err)
	}
	defer srv.Stop(context.Background())
	l, err := ledger.Open(ledger.Options{DSN: srv.DSN(strings.TrimPrefix(u.Path, "/")), Region: rep.From, MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ps, err := l.Payments(ctx)
	if err != nil {
		t.Fatalf("payments in the preserved copy: %v", err)
	}
	ids := map[string]bool{}
	for _, p := range ps {
		if strings.HasPrefix(p.PaymentID, rep.Prefix) {
			ids[p.PaymentID] = true
		}
	}
	return ids
}
