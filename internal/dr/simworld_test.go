package dr

// The model the simulation (sim_test.go) drives the real code against:
// two regions, replication, the failover name, and the faults injected at
// each hook point, with the invariants of each transition.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// simRegion is one region of the model.
type simRegion struct {
	name, slot string
	// role is the database's true role: writer, standby or down.
	role Role
	// lost: neither the operator nor clients reach the region.
	lost bool
	// fenced: the processor is fenced (AWS flavour: reserved concurrency
	// 0). The local flavour fences by stopping the database (role down).
	fenced bool
	// lsn counts the writes the database holds; preserved is the highest
	// lsn kept in a preserved copy.
	lsn, preserved int
	// rpo: the deployment's bound on loss (simRPOBound) is enforced on
	// the region's writes (AWS: rds.global_db_rpo in its cluster
	// parameter group). As the writer, it then commits nothing while its
	// standby does not keep within the bound.
	rpo bool
}

// takesWrites reports whether clients that reach r can commit there.
func (r *simRegion) takesWrites() bool { return r.role == RoleWriter && !r.fenced && !r.lost }

type replMode int

const (
	replOK      replMode = iota // streaming, applied at once
	replSlow                    // streaming, applying nothing: lag grows
	replStalled                 // not streaming
)

// simWorld is the model and the Backend the real code acts on.
type simWorld struct {
	rng  *rand.Rand
	aws  bool
	r    [2]*simRegion
	repl replMode
	// mono is the simulated monotonic time; wall is the clock paydr reads,
	// which may jump. caughtUpMono/Wall are when the standby last held
	// everything the writer had.
	mono, wall             time.Time
	caughtUpMono, caughtUp time.Time
	faults                 bool
	trace                  []string
	violations             []string
	cmd                    *simCmd
	lockPath, journalDir   string
	completed              map[string]bool // operations done or abandoned
	// primary is the cluster the global cluster's metadata names primary
	// (AWS flavour): Aurora demotes any other writer that comes back.
	primary         string
	lastDid         []string // the steps the last command did
	afterStep       simFacts // the facts right after the last step's effect
	lastLagObserved time.Duration
	// trueLagObserved is the true (monotonic) lag at the last observation:
	// what a decision made on that observation is judged by.
	trueLagObserved time.Duration
}

// simFacts are the facts an operation's completion is judged by: as they
// were right after its last step, before the world moved on.
type simFacts struct {
	done            bool
	writers         int
	writer, traffic string
	state           string
	// rpo is whether each region enforces the bound on loss.
	rpo map[string]bool
}

// simCmd is one operator command as it runs.
type simCmd struct {
	req     Request
	cancel  context.CancelFunc
	crashed bool
	j       *Journal
	did     []string
}

func (w *simWorld) tracef(format string, args ...any) {
	w.trace = append(w.trace, fmt.Sprintf("%6.1fs ", w.mono.Sub(simEpoch).Seconds())+fmt.Sprintf(format, args...))
}

func (w *simWorld) violate(name, format string, args ...any) {
	msg := name + ": " + fmt.Sprintf(format, args...)
	w.tracef("VIOLATION %s", msg)
	w.violations = append(w.violations, msg)
}

var simEpoch = time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)

// simMaxLag is the lag bound the simulated operators pass (--max-lag):
// short, so that schedules of a few simulated minutes cross it.
const simMaxLag = 5 * time.Second

// simRPOBound is the deployment's bound on loss (the stack setting; AWS's
// minimum), which enforce-rpo enforces on the writer.
const simRPOBound = 20 * time.Second

func (w *simWorld) region(name string) (*simRegion, *simRegion) {
	if w.r[0].name == name {
		return w.r[0], w.r[1]
	}
	if w.r[1].name == name {
		return w.r[1], w.r[0]
	}
	return nil, nil
}

// writerAndStandby returns the writer and the standby of the pair, if the
// pair has one of each.
func (w *simWorld) writerAndStandby() (*simRegion, *simRegion) {
	for i, r := range w.r {
		if o := w.r[1-i]; r.role == RoleWriter && o.role == RoleStandby {
			return r, o
		}
	}
	return nil, nil
}

