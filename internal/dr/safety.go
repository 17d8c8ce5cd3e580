package dr

import (
	"fmt"
	"time"
)

// The safety rules. Planning decides which steps an operation takes; these
// rules decide, just before each step that changes who may write (fence,
// promote, rebuild-standby, unfence), whether that step is still safe in the
// state observed at that moment. New, resumed and dry runs all pass through
// CheckStep, so a journaled plan never runs on the strength of what was true
// when it was written, and always under the options of the command that runs.

// guarded reports whether a step changes who may write, and so is checked
// against a fresh observation before it runs.
func guarded(a Action) bool {
	switch a {
	case ActionFence, ActionPromote, ActionRebuildStandby, ActionUnfence:
		return true
	}
	return false
}

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
	case ActionWaitTraffic, ActionVerify:
		if c.Promoted && r.Role != RoleWriter && r.Reachable {
			return refuse(p.Op, fmt.Sprintf("%s: %s is %s, no longer the writer this operation made it", s.Name(), s.Region, roleText(r)),
				"the deployment has moved on since this operation began: run paydr dr status and plan afresh")
		}
		return nil
	}
	return nil
}

// moot reports whether a failed best-effort step no longer matters in st:
// fencing or preserving a region that is a reachable standby now (it takes
// no writes, and its old writes are replicated or already replaced).
func moot(s Step, st Status) bool {
	r, ok := st.Region(s.Region)
	return ok && r.Reachable && r.Role == RoleStandby && (s.Action == ActionFence || s.Action == ActionPreserve)
}
