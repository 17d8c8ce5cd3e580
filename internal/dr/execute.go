package dr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
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
	return fmt.Sprintf("dr: %s %s: %s holds the writer and took a verified payment, but owes %s; the operation stays open (journal %s): when that region is reachable, run paydr dr %s again, which does these first, or close it with paydr dr abandon",
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
	out := Outcome{OpID: id, Plan: plan, Start: e.now()}
	if resume == nil {
		if err := e.Journal.Begin(id, plan, out.Start); err != nil {
			return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
		}
	} else {
		out.Start = resume.Started
		e.logf("resuming %s (%s from %s to %s) from its journal %s, under this command's options", id, plan.Op, plan.From, plan.To, e.Journal.Path(id))
	}
	done := make([]bool, len(plan.Steps))
	failed := map[int]string{} // owed best-effort steps: index -> last error
	if resume != nil {
		copy(done, resume.Done)
		for i, msg := range resume.Failed {
			if msg != "" && !done[i] {
				failed[i] = msg
			}
		}
	}
	pi := promoteIndex(plan)
	promoted := func() bool { return pi >= 0 && done[pi] }
	// attempted reports whether any step was ever started: an operation
	// refused before that is closed, not left to block the next one.
	attempted := resume != nil && (slices.Contains(done, true) || len(failed) > 0)
	// verifiedLast reports whether the last step this run did was a
	// successful verify: otherwise the writer is judged once more before
	// the operation claims success.
	verifiedLast := false
	// run does step i and journals it; it returns a non-nil error when the
	// operation must stop.
	run := func(i int, retry bool) error {
		s := plan.Steps[i]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("dr: %s: stopped before %s: %w; run the same command again to resume", plan.Op, s.Name(), err)
		}
		attempted, verifiedLast = true, false
		rec := StepRecord{Step: s, Retry: retry, Start: e.now()}
		if err := e.Journal.Append(Entry{Time: rec.Start, OpID: id, Event: EventStart, Step: i, Name: s.Name()}); err != nil {
			return fmt.Errorf("dr: %s: %w", plan.Op, err)
		}
		if retry {
			e.logf("%2d. %s (again: it failed before) ...", i+1, s.Name())
		} else {
			e.logf("%2d. %s ...", i+1, s.Name())
		}
		result, err := e.Backend.Do(ctx, id, s)
		rec.End, rec.Result = e.now(), result
		end := Entry{Time: rec.End, OpID: id, Event: EventEnd, Step: i, Name: s.Name(), Result: result}
		if err != nil {
			rec.Error, end.Error = err.Error(), err.Error()
			rec.Failed = s.BestEffort && ctx.Err() == nil
			end.Skipped = rec.Failed
		}
		if jerr := e.Journal.Append(end); jerr != nil {
			return fmt.Errorf("dr: %s: %w", plan.Op, jerr)
		}
		out.Steps = append(out.Steps, rec)
		switch {
		case err != nil && rec.Failed:
			failed[i] = err.Error()
			e.logf("    FAILED (best effort, owed; the operation goes on): %v", err)
		case err != nil:
			return fmt.Errorf("dr: %s: step %d (%s): %w; the journal %s records what was done: fix the cause and run the same command again to resume", plan.Op, i+1, s.Name(), err, e.Journal.Path(id))
		default:
			done[i] = true
			delete(failed, i)
			verifiedLast = s.Action == ActionVerify
			e.logf("    done in %s: %s", rec.End.Sub(rec.Start).Round(time.Millisecond), result)
		}
		return nil
	}
	// settle observes the deployment, retries the owed steps whose region
	// answers (or drops those that no longer matter), and returns the
	// observation to check the next step against.
	observe := func() (Status, error) {
		st, err := e.Backend.Status(ctx)
		if err != nil {
			return st, fmt.Errorf("dr: %s: observe before the next step: %w; run the same command again to resume", plan.Op, err)
		}
		return st, nil
	}
	settle := func() (Status, error) {
		st, err := observe()
		if err != nil {
			return st, err
		}
		retried := false
		for _, j := range slices.Sorted(maps.Keys(failed)) {
			s := plan.Steps[j]
			if moot(s, st) {
				delete(failed, j)
				done[j] = true
				e.logf("%2d. %s: no longer needed (%s is a standby now)", j+1, s.Name(), s.Region)
				if err := e.Journal.Append(Entry{Time: e.now(), OpID: id, Event: EventEnd, Step: j, Name: s.Name(), Result: "no longer needed: " + s.Region + " is a standby now"}); err != nil {
					return st, fmt.Errorf("dr: %s: %w", plan.Op, err)
				}
				continue
			}
			if r, ok := st.Region(s.Region); !ok || !r.Reachable {
				continue
			}
			if err := CheckStep(StepCheck{Plan: plan, Step: s, Promoted: promoted(), Options: e.Options}, st); err != nil {
				return st, e.refused(id, j, s, err, attempted)
			}
			if err := run(j, true); err != nil {
				return st, err
			}
			retried = true
		}
		if retried {
			return observe()
		}
		return st, nil
	}
	for i, s := range plan.Steps {
		if done[i] {
			if resume != nil {
				out.Steps = append(out.Steps, StepRecord{Step: s, Resumed: true, Result: resume.Results[i]})
				e.logf("%2d. %s: done before (%s)", i+1, s.Name(), resume.Results[i])
			}
			continue
		}
		if guarded(s.Action) || (resume != nil && (s.Action == ActionWaitTraffic || s.Action == ActionVerify)) {
			st, err := settle()
			if err != nil {
				return out, err
			}
			if done[i] {
				continue
			}
			if err := CheckStep(StepCheck{Plan: plan, Step: s, Promoted: promoted(), Options: e.Options}, st); err != nil {
				return out, e.refused(id, i, s, err, attempted)
			}
		}
		if err := run(i, failed[i] != ""); err != nil {
			return out, err
		}
	}
	// Unless this run's last step was a successful verify (owed steps
	// retried or found moot, a resumed operation with nothing left), the
	// writer is judged again before the operation claims success.
	var final *Status
	if len(failed) > 0 {
		st, err := settle()
		if err != nil {
			return out, err
		}
		final = &st
	}
	if len(failed) > 0 {
		for _, j := range slices.Sorted(maps.Keys(failed)) {
			out.Owed = append(out.Owed, StepRecord{Step: plan.Steps[j], Error: failed[j], Failed: true})
		}
		return out, &IncompleteError{Op: plan.Op, OpID: id, To: plan.To, Owed: out.Owed, Journal: e.Journal.Path(id)}
	}
	if final == nil && !verifiedLast {
		st, err := observe()
		if err != nil {
			return out, err
		}
		final = &st
	}
	out.End = e.now()
	if err := e.Journal.Append(Entry{Time: out.End, OpID: id, Event: EventDone}); err != nil {
		return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
	}
	if final != nil {
		if to, ok := final.Region(plan.To); !ok || !live(to) || !to.Healthy || final.Traffic != plan.To {
			return out, fmt.Errorf("dr: %s %s: every step is done, but %s does not serve now (%s, traffic to %s): run paydr dr status; if its region is lost, a new failover is needed",
				plan.Op, id, plan.To, roleText(to), orUnknown(final.Traffic))
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

// Request asks Operate for one operation.
type Request struct {
	Op      Operation
	Options Options
	// DryRun only prints what the operation would do and its calls.
	DryRun bool
	// Owner names the operator in the lock.
	Owner string
}

// ErrUnfinishedOther is matched when another operation is unfinished.
var ErrUnfinishedOther = errors.New("dr: another operation is unfinished")

// prepared is an operation decided from a fresh observation: a new plan, or
// the journal's unfinished plan of the same operation, whose next step has
// passed the safety rules.
type prepared struct {
	id     string
	plan   Plan
	resume *Unfinished
	st     Status
}

// prepare observes b and decides what req will do: resume the unfinished
// operation of the same kind (its next step checked now, under req's
// options), or plan a new one. An unfinished operation of another kind
// refuses. Dry runs and real runs both decide here.
func prepare(ctx context.Context, b Backend, j *Journal, req Request) (prepared, error) {
	u, err := j.Unfinished()
	if err != nil {
		return prepared{}, fmt.Errorf("dr: %s: %w", req.Op, err)
	}
	if u != nil && u.Plan.Op != req.Op {
		return prepared{}, fmt.Errorf("%w: %s (%s from %s to %s, journal %s); run paydr dr %s to resume it first, or paydr dr abandon to give it up (it undoes nothing)",
			ErrUnfinishedOther, u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, j.Path(u.ID), u.Plan.Op)
	}
	st, err := b.Status(ctx)
	if err != nil {
		return prepared{}, fmt.Errorf("dr: %s: observe: %w; nothing was changed: check that paydr dr status answers, then run the same command again", req.Op, err)
	}
	if u == nil {
		plan, err := planFor(req, st)
		if err != nil {
			return prepared{}, err
		}
		return prepared{plan: plan, st: st}, nil
	}
	pr := prepared{id: u.ID, plan: u.Plan, resume: u, st: st}
	i := u.Next()
	if i < 0 {
		return pr, nil
	}
	pi := promoteIndex(u.Plan)
	s := u.Plan.Steps[i]
	if err := CheckStep(StepCheck{Plan: u.Plan, Step: s, Promoted: pi >= 0 && u.Done[pi], Options: req.Options}, st); err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			r.Reason = fmt.Sprintf("resuming %s (%s from %s to %s), the next step would be %s, but %s",
				u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, s.Name(), r.Reason)
			r.Remedy += fmt.Sprintf("; or give up operation %s with paydr dr abandon (it undoes nothing; the journal %s keeps what it did)", u.ID, j.Path(u.ID))
		}
		return prepared{}, err
	}
	return pr, nil
}