// replicate applies the writer's writes to the standby while replication
// streams normally, and notes when the standby has everything.
func (w *simWorld) replicate() {
	wr, sb := w.writerAndStandby()
	if wr == nil {
		return
	}
	if !wr.lost && !sb.lost && w.repl == replOK {
		sb.lsn = max(sb.lsn, wr.lsn)
	}
	if sb.lsn >= wr.lsn {
		w.caughtUpMono, w.caughtUp = w.mono, w.wall
	}
}

func (w *simWorld) advance(d time.Duration) {
	w.mono, w.wall = w.mono.Add(d), w.wall.Add(d)
	w.replicate()
}

// blocked reports whether r, a writer enforcing the bound on loss, holds
// its commits back: its standby is lost, not a standby, not streaming, or
// behind by more than the bound (by the true, monotonic, lag), as Aurora
// judges it.
func (w *simWorld) blocked(r *simRegion) bool {
	if !r.rpo || r.role != RoleWriter {
		return false
	}
	o := w.other(r)
	if o.role != RoleStandby || o.lost || w.repl == replStalled {
		return true
	}
	return o.lsn < r.lsn && w.mono.Sub(w.caughtUpMono) > simRPOBound
}

// liveWriters counts the regions clients can commit to.
func (w *simWorld) liveWriters() int {
	n := 0
	for _, r := range w.r {
		if r.takesWrites() {
			n++
		}
	}
	return n
}

func (w *simWorld) state() string {
	var b strings.Builder
	for _, r := range w.r {
		fmt.Fprintf(&b, "%s:%s/lsn%d", r.name, r.role, r.lsn)
		if r.lost {
			b.WriteString("/LOST")
		}
		if r.fenced {
			b.WriteString("/fenced")
		}
		if r.rpo {
			b.WriteString("/rpo")
		}
		b.WriteString(" ")
	}
	fmt.Fprintf(&b, "repl=%d traffic=%s", w.repl, w.traffic())
	return b.String()
}

// healthy is what a health check sees: a writer that takes writes and
// commits them.
func (w *simWorld) healthy(r *simRegion) bool { return r.takesWrites() && !w.blocked(r) }

// traffic is where the failover name sends clients: the primary slot while
// healthy, else the secondary while healthy, else the primary.
func (w *simWorld) traffic() string {
	if w.healthy(w.r[0]) || !w.healthy(w.r[1]) {
		return w.r[0].name
	}
	return w.r[1].name
}

// fault fires the faults of one hook point.
func (w *simWorld) fault(where string) error {
	if !w.faults {
		return nil
	}
	p := w.rng.Float64
	c := w.cmd
	if strings.HasPrefix(where, "do-before") {
		// Between the observation a guard judged and the step, only the
		// operator's process may die: the invariants judge the decision.
		if c != nil && !c.crashed && p() < 0.03 {
			return w.crash(where)
		}
		return nil
	}
	if p() < 0.06 {
		r := w.r[w.rng.IntN(2)]
		if !r.lost {
			r.lost = true
			w.tracef("fault: %s lost (%s)", r.name, where)
		} else {
			w.back(r)
		}
	}
	if p() < 0.06 {
		old := w.repl
		w.repl = replMode(w.rng.IntN(3))
		if old != w.repl {
			w.tracef("fault: replication %d -> %d", old, w.repl)
		}
		w.replicate()
	}
	if p() < 0.15 {
		for _, r := range w.r {
			if r.takesWrites() && !w.blocked(r) {
				r.lsn += 1 + w.rng.IntN(3)
			}
		}
		w.replicate()
	}
	if p() < 0.02 {
		jump := time.Duration(w.rng.IntN(4*3600)-2*3600) * time.Second
		w.wall = w.wall.Add(jump)
		w.tracef("fault: clock jumps %s", jump)
	}
	if where == "status" && p() < 0.02 {
		w.tracef("fault: observation fails")
		return errors.New("sim: observation failed (control plane error)")
	}
	if c == nil || c.crashed || !strings.HasPrefix(where, "do") {
		return nil
	}
	if p() < 0.03 {
		w.secondOperator()
	}
	if p() < 0.04 {
		return w.crash(where)
	}
	return nil
}

