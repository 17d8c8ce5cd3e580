package dr

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Operation names a DR operation.
type Operation string

// The operations.
const (
	// Switchover is planned: both regions up, no data loss.
	Switchover Operation = "switchover"
	// Failover is unplanned: the writer's region is lost.
	Failover Operation = "failover"
	// Failback returns the writer to the primary slot after a failover.
	Failback Operation = "failback"
	// Fence stops one of two writable regions from taking writes, the other
	// staying the writer.
	Fence Operation = "fence"
)

// Action is what one step does. Every action is idempotent: doing it again
// after it succeeded changes nothing.
type Action string

// The step vocabulary.
const (
	// ActionFence stops Region from writing: its processor cannot commit
	// (Lambda reserved concurrency 0; locally its database is stopped).
	ActionFence Action = "fence"
	// ActionPreserve keeps Region's final data (cluster snapshot; locally a
	// copy of the data directory), before anything may overwrite it.
	ActionPreserve Action = "preserve"
	// ActionWaitCaughtUp waits until Region has applied everything Peer
	// (the fenced old writer) wrote.
	ActionWaitCaughtUp Action = "wait-caught-up"
	// ActionPromote makes Region the writer, Peer being the old writer:
	// with Mode "switchover" (planned, no loss) or "failover" (data loss
	// allowed). Never the other way round.
	ActionPromote Action = "promote"
	// ActionRebuildStandby turns Region, a former writer, into a standby
	// replicating from Peer.
	ActionRebuildStandby Action = "rebuild-standby"
	// ActionUnfence lets Region's processor write again.
	ActionUnfence Action = "unfence"
	// ActionRelaxRPO stops enforcing a bound on loss on Region's writes, so
	// that Region, as a writer without a healthy standby, can commit
	// (rds.global_db_rpo reset in Region's cluster parameter group).
	ActionRelaxRPO Action = "relax-rpo"
	// ActionEnforceRPO enforces the deployment's bound on loss
	// (Status.RPOTarget) on the writes of Region, the writer, whose standby
	// is Peer: once Peer lags more than the bound, Region stops
	// acknowledging commits until Peer catches up (rds.global_db_rpo in
	// Region's cluster parameter group).
	ActionEnforceRPO Action = "enforce-rpo"
	// ActionWaitTraffic waits until the failover name sends traffic to
	// Region.
	ActionWaitTraffic Action = "wait-traffic"
	// ActionVerify sends a real payment through the failover name and
	// checks that Region committed it (locally: found in its ledger; on
	// AWS: acknowledged by Region's processor, which answers 2xx only after
	// its ledger commits).
	ActionVerify Action = "verify"
)

// VerifyPaymentID is the payment_id of the real payment ActionVerify sends
// during operation opID: the same on every attempt, so retries are
// idempotent, and recognisable in the ledger.
func VerifyPaymentID(opID string) string {
	id := "dr-verify-" + verifyIDChars.ReplaceAllString(opID, "-")
	if len(id) > 64 {
		id = id[:64]
	}
	return id
}

var verifyIDChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// Promotion modes of ActionPromote.
const (
	ModeSwitchover = "switchover"
	ModeFailover   = "failover"
)

// Step is one idempotent step of a plan.
type Step struct {
	// Action is what the step does.
	Action Action `json:"action"`
	// Region is the region acted on.
	Region string `json:"region"`
	// Peer is the other region, where the action involves it.
	Peer string `json:"peer,omitempty"`
	// Mode qualifies ActionPromote.
	Mode string `json:"mode,omitempty"`
	// BestEffort steps may fail without failing the operation (fencing
	// or snapshotting a region that is gone); the failure is recorded.
	BestEffort bool `json:"best_effort,omitempty"`
	// Why says what the step is for.
	Why string `json:"why"`
}

// Name is the step's short name, such as "promote us-west-2".
func (s Step) Name() string { return string(s.Action) + " " + s.Region }

// LossEstimate is what an unplanned failover may lose.
type LossEstimate struct {
	// MayLoseData is false only when the standby is known to hold
	// everything the writer committed.
	MayLoseData bool `json:"may_lose_data"`
	// Window is the estimated span of recent writes that may be lost: the
	// last replication (RPO) lag observed.
	Window time.Duration `json:"window_ns"`
	// Since is the commit time of the last write the standby is known to
	// hold; writes after it may be lost (zero when unknown).
	Since time.Time `json:"since,omitzero"`
	// Basis says what the estimate rests on.
	Basis string `json:"basis"`
	// Unbounded is true when the old writer may still be acknowledging
	// writes that will be lost (it cannot be reached, and no bound on loss
	// is known to stop it): Window is then only a lower bound.
	Unbounded bool `json:"unbounded,omitempty"`
}

