package dr

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// The simulation drives the real Operate, Executor, Journal and FileLock
// against a model of two regions (simWorld, a Backend), in the spirit of
// FoundationDB's simulation testing: every schedule is a seeded sequence of
// operator commands with faults injected between and inside steps (the
// operator's process dying, a region lost and coming back, replication
// stalling or slowing, client writes, a second operator, a torn journal
// write, the clock jumping, an observation failing). Named invariants are
// checked at every step; a failure prints its seed, and -sim.seed replays
// that one schedule with its trace.

var (
	simSchedules = flag.Int("sim.schedules", 10000, "schedules TestSimulation runs")
	simSeed      = flag.Uint64("sim.seed", 0, "run only this schedule, printing its trace")
)

// simLog puts what paydr prints for the operator into the trace.
type simLog struct{ w *simWorld }

func (l simLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "sim ") {
			l.w.tracef("  | %s", line)
		}
	}
	return len(p), nil
}

// explained reports whether err is one an operator is meant to see: a
// refusal with its reason and remedy, a held lock, another unfinished
// operation, an operation left open, a step that failed (with how to
// resume), or the process dying.
func explained(err error) bool {
	var r *Refusal
	var inc *IncompleteError
	switch {
	case errors.As(err, &r):
		return r.Reason != "" && r.Remedy != ""
	case errors.As(err, &inc), errors.Is(err, ErrLocked), errors.Is(err, ErrUnfinishedOther), errors.Is(err, context.Canceled):
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "run the same command again") || strings.Contains(msg, "every step is done, but")
}

// run runs one operator command.
func (w *simWorld) run(req Request) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &simCmd{req: req, cancel: cancel, j: &Journal{Dir: w.journalDir, Now: w.now}}
	w.cmd, w.afterStep = c, simFacts{}
	defer func() { w.cmd, w.lastDid = nil, c.did }()
	out, err := Operate(ctx, w, FileLock{Path: w.lockPath}, c.j, req, simLog{w})
	w.tracef("command %s allow-data-loss=%v dry=%v -> op %s: %v", req.Op, req.Options.AllowDataLoss, req.DryRun, out.OpID, err)
	if c.crashed {
		return context.Canceled
	}
	if err != nil && !explained(err) {
		w.violate("errors-explained", "%s returned an error an operator cannot act on: %v", req.Op, err)
	}
	if out.OpID != "" && w.completed[out.OpID] {
		w.violate("finished-never-resumed", "%s resumed %s, which had finished", req.Op, out.OpID)
	}
	if req.DryRun {
		return err
	}
	if err == nil {
		w.completed[out.OpID] = true
		f := w.afterStep
		if !f.done { // resumed with every step done: judge the state now
			f = w.facts()
			if to, _ := w.region(out.Plan.To); to == nil || !to.takesWrites() {
				f.writer = ""
			}
		}
		if f.writers != 1 || f.writer != out.Plan.To || f.traffic != out.Plan.To {
			w.violate("complete-one-writer", "%s %s completed, but after its last step the state was %s", req.Op, out.OpID, f.state)
		}
		// The bound on loss follows the writer: a completed switchover or
		// failback enforces it on the new writer, whose standby the old
		// one is, and never on the standby; a completed failover leaves
		// its writer, which has no healthy standby, unbounded.
		switch req.Op {
		case Switchover, Failback:
			if !f.rpo[out.Plan.To] || f.rpo[out.Plan.From] {
				w.violate("rpo-follows-writer", "%s %s completed, but after its last step the state was %s (want the bound on %s only)", req.Op, out.OpID, f.state, out.Plan.To)
			}
		case Failover:
			if f.rpo[out.Plan.To] {
				w.violate("rpo-follows-writer", "%s %s completed, but after its last step the state was %s (want no bound on %s, which has no standby)", req.Op, out.OpID, f.state, out.Plan.To)
			}
		}
	}
	return err
}