// crash kills the running command's process: no more journal writes, the
// lock released (by the kernel, in life), sometimes a torn last line.
func (w *simWorld) crash(where string) error {
	c := w.cmd
	c.crashed = true
	c.cancel()
	c.j.Dir = filepath.Join(w.journalDir, "crashed-no-more-writes")
	w.tracef("fault: operator process dies (%s)", where)
	if w.rng.Float64() < 0.5 {
		w.tearJournal()
	}
	return context.Canceled
}

// back brings a lost region back. On AWS, Aurora demotes a former writer
// whose peer was promoted meanwhile (keeping its data in a snapshot).
func (w *simWorld) back(r *simRegion) {
	r.lost = false
	o := w.other(r)
	if w.aws && r.role == RoleWriter && r.name != w.primary {
		r.preserved = max(r.preserved, r.lsn)
		r.role, r.lsn = RoleStandby, o.lsn
		w.tracef("fault: %s back; Aurora demotes it to a secondary", r.name)
	} else {
		w.tracef("fault: %s back as %s", r.name, r.role)
	}
	w.replicate()
}

func (w *simWorld) other(r *simRegion) *simRegion {
	if w.r[0] == r {
		return w.r[1]
	}
	return w.r[0]
}

// tearJournal leaves a partial line at the end of the newest journal file,
// as a crash in the middle of an append does.
func (w *simWorld) tearJournal() {
	des, _ := os.ReadDir(w.journalDir)
	var newest string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".jsonl") {
			newest = de.Name()
		}
	}
	if newest == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(w.journalDir, newest), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return
	}
	f.WriteString(`{"time":"2026-12-01T03:00:00Z","op_id":"x","event":"end","st`)
	f.Close()
	w.tracef("fault: torn journal line in %s", newest)
}

// secondOperator runs another operation while this one holds the lock: it
// must be refused by the lock and change nothing.
func (w *simWorld) secondOperator() {
	before := w.state()
	op := []Operation{Switchover, Failover, Failback}[w.rng.IntN(3)]
	saved := w.cmd
	w.cmd = nil
	_, err := Operate(context.Background(), w, FileLock{Path: w.lockPath}, &Journal{Dir: w.journalDir, Now: w.now},
		Request{Op: op, Options: Options{AllowDataLoss: true}, Owner: "second operator"}, io.Discard)
	w.cmd = saved
	w.tracef("second operator: %s -> %v", op, err)
	if !errors.Is(err, ErrLocked) {
		w.violate("one-holder", "a second operator's %s while the lock is held returned %v, want ErrLocked", op, err)
	}
	if after := w.state(); after != before {
		w.violate("one-holder", "a second operator changed %s into %s", before, after)
	}
}

func (w *simWorld) now() time.Time { return w.wall }

// Status implements Observer: what the backends observe.
func (w *simWorld) Status(ctx context.Context) (Status, error) {
	if err := w.fault("status"); err != nil {
		return Status{}, err
	}
	w.advance(100 * time.Millisecond)
	st := Status{Backend: "sim", Observed: w.wall, Replication: Replication{LagBytes: -1}, RPOTarget: simRPOBound}
	for _, r := range w.r {
		reg := Region{Name: r.name, Slot: r.slot, Role: r.role, Reachable: !r.lost, Healthy: w.healthy(r), Fenced: r.fenced || r.role == RoleDown}
		if r.rpo {
			reg.RPOBound = simRPOBound
		}
		if r.lost {
			reg.Fenced, reg.RPOBound = false, 0 // its parameters cannot be read
			if !w.aws {
				reg.Role = RoleUnknown // locally an unreachable database says nothing
			}
		}
		st.Regions = append(st.Regions, reg)
	}
	wr, sb := w.writerAndStandby()
	w.trueLagObserved = 0
	if wr != nil && sb.lsn < wr.lsn {
		w.trueLagObserved = w.mono.Sub(w.caughtUpMono)
	}
	switch {
	case wr != nil && !wr.lost && !sb.lost:
		lag := max(0, w.wall.Sub(w.caughtUp))
		if sb.lsn >= wr.lsn {
			lag = 0
		}
		w.lastLagObserved = lag
		st.Replication = Replication{Known: true, Streaming: w.repl != replStalled, LagBytes: int64(wr.lsn - sb.lsn), ReplayLag: lag, RPOLag: lag}
		st.Replication.State = map[bool]string{true: "streaming", false: "stopped"}[st.Replication.Streaming]
	case wr != nil:
		st.Replication.ReplayLag, st.Replication.RPOLag = w.lastLagObserved, w.lastLagObserved
	}
	st.Traffic = w.traffic()
	return st, nil
}