// render prints what pr will do: the plan, and for a resumed operation
// which steps are done, owed or next.
func (pr prepared) render(w io.Writer, calls func(Step) []string) error {
	if pr.resume == nil {
		return pr.plan.Render(w, calls)
	}
	u := pr.resume
	fmt.Fprintf(w, "resumes %s (%s from %s to %s, begun %s) under this command's options\n",
		u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, u.Started.UTC().Format(time.RFC3339))
	return u.Plan.render(w, calls, func(i int) string {
		switch {
		case u.Done[i]:
			return "done: " + u.Results[i]
		case u.Failed[i] != "":
			return "failed, owed (runs again): " + u.Failed[i]
		}
		return ""
	})
}

// Operate observes b, decides req.Op (prepare) and, unless req.DryRun,
// executes it under locker with journal j, printing what it decided and its
// progress to out. A dry run prints the same decision, from the same code,
// and changes nothing.
func Operate(ctx context.Context, b Backend, locker Locker, j *Journal, req Request, out io.Writer) (Outcome, error) {
	if req.DryRun {
		pr, err := prepare(ctx, b, j, req)
		if err != nil {
			return Outcome{}, err
		}
		fmt.Fprintln(out, "dry run: nothing is changed; pass --yes to act")
		return Outcome{OpID: pr.id, Plan: pr.plan}, pr.render(out, b.Calls)
	}
	host, _ := os.Hostname()
	unlock, err := locker.Lock(ctx, LockInfo{Owner: req.Owner, Host: host, PID: os.Getpid(), Op: string(req.Op), Time: time.Now().UTC()})
	if err != nil {
		return Outcome{}, fmt.Errorf("dr: %s: %w", req.Op, err)
	}
	defer unlock(context.WithoutCancel(ctx))
	pr, err := prepare(ctx, b, j, req)
	if err != nil {
		return Outcome{}, err
	}
	if err := pr.render(out, b.Calls); err != nil {
		return Outcome{}, err
	}
	if pr.id == "" {
		pr.id = j.NewID(req.Op)
	}
	ex := &Executor{Backend: b, Journal: j, Options: req.Options, Log: out, Now: j.now}
	return ex.Execute(ctx, pr.id, pr.plan, pr.resume)
}