// String renders the estimate for people.
func (l LossEstimate) String() string {
	if !l.MayLoseData {
		return "no data loss expected: " + l.Basis
	}
	s := fmt.Sprintf("writes of about the last %s may be lost", l.Window.Round(time.Millisecond))
	if l.Unbounded {
		s = fmt.Sprintf("writes of at least the last %s may be lost, with no upper bound", l.Window.Round(time.Millisecond))
	}
	if !l.Since.IsZero() {
		s += fmt.Sprintf(" (everything committed after %s)", l.Since.UTC().Format(time.RFC3339Nano))
	}
	return s + ": " + l.Basis
}

// Plan is what an operation will do, decided from an observed Status before
// anything is done.
type Plan struct {
	// Op is the operation.
	Op Operation `json:"op"`
	// From is the region holding the writer before, To the one holding it
	// after.
	From string `json:"from"`
	To   string `json:"to"`
	// AllowDataLoss records the operator's acknowledgement (failover).
	AllowDataLoss bool `json:"allow_data_loss,omitempty"`
	// Loss is the estimated loss (failover only).
	Loss *LossEstimate `json:"loss,omitempty"`
	// Steps run in order.
	Steps []Step `json:"steps"`
	// Warnings are facts the operator should know before acting.
	Warnings []string `json:"warnings,omitempty"`
}

// Render writes the plan for a dry run: each step and the exact calls calls
// returns for it (nil: none listed).
func (p Plan) Render(w io.Writer, calls func(Step) []string) error {
	return p.render(w, calls, nil)
}