// Calls implements Runner.
func (w *simWorld) Calls(s Step) []string { return []string{"sim " + s.Name()} }

// Do implements Runner: the step's effect on the model, with the checks the
// real backends make, and the invariants of each transition.
func (w *simWorld) Do(ctx context.Context, opID string, s Step) (string, error) {
	c := w.cmd
	if c != nil {
		c.did = append(c.did, s.Name())
	}
	if err := w.fault("do-before " + s.Name()); err != nil {
		return "", err
	}
	w.advance(time.Second)
	r, peer := w.region(s.Region)
	if r == nil {
		return "", fmt.Errorf("sim: no region %s", s.Region)
	}
	if r.lost {
		w.tracef("paydr %s %s -> region unreachable", opID, s.Name())
		return "", fmt.Errorf("sim: %s: region unreachable", s.Name())
	}
	before := w.liveWriters()
	w.checkBefore(s, r, peer)
	res, err := w.effect(s, r, peer)
	w.replicate()
	w.tracef("paydr %s %s -> %v %v | %s", opID, s.Name(), res, err, w.state())
	if before < 2 && w.liveWriters() == 2 {
		w.violate("single-writer", "%s made two regions writable", s.Name())
	}
	w.afterStep = w.facts()
	w.afterStep.done = true
	if err != nil {
		return "", err
	}
	if err := w.fault("do-after " + s.Name()); err != nil {
		return "", err // the step happened; the crash lost its result
	}
	return res, nil
}

// facts are the facts now.
func (w *simWorld) facts() simFacts {
	f := simFacts{writers: w.liveWriters(), traffic: w.traffic(), state: w.state(), rpo: map[string]bool{}}
	for _, x := range w.r {
		if x.takesWrites() {
			f.writer = x.name
		}
		f.rpo[x.name] = x.rpo
	}
	return f
}

// checkBefore checks the invariants about the step about to take effect.
func (w *simWorld) checkBefore(s Step, r, peer *simRegion) {
	if w.liveWriters() == 2 && s.Action != ActionFence && guarded(s.Action) {
		w.violate("fence-first", "%s ran while two regions take writes", s.Name())
	}
	switch s.Action {
	case ActionUnfence:
		if r.role != RoleWriter {
			w.violate("unfence-only-writer", "unfence %s, whose database is %s", r.name, r.role)
		}
	case ActionFence:
		op := Operation("")
		if w.cmd != nil {
			op = w.cmd.req.Op
		}
		if r.takesWrites() && !peer.takesWrites() && op != Failover {
			// Fencing the only writer: the standby must take over within
			// the bound, by the true (monotonic) lag.
			lag := w.trueLagObserved
			if _, sb := w.writerAndStandby(); sb != peer || peer.lost || w.repl == replStalled || (peer.lsn < r.lsn && lag > simMaxLag) {
				w.violate("fence-needs-successor", "%s fenced the only writer while %s is %s (lost %v, replication %d, true lag %s)", op, peer.name, peer.role, peer.lost, w.repl, lag)
			}
		}
	case ActionRebuildStandby:
		if r.lsn > peer.lsn && r.preserved < r.lsn {
			w.violate("preserve-before-discard", "rebuilding %s discards writes %d..%d never preserved", r.name, peer.lsn+1, r.lsn)
		}
	case ActionEnforceRPO:
		// A bound is enforced only on a writer whose standby streams
		// (within the bound, by the lag the decision was made on): else
		// it stops acknowledging at once.
		if !r.rpo && (r.role != RoleWriter || peer.role != RoleStandby || peer.lost || w.repl == replStalled ||
			(peer.lsn < r.lsn && w.trueLagObserved > simRPOBound)) {
			w.violate("rpo-needs-standby", "enforce-rpo on %s (%s) while %s is %s (lost %v, replication %d, true lag %s)", r.name, r.role, peer.name, peer.role, peer.lost, w.repl, w.trueLagObserved)
		}
	case ActionPromote:
		// A failover's new writer has no healthy standby: a bound would
		// block every commit.
		if s.Mode == ModeFailover && r.rpo && r.role == RoleStandby {
			w.violate("rpo-relaxed-before-failover", "promote %s (failover) while it enforces the bound on loss", r.name)
		}
	}
}

