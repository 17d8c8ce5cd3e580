package dr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Observer observes a deployment's DR state.
type Observer interface {
	Status(ctx context.Context) (Status, error)
}

// Runner carries out steps.
type Runner interface {
	// Calls returns the exact calls step will make, for a dry run. It
	// does no I/O.
	Calls(step Step) []string
	// Do performs step of operation opID and returns what it did, such
	// as where it kept a snapshot. Do is idempotent: after a crash the
	// step is done again.
	Do(ctx context.Context, opID string, step Step) (string, error)
}

// Backend is a deployment DR operations act on.
type Backend interface {
	Observer
	Runner
}

// StepRecord is one step as executed.
type StepRecord struct {
	Step   Step      `json:"step"`
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
	Result string    `json:"result,omitempty"`
	Error  string    `json:"error,omitempty"`
	// Failed is true for a best-effort step that failed: the operation
	// went on, and the step is owed (retried before later guarded steps,
	// and when the operation resumes) until it succeeds or no longer
	// matters.
	Failed bool `json:"failed,omitempty"`
	// Resumed is true for a step found finished in the journal and not
	// run again.
	Resumed bool `json:"resumed,omitempty"`
	// Retry is true for a run of a step that had failed before.
	Retry bool `json:"retry,omitempty"`
}

// Outcome is an executed plan.
type Outcome struct {
	OpID  string       `json:"op_id"`
	Plan  Plan         `json:"plan"`
	Steps []StepRecord `json:"steps"`
	// Owed are the best-effort steps still failed at the end: while any
	// remains the operation stays open.
	Owed  []StepRecord `json:"owed,omitempty"`
	Start time.Time    `json:"start"`
	End   time.Time    `json:"end,omitzero"`
}

// Step returns the record of the last run of the first step with action a
// (and region, if not empty).
func (o Outcome) Step(a Action, region string) (StepRecord, bool) {
	var found StepRecord
	ok := false
	for _, s := range o.Steps {
		if s.Step.Action == a && (region == "" || s.Step.Region == region) {
			if ok && s.Step != found.Step {
				break
			}
			found, ok = s, true
		}
	}
	return found, ok
}

// IncompleteError reports an operation that did all it could, its writer
// in place, but owes best-effort steps (such as fencing a region that is
// still unreachable): the operation stays open in the journal until they
// are done or no longer matter.
type IncompleteError struct {
	Op      Operation
	OpID    string
	To      string
	Owed    []StepRecord
	Journal string
}

func (e *IncompleteError) Error() string {
	var owed []string
	for _, r := range e.Owed {
		owed = append(owed, fmt.Sprintf("%s (%s)", r.Step.Name(), r.Error))
	}
	return fmt.Sprintf("dr: %s %s: %s holds the writer and took a verified payment, but owes %s; the operation stays open (journal %s): once they can be done (their region reachable; for enforce-rpo, its standby streaming within the bound), run paydr dr %s again, which does these first, or close it with paydr dr abandon",
		e.Op, e.OpID, e.To, strings.Join(owed, ", "), e.Journal, e.Op)
}

// Executor runs plans step by step, journaling each step and checking the
// safety rules against a fresh observation before each guarded step.
type Executor struct {
	Backend Backend
	Journal *Journal
	// Options are the options of the command that runs, never a journal's.
	Options Options
	// Log receives one line per step; nil discards.
	Log io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (e *Executor) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Executor) logf(format string, args ...any) {
	if e.Log != nil {
		fmt.Fprintf(e.Log, format+"\n", args...)
	}
}

// promoteIndex is the index of the plan's promote step (-1 if none).
func promoteIndex(p Plan) int {
	for i, s := range p.Steps {
		if s.Action == ActionPromote {
			return i
		}
	}
	return -1
}

