package dr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
	Step    Step      `json:"step"`
	Start   time.Time `json:"start,omitzero"`
	End     time.Time `json:"end,omitzero"`
	Result  string    `json:"result,omitempty"`
	Error   string    `json:"error,omitempty"`
	Skipped bool      `json:"skipped,omitempty"`
	// Resumed is true for a step found finished in the journal and not
	// run again.
	Resumed bool `json:"resumed,omitempty"`
}

// Outcome is an executed plan.
type Outcome struct {
	OpID  string       `json:"op_id"`
	Plan  Plan         `json:"plan"`
	Steps []StepRecord `json:"steps"`
	Start time.Time    `json:"start"`
	End   time.Time    `json:"end"`
}

// Step returns the record of the first step with action a (and region, if
// not empty).
func (o Outcome) Step(a Action, region string) (StepRecord, bool) {
	for _, s := range o.Steps {
		if s.Step.Action == a && (region == "" || s.Step.Region == region) {
			return s, true
		}
	}
	return StepRecord{}, false
}

// Executor runs plans step by step, journaling each step.
type Executor struct {
	Runner  Runner
	Journal *Journal
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

// Execute runs plan as operation id. With resume (from Journal.Unfinished)
// the steps it records as done are not run again. A step that fails stops
// the operation, unless it is best effort; the journal keeps the operation
// unfinished so that running it again resumes at that step.
func (e *Executor) Execute(ctx context.Context, id string, plan Plan, resume *Unfinished) (Outcome, error) {
	out := Outcome{OpID: id, Plan: plan, Start: e.now()}
	if resume == nil {
		if err := e.Journal.Append(Entry{Time: out.Start, OpID: id, Event: EventPlan, Plan: &plan}); err != nil {
			return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
		}
	} else {
		out.Start = resume.Started
		e.logf("resuming %s (%s from %s to %s) from its journal %s", id, plan.Op, plan.From, plan.To, e.Journal.Path(id))
	}
	for i, s := range plan.Steps {
		rec := StepRecord{Step: s}
		if resume != nil && i < len(resume.Done) && resume.Done[i] {
			rec.Resumed, rec.Result = true, resume.Results[i]
			out.Steps = append(out.Steps, rec)
			e.logf("%2d. %s: done before (%s)", i+1, s.Name(), rec.Result)
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("dr: %s: stopped before %s: %w; run the same command again to resume", plan.Op, s.Name(), err)
		}
		rec.Start = e.now()
		if err := e.Journal.Append(Entry{Time: rec.Start, OpID: id, Event: EventStart, Step: i, Name: s.Name()}); err != nil {
			return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
		}
		e.logf("%2d. %s ...", i+1, s.Name())
		result, err := e.Runner.Do(ctx, id, s)
		rec.End, rec.Result = e.now(), result
		end := Entry{Time: rec.End, OpID: id, Event: EventEnd, Step: i, Name: s.Name(), Result: result}
		if err != nil {
			rec.Error, end.Error = err.Error(), err.Error()
			if s.BestEffort && ctx.Err() == nil {
				rec.Skipped, end.Skipped = true, true
			}
		}
		if jerr := e.Journal.Append(end); jerr != nil {
			return out, fmt.Errorf("dr: %s: %w", plan.Op, jerr)
		}
		out.Steps = append(out.Steps, rec)
		switch {
		case err != nil && rec.Skipped:
			e.logf("    best effort, went on: %v", err)
		case err != nil:
			return out, fmt.Errorf("dr: %s: step %d (%s): %w; the journal %s records what was done: fix the cause and run the same command again to resume", plan.Op, i+1, s.Name(), err, e.Journal.Path(id))
		default:
			e.logf("    done in %s: %s", rec.End.Sub(rec.Start).Round(time.Millisecond), result)
		}
	}
	out.End = e.now()
	if err := e.Journal.Append(Entry{Time: out.End, OpID: id, Event: EventDone}); err != nil {
		return out, fmt.Errorf("dr: %s: %w", plan.Op, err)
	}
	return out, nil
}

// Request asks Operate for one operation.
type Request struct {
	Op      Operation
	Options Options
	// DryRun only prints the plan and its calls.
	DryRun bool
	// Owner names the operator in the lock.
	Owner string
}

// ErrUnfinishedOther is matched when another operation is unfinished.
var ErrUnfinishedOther = errors.New("dr: another operation is unfinished")

// Operate observes b, plans req.Op and, unless req.DryRun, executes the plan
// under locker with journal j, printing the plan and progress to out. An
// unfinished operation of the same kind found in the journal is resumed
// (its recorded plan, not a new one); one of another kind refuses.
func Operate(ctx context.Context, b Backend, locker Locker, j *Journal, req Request, out io.Writer) (Outcome, error) {
	if req.DryRun {
		if u, err := j.Unfinished(); err == nil && u != nil {
			fmt.Fprintf(out, "unfinished: %s (%s from %s to %s); acting resumes it\n", u.ID, u.Plan.Op, u.Plan.From, u.Plan.To)
		}
		plan, err := observeAndPlan(ctx, b, req)
		if err != nil {
			return Outcome{}, err
		}
		fmt.Fprintln(out, "dry run: nothing is changed; pass --yes to act")
		return Outcome{Plan: plan}, plan.Render(out, b.Calls)
	}
	host, _ := os.Hostname()
	unlock, err := locker.Lock(ctx, LockInfo{Owner: req.Owner, Host: host, PID: os.Getpid(), Op: string(req.Op), Time: time.Now().UTC()})
	if err != nil {
		return Outcome{}, fmt.Errorf("dr: %s: %w", req.Op, err)
	}
	defer unlock(context.WithoutCancel(ctx))
	u, err := j.Unfinished()
	if err != nil {
		return Outcome{}, fmt.Errorf("dr: %s: %w", req.Op, err)
	}
	ex := &Executor{Runner: b, Journal: j, Log: out}
	if u != nil {
		if u.Plan.Op != req.Op {
			return Outcome{}, fmt.Errorf("%w: %s (%s from %s to %s, journal %s); run paydr dr %s to resume it first",
				ErrUnfinishedOther, u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, j.Path(u.ID), u.Plan.Op)
		}
		return ex.Execute(ctx, u.ID, u.Plan, u)
	}
	plan, err := observeAndPlan(ctx, b, req)
	if err != nil {
		return Outcome{}, err
	}
	if err := plan.Render(out, b.Calls); err != nil {
		return Outcome{}, err
	}
	return ex.Execute(ctx, NewOpID(time.Now(), req.Op), plan, nil)
}

// observeAndPlan observes the deployment and plans req from what it sees.
func observeAndPlan(ctx context.Context, b Backend, req Request) (Plan, error) {
	st, err := b.Status(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("dr: %s: %w", req.Op, err)
	}
	return planFor(req, st)
}

func planFor(req Request, st Status) (Plan, error) {
	switch req.Op {
	case Switchover:
		return PlanSwitchover(st, req.Options)
	case Failover:
		return PlanFailover(st, req.Options)
	case Failback:
		return PlanFailback(st, req.Options)
	}
	return Plan{}, fmt.Errorf("dr: unknown operation %q", req.Op)
}
