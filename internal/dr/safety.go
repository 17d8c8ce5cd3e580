package dr

import (
	"fmt"
	"time"
)

// The safety rules. Planning decides which steps an operation takes; these
// rules decide, just before each step that changes who may write (fence,
// promote, rebuild-standby, unfence) or whether the writer may commit
// (enforce-rpo), whether that step is still safe in the
// state observed at that moment. New, resumed and dry runs all pass through
// CheckStep, so a journaled plan never runs on the strength of what was true
// when it was written, and always under the options of the command that runs.

// guarded reports whether a step changes who may write, or whether the
// writer may commit, and so is checked against a fresh observation before it
// runs.
func guarded(a Action) bool {
	switch a {
	case ActionFence, ActionPromote, ActionRebuildStandby, ActionUnfence, ActionEnforceRPO:
		return true
	}
	return false
}

// deferrable reports whether s, refused by the rules now, is owed rather
// than stopping the operation: enforcing the bound on loss is best effort
// and waits for the standby to stream within the bound, while the writer
// takes writes. Every other refusal stops the operation.
func deferrable(s Step) bool { return s.BestEffort && s.Action == ActionEnforceRPO }

// live reports whether r takes writes from clients that reach it: its
// database is the writer, its processor is not fenced, and it answers.
func live(r Region) bool { return r.Role == RoleWriter && r.Reachable && !r.Fenced }

func (o Options) maxLag() time.Duration {
	if o.MaxSwitchoverLag > 0 {
		return o.MaxSwitchoverLag
	}
	return DefaultMaxSwitchoverLag
}

// canTakeOver is the lag rule that switchover and failback share: the only
// writer may be fenced only when the standby can take over within the
// bound, that is, it is reachable, streaming, and no more than maxLag behind.
// It returns "" when it can, else why not.
func canTakeOver(st Status, standby Region, maxLag time.Duration) string {
	rep := st.Replication
	switch {
	case !standby.Reachable || standby.Role != RoleStandby:
		return fmt.Sprintf("%s is %s, not a reachable standby", standby.Name, roleText(standby))
	case !rep.Known || !rep.Streaming:
		return fmt.Sprintf("the standby %s is not streaming (state %q)", standby.Name, rep.State)
	case rep.ReplayLag > maxLag:
		// The replay lag (pg_stat_replication.replay_lag, Aurora's
		// AuroraGlobalDBReplicationLag) is how long the standby needs to
		// catch up; RPOLag measures what a failover would lose instead.
		return fmt.Sprintf("replication lag %s exceeds %s", rep.ReplayLag.Round(time.Millisecond), maxLag)
	}
	return ""
}

// StepCheck is what CheckStep needs besides the observed state.
type StepCheck struct {
	// Plan is the operation's plan.
	Plan Plan
	// Step is the step about to run.
	Step Step
	// Promoted reports whether the plan's promote step has completed, so
	// that Plan.To, not Plan.From, is the legitimate writer.
	Promoted bool
	// Options are those of the command that runs now, never a journal's.
	Options Options
}