func planFor(req Request, st Status) (Plan, error) {
	switch req.Op {
	case Switchover:
		return PlanSwitchover(st, req.Options)
	case Failover:
		return PlanFailover(st, req.Options)
	case Failback:
		return PlanFailback(st, req.Options)
	case Fence:
		return PlanFence(st, req.Options)
	}
	return Plan{}, fmt.Errorf("dr: unknown operation %q", req.Op)
}

// Abandon closes the unfinished operation in j under locker, recording who
// gave it up and why. It undoes nothing: what the operation did stays done
// (the journal keeps it), and the next operation plans afresh from what it
// observes. With dryRun it only says what it would close.
func Abandon(ctx context.Context, locker Locker, j *Journal, owner, reason string, dryRun bool, out io.Writer) (string, error) {
	if reason == "" {
		return "", errors.New("dr: abandon: a reason is required (--reason); it is kept in the journal")
	}
	if !dryRun {
		host, _ := os.Hostname()
		unlock, err := locker.Lock(ctx, LockInfo{Owner: owner, Host: host, PID: os.Getpid(), Op: "abandon", Time: time.Now().UTC()})
		if err != nil {
			return "", fmt.Errorf("dr: abandon: %w", err)
		}
		defer unlock(context.WithoutCancel(ctx))
	}
	u, err := j.Unfinished()
	if err != nil {
		return "", fmt.Errorf("dr: abandon: %w", err)
	}
	if u == nil {
		return "", errors.New("dr: abandon: no operation is unfinished; nothing to abandon")
	}
	fmt.Fprintf(out, "%s %s (%s from %s to %s, begun %s):\n", map[bool]string{true: "would abandon", false: "abandons"}[dryRun],
		u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, u.Started.UTC().Format(time.RFC3339))
	if err := u.Plan.render(out, nil, func(i int) string {
		switch {
		case u.Done[i]:
			return "done: " + u.Results[i]
		case u.Failed[i] != "":
			return "FAILED, never done: " + u.Failed[i]
		}
		return "not done"
	}); err != nil {
		return "", err
	}
	if dryRun {
		return u.ID, nil
	}
	if err := j.Append(Entry{Time: j.now(), OpID: u.ID, Event: EventAbandon, Result: "abandoned by " + owner, Error: reason}); err != nil {
		return "", fmt.Errorf("dr: abandon: %w", err)
	}
	fmt.Fprintf(out, "abandoned %s: nothing was undone; check paydr dr status before the next operation\n", u.ID)
	return u.ID, nil
}