func (w *simWorld) effect(s Step, r, peer *simRegion) (string, error) {
	switch s.Action {
	case ActionFence:
		if w.aws {
			r.fenced = true
		} else if r.role != RoleDown {
			w.replicate() // a fast shutdown ships the last WAL
			r.role = RoleDown
		}
		return "fenced", nil
	case ActionPreserve:
		if !w.aws && r.role != RoleDown {
			return "", errors.New("sim: preserve: the database is running; fence it first")
		}
		r.preserved = max(r.preserved, r.lsn)
		return "preserved", nil
	case ActionWaitCaughtUp:
		if w.repl == replStalled || peer.lost {
			return "", errors.New("sim: wait caught up: not caught up in time")
		}
		r.lsn = max(r.lsn, peer.lsn)
		return "caught up", nil
	case ActionPromote:
		if r.role == RoleWriter {
			return "already the writer", nil
		}
		if r.role != RoleStandby {
			return "", fmt.Errorf("sim: promote: %s is %s", r.name, r.role)
		}
		if !w.aws && peer.role == RoleWriter && !peer.lost {
			return "", errors.New("sim: promote: the peer is a running writer")
		}
		if s.Mode == ModeSwitchover && w.aws && (peer.lost || w.repl == replStalled) {
			return "", errors.New("sim: switchover: the secondary cannot be synchronized")
		}
		old := max(peer.lsn, peer.preserved)
		if s.Mode == ModeSwitchover && w.aws {
			r.lsn = max(r.lsn, peer.lsn) // Aurora synchronizes first
		}
		if lost := old - r.lsn; lost > 0 && peer.role != RoleStandby {
			allowed := w.cmd != nil && w.cmd.req.Options.AllowDataLoss && w.cmd.req.Op == Failover
			w.tracef("promote %s loses writes %d..%d of %s (allowed by this command: %v)", r.name, r.lsn+1, old, peer.name, allowed)
			if !allowed {
				w.violate("consented-loss", "promote %s lost %d writes, and the command that ran it did not say --allow-data-loss", r.name, lost)
			}
		}
		r.role, w.primary = RoleWriter, r.name
		if w.aws && !peer.lost && peer.role == RoleWriter {
			peer.preserved = max(peer.preserved, peer.lsn)
			peer.role, peer.lsn = RoleStandby, r.lsn // Aurora demotes the old writer
		}
		w.caughtUpMono, w.caughtUp = w.mono, w.wall
		return "promoted", nil
	case ActionRebuildStandby:
		if peer.role != RoleWriter || peer.lost {
			return "", errors.New("sim: rebuild: no writer to replicate from")
		}
		if !w.aws && r.role == RoleWriter {
			return "", errors.New("sim: rebuild: the database is a running writer")
		}
		r.role, r.lsn = RoleStandby, peer.lsn
		w.caughtUpMono, w.caughtUp = w.mono, w.wall
		return "rebuilt", nil
	case ActionUnfence:
		r.fenced = false
		return "unfenced", nil
	case ActionRelaxRPO:
		r.rpo = false
		return "relaxed", nil
	case ActionEnforceRPO:
		r.rpo = true
		return "enforced", nil
	case ActionWaitTraffic:
		if w.traffic() != r.name {
			return "", fmt.Errorf("sim: wait traffic: traffic goes to %s", w.traffic())
		}
		return "traffic", nil
	case ActionVerify:
		if !r.takesWrites() || w.blocked(r) || w.traffic() != r.name {
			return "", errors.New("sim: verify: the payment was not acknowledged by " + r.name)
		}
		r.lsn++
		return "verified", nil
	}
	return "", fmt.Errorf("sim: unknown action %s", s.Action)
}