// dryRunAgrees runs req as a dry run, then for real with no fault in
// either: a dry run that refuses means the real run refuses the same way,
// and one that prints a plan means the real run's first step is the dry
// run's first pending step.
func (w *simWorld) dryRunAgrees(req Request) {
	w.faults = false
	defer func() { w.faults = true }()
	dry := req
	dry.DryRun = true
	var dout strings.Builder
	_, derr := Operate(context.Background(), w, FileLock{Path: w.lockPath}, &Journal{Dir: w.journalDir, Now: w.now}, dry, &dout)
	first := pendingFirst(dout.String())
	err := w.run(req)
	did := w.lastDid
	var dr, rr *Refusal
	switch {
	case errors.As(derr, &dr):
		if !errors.As(err, &rr) || digits.ReplaceAllString(rr.Reason, "#") != digits.ReplaceAllString(dr.Reason, "#") {
			w.violate("dry-run-agrees", "the dry run refused (%v) but the real run returned %v", derr, err)
		}
	case derr != nil:
		if err == nil || err.Error() != derr.Error() {
			w.violate("dry-run-agrees", "the dry run failed (%v) but the real run returned %v", derr, err)
		}
	case len(did) > 0 && did[0] != first:
		w.violate("dry-run-agrees", "the dry run's next step was %q but the real run began with %s", first, did[0])
	}
}

// digits hides the figures of a message (lags measured a moment apart).
var digits = regexp.MustCompile(`[0-9.]+`)

// pendingFirst returns the first step of a rendered dry run that is not
// marked done.
func pendingFirst(out string) string {
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		if len(line) > 4 && line[2] == '.' && line[3] == ' ' {
			name := strings.SplitN(strings.TrimSpace(line[4:]), ":", 2)[0]
			name = strings.TrimSuffix(name, " (best effort)")
			if i+1 < len(lines) && (strings.HasPrefix(strings.TrimSpace(lines[i+1]), "[done") || strings.HasPrefix(strings.TrimSpace(lines[i+1]), "[owed, ")) {
				continue
			}
			return name
		}
	}
	return ""
}

func newSimWorld(seed uint64, dir string) *simWorld {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	w := &simWorld{
		rng: rng, aws: rng.IntN(2) == 0,
		r: [2]*simRegion{
			{name: "us-east-1", slot: "primary", role: RoleWriter, rpo: true},
			{name: "us-west-2", slot: "secondary", role: RoleStandby},
		},
		mono: simEpoch, wall: simEpoch, caughtUpMono: simEpoch, caughtUp: simEpoch,
		lockPath: filepath.Join(dir, "lock"), journalDir: filepath.Join(dir, "journal"),
		completed: map[string]bool{}, primary: "us-east-1",
	}
	os.MkdirAll(w.journalDir, 0o755)
	return w
}

// simulate runs one schedule and returns the world for its invariants.
func simulate(seed uint64, dir string) *simWorld {
	w := newSimWorld(seed, dir)
	w.tracef("schedule %d, %s flavour", seed, map[bool]string{true: "aws", false: "local"}[w.aws])
	w.faults = true
	for range 3 + w.rng.IntN(6) {
		ops := []Operation{Switchover, Failover, Failback}
		req := Request{Op: ops[w.rng.IntN(3)], Options: Options{AllowDataLoss: w.rng.IntN(2) == 0, MaxSwitchoverLag: simMaxLag}, Owner: "operator"}
		switch k := w.rng.IntN(10); {
		case k == 0:
			id, err := Abandon(context.Background(), FileLock{Path: w.lockPath}, &Journal{Dir: w.journalDir, Now: w.now}, "operator", "giving up", false, io.Discard)
			if err == nil {
				w.completed[id] = true
			}
			w.tracef("command abandon -> %v", err)
		case k <= 2:
			w.dryRunAgrees(req)
		default:
			w.run(req)
		}
	}
	w.heal()
	return w
}