// render writes the plan; state, when not nil, says where each step stands
// ("" for nothing to say).
func (p Plan) render(w io.Writer, calls func(Step) []string, state func(int) string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "plan: %s from %s to %s\n", p.Op, p.From, p.To)
	if p.Loss != nil {
		fmt.Fprintf(&b, "data: %s\n", p.Loss)
	}
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	for i, s := range p.Steps {
		be := ""
		if s.BestEffort {
			be = " (best effort)"
		}
		fmt.Fprintf(&b, "%2d. %s%s: %s\n", i+1, s.Name(), be, s.Why)
		if state != nil {
			if st := state(i); st != "" {
				fmt.Fprintf(&b, "      [%s]\n", st)
			}
		}
		if calls != nil {
			for _, c := range calls(s) {
				fmt.Fprintf(&b, "      %s\n", c)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Refusal is an operation refused by a safety rule. It says why and what
// would make the operation safe.
type Refusal struct {
	Op     Operation
	Reason string
	Remedy string
	// Loss is set when the refusal is about possible data loss.
	Loss *LossEstimate
}

func (r *Refusal) Error() string {
	s := fmt.Sprintf("dr: %s refused: %s", r.Op, r.Reason)
	if r.Loss != nil {
		s += "; estimated loss: " + r.Loss.String()
	}
	if r.Remedy != "" {
		s += "; " + r.Remedy
	}
	return s
}

// DefaultMaxSwitchoverLag is the replication lag above which a planned
// switchover is refused: the alarm threshold of the stack.
const DefaultMaxSwitchoverLag = 60 * time.Second

// Options tune planning.
type Options struct {
	// AllowDataLoss acknowledges that a failover may lose the writes
	// inside the replication lag.
	AllowDataLoss bool
	// Target is the region a fence operation fences.
	Target string
	// MaxSwitchoverLag bounds the replication lag a switchover accepts
	// (default DefaultMaxSwitchoverLag); failback shares the rule.
	MaxSwitchoverLag time.Duration
}

func refuse(op Operation, reason, remedy string) error {
	return &Refusal{Op: op, Reason: reason, Remedy: remedy}
}

// splitBrain refuses any operation while two writers are observed.
func splitBrain(op Operation, st Status) error {
	if ws := st.Writers(); len(ws) > 1 {
		return refuse(op, fmt.Sprintf("%s and %s are both writable", ws[0].Name, ws[1].Name),
			"fence the region that must not take writes first with paydr dr fence REGION (it holds writes the other lacks: its data is kept), then run paydr dr status")
	}
	return nil
}

// switchoverSteps are the steps that move the writer from one healthy
// region to another without loss, and the bound on loss with it.
//
// The bound moves in two steps. relax-rpo comes after the fence and the
// catch-up, when the old writer commits nothing the bound could protect, and
// before the promotion, so that no standby ever holds a bound: a standby
// promoted later by a failover has no healthy standby of its own, and a
// bound would block its commits. enforce-rpo comes after rebuild-standby,
// once the old writer replicates from the new one (enforced earlier, it
// would block the new writer's commits), and before unfence, so the new
// writer's first client write is bounded. It is best effort: when the
// rebuilt standby does not stream within the bound yet, or the call fails,
// the new writer still takes writes, and the step is owed (the operation
// stays open until it is done), because refusing to unfence would stop
// every payment to protect a bound on some of them.
func switchoverSteps(from, to string) []Step {
	return []Step{
		{Action: ActionFence, Region: from, Why: "stop writes in the old writer region so nothing commits that the standby misses"},
		{Action: ActionWaitCaughtUp, Region: to, Peer: from, Why: "wait until the standby has applied everything the old writer committed"},
		{Action: ActionRelaxRPO, Region: from, Why: "stop enforcing the bound on loss in the old writer region, fenced now, so that it never holds one as a standby"},
		{Action: ActionPromote, Region: to, Peer: from, Mode: ModeSwitchover, Why: "make the standby the writer (planned switchover: no data loss)"},
		{Action: ActionRebuildStandby, Region: from, Peer: to, Why: "make the old writer a standby of the new writer"},
		{Action: ActionEnforceRPO, Region: to, Peer: from, BestEffort: true, Why: "enforce the bound on loss on the new writer, now that the old writer replicates from it"},
		{Action: ActionUnfence, Region: to, Why: "let the new writer region's processor take writes"},
		{Action: ActionWaitTraffic, Region: to, Why: "wait until the failover name sends traffic to the new writer"},
		{Action: ActionVerify, Region: to, Why: "send a real payment through the failover name and find it in the new writer's ledger"},
	}
}

// PlanSwitchover plans a planned switchover of the writer to the other
// region. It refuses unless exactly one writer is observed, both regions are
// reachable, and the standby streams within opts.MaxSwitchoverLag.
func PlanSwitchover(st Status, opts Options) (Plan, error) {
	if err := splitBrain(Switchover, st); err != nil {
		return Plan{}, err
	}
	ws := st.Writers()
	if len(ws) == 0 {
		return Plan{}, refuse(Switchover, "no region holds a writable database",
			"a switchover needs a running writer; if the writer region is lost, run paydr dr failover")
	}
	from := ws[0]
	to, _ := st.Other(from.Name)
	if !from.Reachable {
		return Plan{}, refuse(Switchover, fmt.Sprintf("writer region %s is unreachable", from.Name),
			"a switchover must fence the old writer; if it is lost, run paydr dr failover")
	}
	if !to.Reachable || to.Role != RoleStandby {
		return Plan{}, refuse(Switchover, fmt.Sprintf("%s is %s, not a reachable standby", to.Name, roleText(to)),
			fmt.Sprintf("rebuild %s as a standby first (paydr dr failback does that after a failover)", to.Name))
	}
	if why := canTakeOver(st, to, opts.maxLag()); why != "" {
		return Plan{}, refuse(Switchover, why,
			"wait until paydr dr status shows the standby streaming within the bound (--max-lag), or restore replication first")
	}
	p := Plan{Op: Switchover, From: from.Name, To: to.Name, Steps: switchoverSteps(from.Name, to.Name)}
	if !from.Healthy {
		p.Warnings = append(p.Warnings, fmt.Sprintf("the writer region %s is unhealthy (%s); clients may already see errors", from.Name, from.Health))
	}
	return p, nil
}

// PlanFailover plans an unplanned failover to the standby, the writer's
// region being lost. It refuses while the writer is healthy and reachable
// (a switchover loses nothing), and, unless opts.AllowDataLoss, whenever the
// standby may lack committed writes.
func PlanFailover(st Status, opts Options) (Plan, error) {
	if err := splitBrain(Failover, st); err != nil {
		return Plan{}, err
	}
	var to, from Region
	var found bool
	for _, r := range st.Regions {
		if r.Role == RoleStandby && r.Reachable {
			to, found = r, true
		}
	}
	if !found {
		if ws := st.Writers(); len(ws) == 1 {
			other, _ := st.Other(ws[0].Name)
			return Plan{}, refuse(Failover, fmt.Sprintf("%s already holds the writer and %s is %s; there is no standby to promote", ws[0].Name, other.Name, roleText(other)),
				"nothing to fail over; to return the writer, run paydr dr failback")
		}
		return Plan{}, refuse(Failover, "no reachable standby to promote",
			"a failover needs the standby region's database; check paydr dr status")
	}
	from, _ = st.Other(to.Name)
	if from.Role == RoleWriter && from.Reachable && from.Healthy {
		return Plan{}, refuse(Failover, fmt.Sprintf("the writer region %s is reachable and healthy", from.Name),
			"use paydr dr switchover, which loses nothing; fail over only when the writer region is lost")
	}
	loss := estimateLoss(st, from)
	p := Plan{Op: Failover, From: from.Name, To: to.Name, AllowDataLoss: opts.AllowDataLoss, Loss: &loss}
	if loss.MayLoseData && !opts.AllowDataLoss {
		return Plan{}, &Refusal{Op: Failover, Reason: "data may be lost", Loss: &loss,
			Remedy: "pass --allow-data-loss to accept it, or restore the writer region and run paydr dr switchover (no loss)"}
	}
	p.Steps = []Step{
		{Action: ActionFence, Region: from.Name, BestEffort: true, Why: "stop the lost writer from taking writes if it comes back (never two writable regions)"},
		{Action: ActionPreserve, Region: from.Name, BestEffort: true, Why: "keep the old writer's final state, including writes that never replicated"},
		{Action: ActionRelaxRPO, Region: to.Name, Why: "enforce no bound on loss on the standby before it becomes a writer without a healthy standby (a bound would block its commits)"},
		{Action: ActionPromote, Region: to.Name, Peer: from.Name, Mode: ModeFailover, Why: "make the standby the writer without waiting for the lost writer (unplanned failover)"},
		{Action: ActionUnfence, Region: to.Name, Why: "let the new writer region's processor take writes"},
		{Action: ActionWaitTraffic, Region: to.Name, Why: "wait until the failover name sends traffic to the new writer"},
		{Action: ActionVerify, Region: to.Name, Why: "send a real payment through the failover name and find it in the new writer's ledger"},
	}
	if !from.Reachable {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s is unreachable: fencing and preserving it are best effort; fence it before it comes back", from.Name))
	}
	if w := rpoWarning(st, to.Name, from.Name); w != "" {
		p.Warnings = append(p.Warnings, w)
	}
	return p, nil
}

// rpoWarning says that the writer a failover makes takes writes with no
// bound on loss until a standby replicates from it again ("" when the
// deployment sets no bound).
func rpoWarning(st Status, to, from string) string {
	if st.RPOTarget <= 0 && !st.RPOZero {
		return ""
	}
	bound := st.RPOTarget.String()
	if st.RPOZero {
		bound = "rpo 0: commits wait for the standby"
	}
	how := fmt.Sprintf("paydr dr failback rebuilds %s as a standby and moves the writer back with the bound", from)
	if r, ok := st.Region(to); ok && r.Slot == "primary" {
		how = fmt.Sprintf("%s is a standby again and a switchover moves the writer with the bound", from)
	}
	return fmt.Sprintf("the bound on loss (%s) is not enforced on %s after this failover: with no healthy standby it would block every commit; it is enforced again when %s", bound, to, how)
}

// estimateLoss estimates what promoting the standby now loses.
func estimateLoss(st Status, from Region) LossEstimate {
	rep := st.Replication
	if from.Reachable && rep.Known && rep.Streaming && rep.LagBytes == 0 && rep.RPOLag == 0 {
		return LossEstimate{Basis: fmt.Sprintf("the standby has applied everything %s wrote (0 bytes behind, streaming)", from.Name)}
	}
	l := LossEstimate{MayLoseData: true, Window: max(rep.RPOLag, rep.ReplayLag), Since: rep.LastReplayed}
	switch {
	case !from.Reachable || from.Role == RoleUnknown || from.Role == RoleDown:
		l.Basis = fmt.Sprintf("%s cannot be asked what it committed; the last lag observed is the estimate", from.Name)
		switch {
		case from.Role == RoleDown && from.Reachable:
			// Its database is stopped: it commits nothing more.
		case from.Synchronous:
			l.Basis += "; its commits waited for the standby (rpo 0), so what it acknowledged is there"
		case from.RPOBound > 0:
			// Cut off but alive, it went on committing until its bound
			// stopped it.
			l.Window = max(l.Window, from.RPOBound)
			l.Basis += fmt.Sprintf("; if it is alive and cut off, it went on committing until its bound on loss (%s) stopped it", from.RPOBound)
		default:
			l.Unbounded = true
			l.Basis += "; if it is alive and cut off, it may still be acknowledging writes: no bound on loss is known to be enforced on it"
		}
	case !rep.Known:
		l.Basis = "replication lag is unknown"
	case !rep.Streaming:
		l.Basis = fmt.Sprintf("the standby is not streaming (%q)", rep.State)
	default:
		l.Basis = fmt.Sprintf("the standby is %d bytes behind", rep.LagBytes)
	}
	return l
}

// PlanFailback plans returning the writer to the region of the primary slot
// after a failover: keep that region's final state, rebuild it as a standby
// of the current writer, then switch over to it (no loss).
func PlanFailback(st Status, opts Options) (Plan, error) {
	if err := splitBrain(Failback, st); err != nil {
		return Plan{}, err
	}
	home, ok := st.Slot("primary")
	if !ok {
		return Plan{}, refuse(Failback, "no region is deployed in the primary slot", "check the topology (paydr dr status)")
	}
	cur, _ := st.Other(home.Name)
	if home.Role == RoleWriter {
		return Plan{}, refuse(Failback, fmt.Sprintf("%s (the primary slot) already holds the writer", home.Name), "nothing to fail back")
	}
	if cur.Role != RoleWriter || !cur.Reachable {
		return Plan{}, refuse(Failback, fmt.Sprintf("%s is %s, not a reachable writer", cur.Name, roleText(cur)),
			"a failback switches over from a running writer; run paydr dr failover first if the writer is lost")
	}
	if !home.Reachable && home.Role == RoleUnknown {
		return Plan{}, refuse(Failback, fmt.Sprintf("%s cannot be reached", home.Name),
			fmt.Sprintf("restore %s (its database host or the region) and run paydr dr failback again", home.Name))
	}
	p := Plan{Op: Failback, From: cur.Name, To: home.Name}
	if home.Role == RoleStandby && st.Replication.Streaming {
		// The same lag rule as a switchover: the switch back fences the
		// only writer, so the standby must be able to take over.
		if why := canTakeOver(st, home, opts.maxLag()); why != "" {
			return Plan{}, refuse(Failback, why,
				"wait until paydr dr status shows the standby streaming within the bound (--max-lag), then run paydr dr failback again")
		}
	} else {
		p.Steps = append(p.Steps,
			Step{Action: ActionFence, Region: home.Name, Why: "keep the old writer from taking writes while it is rebuilt"},
			Step{Action: ActionPreserve, Region: home.Name, Why: "keep the old writer's final state before rebuilding discards its unreplicated writes"},
			Step{Action: ActionRebuildStandby, Region: home.Name, Peer: cur.Name, Why: "make the old writer a standby of the current writer"},
		)
	}
	p.Steps = append(p.Steps, switchoverSteps(cur.Name, home.Name)...)
	return p, nil
}

// PlanFence plans fencing opts.Target while the other region is a writer
// that serves: the way out of two writable regions that no unfinished
// operation owns (such as after giving up a failover whose fence of the lost
// region never succeeded). It refuses to fence the only writer.
func PlanFence(st Status, opts Options) (Plan, error) {
	r, ok := st.Region(opts.Target)
	if !ok {
		return Plan{}, refuse(Fence, fmt.Sprintf("region %q is not in the deployment", opts.Target), "name one of the regions paydr dr status shows")
	}
	if r.Role != RoleWriter || r.Fenced {
		return Plan{}, refuse(Fence, fmt.Sprintf("%s is %s, not a writer taking writes", r.Name, roleText(r)), "nothing to fence")
	}
	other, _ := st.Other(r.Name)
	if !live(other) {
		return Plan{}, refuse(Fence, fmt.Sprintf("%s is the only writer (%s is %s)", r.Name, other.Name, roleText(other)),
			"fencing it would leave no writer: use paydr dr switchover or failover to move the writer")
	}
	return Plan{Op: Fence, From: other.Name, To: other.Name, Steps: []Step{
		{Action: ActionFence, Region: r.Name, Why: fmt.Sprintf("stop %s from taking writes: %s stays the writer (its data is kept: preserve it before any rebuild)", r.Name, other.Name)},
		{Action: ActionWaitTraffic, Region: other.Name, Why: "wait until the failover name sends traffic to the writer"},
	}}, nil
}

func roleText(r Region) string {
	s := string(r.Role)
	if !r.Reachable {
		s += " and unreachable"
	}
	return s
}