// CheckStep applies the safety rules to c.Step in the observed state st. It
// returns nil when the step may run, and otherwise a *Refusal naming what it
// would do and why not. The executor checks every guarded step, and, when
// it resumes an operation, its wait-traffic and verify steps (which must
// not wait forever on a region that is no longer the writer).
func CheckStep(c StepCheck, st Status) error {
	s, p := c.Step, c.Plan
	if !guarded(s.Action) && s.Action != ActionWaitTraffic && s.Action != ActionVerify {
		return nil
	}
	r, ok := st.Region(s.Region)
	if !ok {
		return refuse(p.Op, fmt.Sprintf("%s: %s is not in the observed deployment", s.Name(), s.Region), "check paydr dr status")
	}
	peer, _ := st.Other(s.Region)
	legit := p.From
	if c.Promoted {
		legit = p.To
	}
	// Never two writable regions: while two are seen, the only step allowed
	// is fencing the one that is not the legitimate writer.
	if !guarded(s.Action) {
		// wait-traffic and verify: judged below only.
	} else if ws := st.Writers(); len(ws) == 2 && live(ws[0]) && live(ws[1]) {
		if s.Action == ActionFence && s.Region != legit {
			return nil
		}
		return refuse(p.Op, fmt.Sprintf("%s: %s and %s are both writable", s.Name(), ws[0].Name, ws[1].Name),
			fmt.Sprintf("only fencing the region that is not %s is allowed now (paydr dr fence REGION; its data is kept), then run paydr dr status", legit))
	}
	switch s.Action {
	case ActionFence:
		if r.Role != RoleWriter || r.Fenced {
			return nil // not a writer, or fenced already: nothing to lose
		}
		if s.Region != legit {
			// Fencing a writer that is not the operation's writer is what
			// keeps two regions from writing, but only while the
			// operation's writer is one; otherwise it fences the only
			// writer, and the operation no longer fits the deployment.
			if lr, _ := st.Region(legit); lr.Role != RoleWriter {
				return refuse(p.Op, fmt.Sprintf("%s would fence the only writer: %s, this operation's writer, is %s", s.Name(), legit, roleText(lr)),
					"the deployment has moved on since this operation began: run paydr dr status and plan afresh")
			}
			return nil
		}
		{
			// Fencing the only writer: allowed only when something can
			// take over.
			if p.Op == Failover {
				if r.Reachable && r.Healthy {
					return refuse(p.Op, fmt.Sprintf("%s: the writer region %s is reachable and healthy", s.Name(), s.Region),
						"use paydr dr switchover, which loses nothing; fail over only when the writer region is lost")
				}
				return nil
			}
			if why := canTakeOver(st, peer, c.Options.maxLag()); why != "" {
				return refuse(p.Op, fmt.Sprintf("%s would fence the only writer, but %s", s.Name(), why),
					"wait until paydr dr status shows the standby streaming within the bound (--max-lag), then run the command again")
			}
		}
		return nil
	case ActionPromote:
		if live(peer) {
			return refuse(p.Op, fmt.Sprintf("%s: %s still takes writes", s.Name(), peer.Name),
				fmt.Sprintf("fence %s first: two writable regions are never allowed", peer.Name))
		}
		if r.Role == RoleWriter {
			return nil // promoted already; the step is idempotent
		}
		if !r.Reachable || r.Role != RoleStandby {
			return refuse(p.Op, fmt.Sprintf("%s: %s is %s, not a reachable standby", s.Name(), s.Region, roleText(r)),
				"check paydr dr status")
		}
		if s.Mode == ModeFailover && (r.RPOBound > 0 || r.Synchronous) {
			// The new writer has no healthy standby: a bound on loss
			// would block its every commit. Plans relax it first; a plan
			// journaled without that step (an older paydr) stops here.
			return refuse(p.Op, fmt.Sprintf("%s: %s enforces a bound on loss (%s), which would block every commit of a writer without a healthy standby", s.Name(), s.Region, r.RPOBound),
				fmt.Sprintf("give this operation up with paydr dr abandon and run paydr dr failover again: its plan relaxes the bound on %s first", s.Region))
		}
		if s.Mode == ModeFailover {
			if loss := estimateLoss(st, peer); loss.MayLoseData && !c.Options.AllowDataLoss {
				return &Refusal{Op: p.Op, Reason: fmt.Sprintf("%s may lose data", s.Name()), Loss: &loss,
					Remedy: "pass --allow-data-loss to accept it, or restore the writer region and run paydr dr switchover (no loss)"}
			}
		}
		return nil
	case ActionRebuildStandby:
		if peer.Role != RoleWriter || !peer.Reachable {
			return refuse(p.Op, fmt.Sprintf("%s: %s is %s, not a reachable writer to replicate from", s.Name(), peer.Name, roleText(peer)),
				"check paydr dr status")
		}
		return nil
	case ActionUnfence:
		if r.Role != RoleWriter || !r.Reachable {
			return refuse(p.Op, fmt.Sprintf("%s: %s is %s; only the writer is unfenced", s.Name(), s.Region, roleText(r)),
				"check paydr dr status")
		}
		return nil
	case ActionEnforceRPO:
		return checkEnforceRPO(p.Op, s, r, peer, st)
	case ActionWaitTraffic, ActionVerify:
		if c.Promoted && r.Role != RoleWriter && r.Reachable {
			return refuse(p.Op, fmt.Sprintf("%s: %s is %s, no longer the writer this operation made it", s.Name(), s.Region, roleText(r)),
				"the deployment has moved on since this operation began: run paydr dr status and plan afresh")
		}
		return nil
	}
	return nil
}