// Execute runs plan as operation id. With resume (from Journal.Unfinished)
// the steps it records as done are not run again; steps it records as
// failed are run again. Before each guarded step Execute observes the
// deployment and applies CheckStep; before that it retries owed best-effort
// steps whose region answers again, so a region that comes back is fenced
// before anything else happens. A refusal or a failed step stops the
// operation; the journal keeps it unfinished so that running the same
// command again resumes it. When only owed steps remain, Execute returns
// an *IncompleteError and the operation stays open.
func (e *Executor) Execute(ctx context.Context, id string, plan Plan, resume *Unfinished) (Outcome, error) {
	x := &execution{e: e, ctx: ctx, id: id, plan: plan, resume: resume,
		out: Outcome{OpID: id, Plan: plan, Start: e.now()}, done: make([]bool, len(plan.Steps)),
		failed: map[int]string{}, promoteAt: promoteIndex(plan)}
	if resume == nil {
		if err := e.Journal.Begin(id, plan, x.out.Start); err != nil {
			return x.out, fmt.Errorf("dr: %s: %w", plan.Op, err)
		}
	} else {
		x.out.Start = resume.Started
		copy(x.done, resume.Done)
		for i, msg := range resume.Failed {
			if msg != "" && !x.done[i] {
				x.failed[i] = msg
			}
		}
		x.attempted = slices.Contains(x.done, true) || len(x.failed) > 0
		e.logf("resuming %s (%s from %s to %s) from its journal %s, under this command's options", id, plan.Op, plan.From, plan.To, e.Journal.Path(id))
	}
	for i, s := range plan.Steps {
		if x.done[i] {
			if resume != nil {
				x.out.Steps = append(x.out.Steps, StepRecord{Step: s, Resumed: true, Result: resume.Results[i]})
				e.logf("%2d. %s: done before (%s)", i+1, s.Name(), resume.Results[i])
			}
			continue
		}
		if guarded(s.Action) || (resume != nil && (s.Action == ActionWaitTraffic || s.Action == ActionVerify)) {
			st, err := x.settle()
			if err != nil {
				return x.out, err
			}
			if x.done[i] {
				continue
			}
			if deferred, err := x.check(i, st); err != nil {
				return x.out, err
			} else if deferred {
				continue
			}
		}
		if err := x.run(i, x.failed[i] != ""); err != nil {
			return x.out, err
		}
	}
	return x.finish()
}

// execution is one run of Execute: what the journal and this run know of
// each step, and the outcome so far.
type execution struct {
	e      *Executor
	ctx    context.Context
	id     string
	plan   Plan
	resume *Unfinished
	out    Outcome
	done   []bool
	// failed holds the owed best-effort steps: index -> last error.
	failed    map[int]string
	promoteAt int
	// attempted reports whether any step was ever started: an operation
	// refused before that is closed, not left to block the next one.
	attempted bool
	// verifiedLast reports whether the last step this run did was a
	// successful verify: otherwise the writer is judged once more before
	// the operation claims success.
	verifiedLast bool
}

// promoted reports whether the plan's promote step is done, so that the
// plan's To, not its From, is the legitimate writer.
func (x *execution) promoted() bool { return x.promoteAt >= 0 && x.done[x.promoteAt] }

// observe observes the deployment.
func (x *execution) observe() (Status, error) {
	st, err := x.e.Backend.Status(x.ctx)
	if err != nil {
		return st, fmt.Errorf("dr: %s: observe before the next step: %w; run the same command again to resume", x.plan.Op, err)
	}
	return st, nil
}

// check applies the safety rules to step i in st. A refusal of a
// deferrable step (enforcing the bound on loss) leaves it owed, journaled
// as a failed best-effort step, and reports deferred; any other refusal is
// journaled and returned.
func (x *execution) check(i int, st Status) (deferred bool, err error) {
	s := x.plan.Steps[i]
	err = CheckStep(StepCheck{Plan: x.plan, Step: s, Promoted: x.promoted(), Options: x.e.Options}, st)
	var r *Refusal
	if err == nil || !deferrable(s) || !errors.As(err, &r) {
		if err != nil {
			err = x.e.refused(x.id, i, s, err, x.attempted)
		}
		return false, err
	}
	msg := "not now: " + r.Reason
	if x.failed[i] == msg {
		return true, nil
	}
	x.failed[i] = msg
	x.out.Steps = append(x.out.Steps, StepRecord{Step: s, Start: x.e.now(), End: x.e.now(), Error: msg, Failed: true})
	x.e.logf("%2d. %s: not now, owed (best effort; the operation goes on): %s", i+1, s.Name(), r.Reason)
	if jerr := x.e.Journal.Append(Entry{Time: x.e.now(), OpID: x.id, Event: EventEnd, Step: i, Name: s.Name(), Error: msg, Skipped: true}); jerr != nil {
		return false, fmt.Errorf("dr: %s: %w", x.plan.Op, jerr)
	}
	return true, nil
}