// heal ends the faults, then acts as a careful operator would until the
// service is whole: resume what is unfinished (accepting data loss, as an
// operator would after reading the refusal), abandon what refuses, and
// fail over or fail back from what status shows. It checks that this
// converges: one writer, traffic on it, nothing unfinished.
func (w *simWorld) heal() {
	w.faults = false
	for _, r := range w.r {
		if r.lost {
			w.back(r)
		}
	}
	w.repl = replOK
	w.replicate()
	w.tracef("heal: %s", w.state())
	j := &Journal{Dir: w.journalDir, Now: w.now}
	for range 8 {
		u, err := j.Unfinished()
		if err != nil {
			w.violate("journal-readable", "after the schedule: %v", err)
			return
		}
		if u != nil {
			if err := w.run(Request{Op: u.Plan.Op, Options: Options{AllowDataLoss: true, MaxSwitchoverLag: simMaxLag}, Owner: "healer"}); err != nil {
				var r *Refusal
				if errors.As(err, &r) {
					Abandon(context.Background(), FileLock{Path: w.lockPath}, j, "healer", "refused: "+r.Reason, false, io.Discard)
					w.completed[u.ID] = true
				}
			}
			continue
		}
		if w.liveWriters() == 1 {
			wr := w.r[0]
			if !wr.takesWrites() {
				wr = w.r[1]
			}
			if w.traffic() == wr.name {
				return
			}
		}
		st, _ := w.Status(context.Background())
		op := Failover
		if ws := st.Writers(); len(ws) == 1 && live(ws[0]) {
			op = Failback
		}
		if err := w.run(Request{Op: op, Options: Options{AllowDataLoss: true, MaxSwitchoverLag: simMaxLag}, Owner: "healer"}); err != nil {
			var r *Refusal
			if errors.As(err, &r) && strings.Contains(r.Reason, "both writable") {
				// The operator keeps the writer the failover name sends
				// traffic to, and fences the other (its data is kept).
				target := w.r[1].name
				if w.traffic() == target {
					target = w.r[0].name
				}
				w.tracef("heal: two writers: the operator fences %s", target)
				w.run(Request{Op: Fence, Options: Options{Target: target}, Owner: "healer"})
			}
		}
	}
	w.violate("recovers", "after healing, 8 commands did not bring back one writer with traffic on it: %s", w.state())
}

func TestSimulation(t *testing.T) {
	base := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm" // journal fsyncs cost nothing on tmpfs; the code path is the same
	}
	root, err := os.MkdirTemp(base, "paydr-sim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	seeds := make([]uint64, 0, *simSchedules)
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range *simSchedules {
			seeds = append(seeds, uint64(i+1))
		}
	}
	start := time.Now()
	// Schedules are independent (each has its own directory and world), so
	// they run on every core; each is deterministic on its own.
	type result struct {
		seed uint64
		w    *simWorld
	}
	jobs, results := make(chan uint64), make(chan result)
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for seed := range jobs {
				dir := filepath.Join(root, fmt.Sprint(seed))
				w := simulate(seed, dir)
				os.RemoveAll(dir)
				results <- result{seed, w}
			}
		}()
	}
	go func() {
		for _, seed := range seeds {
			jobs <- seed
		}
		close(jobs)
	}()
	counts := map[string]int{}
	var failed *result
	for range seeds {
		r := <-results
		w := r.w
		if *simSeed != 0 {
			t.Logf("trace:\n%s", strings.Join(w.trace, "\n"))
		}
		for _, line := range w.trace {
			for _, k := range []string{"fault: operator process dies", "fault: torn journal", "second operator", "loses writes", "fault: clock jumps", "the operator fences", "exceeds 5s", "data may be lost", "both writable", "no longer the writer", "would fence the only writer", "no longer needed", "again: it failed before", "not now, owed", "-> enforced", "-> relaxed"} {
				if strings.Contains(line, k) {
					counts[k]++
				}
			}
		}
		if len(w.violations) > 0 && (failed == nil || r.seed < failed.seed) {
			failed = &r
		}
	}
	if failed != nil {
		w := failed.w
		slices.Sort(w.violations)
		t.Fatalf("schedule %d broke %s\nreplay: go test ./internal/dr -run TestSimulation -sim.seed %d -v\ntrace:\n%s",
			failed.seed, strings.Join(slices.Compact(w.violations), "; "), failed.seed, strings.Join(w.trace, "\n"))
	}
	el := time.Since(start)
	t.Logf("%d schedules in %s (%.0f schedules/s); faults injected: %v", len(seeds), el.Round(time.Millisecond), float64(len(seeds))/el.Seconds(), counts)
}