// checkEnforceRPO is the rule of enforce-rpo: a bound on loss is enforced
// only on the writer, and only while its standby streams within the bound;
// enforced otherwise, it would stop the writer acknowledging at once. A
// bound already enforced is left alone (the step changes nothing), and a
// deployment that sets none has nothing to enforce.
func checkEnforceRPO(op Operation, s Step, r, peer Region, st Status) error {
	bound := st.RPOTarget
	if (bound <= 0 && !st.RPOZero) || (r.Reachable && r.RPOBound == bound && r.Synchronous == st.RPOZero) {
		return nil
	}
	remedy := fmt.Sprintf("wait until paydr dr status shows %s streaming within the bound, then run the command again", peer.Name)
	rep := st.Replication
	switch {
	case r.Role != RoleWriter || !r.Reachable:
		return refuse(op, fmt.Sprintf("%s: %s is %s; the bound on loss is enforced only on the writer", s.Name(), s.Region, roleText(r)),
			"check paydr dr status")
	case peer.Name != s.Peer || peer.Role != RoleStandby || !peer.Reachable:
		return refuse(op, fmt.Sprintf("%s would block every commit of %s: %s is %s, not its reachable standby", s.Name(), s.Region, peer.Name, roleText(peer)), remedy)
	case !rep.Known || !rep.Streaming:
		return refuse(op, fmt.Sprintf("%s would block every commit of %s: the standby %s is not streaming (state %q)", s.Name(), s.Region, peer.Name, rep.State), remedy)
	case !st.RPOZero && rep.RPOLag > bound:
		return refuse(op, fmt.Sprintf("%s would block the commits of %s: the rpo lag of %s is %s, above the bound %s", s.Name(), s.Region, peer.Name, rep.RPOLag.Round(time.Millisecond), bound), remedy)
	}
	return nil
}

// moot reports whether a failed best-effort step no longer matters in st,
// and why: fencing or preserving a region that is a reachable standby now
// (it takes no writes, and its old writes are replicated or already
// replaced); enforcing the deployment's bound where it is enforced already
// (or the deployment sets none); relaxing a bound where none is enforced.
func moot(s Step, st Status) (string, bool) {
	r, ok := st.Region(s.Region)
	if !ok || !r.Reachable {
		return "", false
	}
	switch {
	case (s.Action == ActionFence || s.Action == ActionPreserve) && r.Role == RoleStandby:
		return s.Region + " is a standby now", true
	case s.Action == ActionEnforceRPO && r.RPOBound == st.RPOTarget && r.Synchronous == st.RPOZero:
		if r.Synchronous {
			return s.Region + " waits for its standby on every commit already (rpo 0)", true
		}
		if r.RPOBound == 0 {
			return "the deployment sets no bound on loss", true
		}
		return fmt.Sprintf("%s enforces the bound %s already", s.Region, r.RPOBound), true
	case s.Action == ActionRelaxRPO && r.RPOBound == 0 && !r.Synchronous:
		return s.Region + " enforces no bound", true
	}
	return "", false
}