// run does step i and journals it; it returns a non-nil error when the
// operation must stop.
func (x *execution) run(i int, retry bool) error {
	e, s, op := x.e, x.plan.Steps[i], x.plan.Op
	if err := x.ctx.Err(); err != nil {
		return fmt.Errorf("dr: %s: stopped before %s: %w; run the same command again to resume", op, s.Name(), err)
	}
	x.attempted, x.verifiedLast = true, false
	rec := StepRecord{Step: s, Retry: retry, Start: e.now()}
	if err := e.Journal.Append(Entry{Time: rec.Start, OpID: x.id, Event: EventStart, Step: i, Name: s.Name()}); err != nil {
		return fmt.Errorf("dr: %s: %w", op, err)
	}
	if retry {
		e.logf("%2d. %s (again: it failed before) ...", i+1, s.Name())
	} else {
		e.logf("%2d. %s ...", i+1, s.Name())
	}
	result, err := e.Backend.Do(x.ctx, x.id, s)
	rec.End, rec.Result = e.now(), result
	end := Entry{Time: rec.End, OpID: x.id, Event: EventEnd, Step: i, Name: s.Name(), Result: result}
	if err != nil {
		rec.Error, end.Error = err.Error(), err.Error()
		rec.Failed = s.BestEffort && x.ctx.Err() == nil
		end.Skipped = rec.Failed
	}
	if jerr := e.Journal.Append(end); jerr != nil {
		return fmt.Errorf("dr: %s: %w", op, jerr)
	}
	x.out.Steps = append(x.out.Steps, rec)
	switch {
	case err != nil && rec.Failed:
		x.failed[i] = err.Error()
		e.logf("    FAILED (best effort, owed; the operation goes on): %v", err)
	case err != nil:
		return fmt.Errorf("dr: %s: step %d (%s): %w; the journal %s records what was done: fix the cause and run the same command again to resume", op, i+1, s.Name(), err, e.Journal.Path(x.id))
	default:
		x.done[i] = true
		delete(x.failed, i)
		x.verifiedLast = s.Action == ActionVerify
		e.logf("    done in %s: %s", rec.End.Sub(rec.Start).Round(time.Millisecond), result)
	}
	return nil
}

// settle observes the deployment, retries the owed steps whose region
// answers (or closes those that no longer matter), and returns the
// observation to check the next step against.
func (x *execution) settle() (Status, error) {
	st, err := x.observe()
	if err != nil {
		return st, err
	}
	retried := false
	for _, j := range slices.Sorted(maps.Keys(x.failed)) {
		s := x.plan.Steps[j]
		if why, ok := moot(s, st); ok {
			delete(x.failed, j)
			x.done[j] = true
			x.e.logf("%2d. %s: no longer needed (%s)", j+1, s.Name(), why)
			if err := x.e.Journal.Append(Entry{Time: x.e.now(), OpID: x.id, Event: EventEnd, Step: j, Name: s.Name(), Result: "no longer needed: " + why}); err != nil {
				return st, fmt.Errorf("dr: %s: %w", x.plan.Op, err)
			}
			continue
		}
		if r, ok := st.Region(s.Region); !ok || !r.Reachable {
			continue
		}
		if deferred, err := x.check(j, st); err != nil {
			return st, err
		} else if deferred {
			continue
		}
		if err := x.run(j, true); err != nil {
			return st, err
		}
		retried = true
	}
	if retried {
		return x.observe()
	}
	return st, nil
}

// finish ends the operation: open while steps are owed, else done, its
// writer judged once more unless this run's last step verified it.
func (x *execution) finish() (Outcome, error) {
	plan := x.plan
	var final *Status
	if len(x.failed) > 0 {
		st, err := x.settle()
		if err != nil {
			return x.out, err
		}
		final = &st
	}
	out := x.out
	if len(x.failed) > 0 {
		for _, j := range slices.Sorted(maps.Keys(x.failed)) {
			out.Owed = append(out.Owed, StepRecord{Step: plan.Steps[j], Error: x.failed[j], Failed: true})
		}
		return out, &IncompleteError{Op: plan.Op, OpID: x.id, To: plan.To, Owed: out.Owed, Journal: x.e.Journal.Path(x.id)}
	}
	if final == nil && !x.verifiedLast {
		st, err := x.observe()
		if err != nil {
			return out, err
		}
		final = &st
	}
	out.End = x.e.now()
	if err := x.e.Journal.Append(Entry{Time: out.End, OpID: x.id, Event: EventDone}); err != nil {
		return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
	}
	if final != nil {
		if to, ok := final.Region(plan.To); !ok || !live(to) || !to.Healthy || final.Traffic != plan.To {
			return out, fmt.Errorf("dr: %s %s: every step is done, but %s does not serve now (%s, traffic to %s): run paydr dr status; if its region is lost, a new failover is needed",
				plan.Op, x.id, plan.To, roleText(to), orUnknown(final.Traffic))
		}
	}
	return out, nil
}

// refused journals a refusal of step i and returns it. An operation that
// never attempted a step is closed (nothing was done, so nothing is left to
// resume); otherwise the refusal says how to give it up.
func (e *Executor) refused(id string, i int, s Step, err error, attempted bool) error {
	var r *Refusal
	if errors.As(err, &r) && attempted {
		r.Remedy += fmt.Sprintf("; to give up operation %s instead, run paydr dr abandon (it undoes nothing)", id)
	}
	entries := []Entry{{Time: e.now(), OpID: id, Event: EventRefused, Step: i, Name: s.Name(), Error: err.Error()}}
	if !attempted {
		entries = append(entries, Entry{Time: e.now(), OpID: id, Event: EventAbandon, Result: "closed: refused before its first step, nothing was done", Error: err.Error()})
	}
	for _, en := range entries {
		if jerr := e.Journal.Append(en); jerr != nil {
			return errors.Join(err, jerr)
		}
	}
	return err
}
