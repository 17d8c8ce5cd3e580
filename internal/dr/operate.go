package dr

// Operate and Abandon: deciding what a command does (prepare, shared by dry
// and real runs), taking the lock, and handing the decision to the Executor.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

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
	// deferred holds, for a resumed operation, the owed steps the rules
	// refuse now that wait rather than stop it (enforce-rpo), and why;
	// mooted, the owed steps that no longer matter (closed when it runs).
	deferred, mooted map[int]string
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
	pr := prepared{id: u.ID, plan: u.Plan, resume: u, st: st, deferred: map[int]string{}, mooted: map[int]string{}}
	for i, msg := range u.Failed {
		if why, ok := moot(u.Plan.Steps[i], st); ok && msg != "" && !u.Done[i] {
			pr.mooted[i] = why
		}
	}
	pi := promoteIndex(u.Plan)
	check := func(s Step) error {
		return CheckStep(StepCheck{Plan: u.Plan, Step: s, Promoted: pi >= 0 && u.Done[pi], Options: req.Options}, st)
	}
	// The next step is checked now; a deferrable one the rules refuse
	// waits (it stays owed) and the step after it is checked instead.
	i := u.Next()
	for ; i >= 0 && i < len(u.Plan.Steps); i++ {
		if u.Done[i] || pr.mooted[i] != "" {
			continue
		}
		var r *Refusal
		if err := check(u.Plan.Steps[i]); deferrable(u.Plan.Steps[i]) && errors.As(err, &r) {
			pr.deferred[i] = r.Reason
			continue
		}
		break
	}
	if i < 0 || i >= len(u.Plan.Steps) {
		return pr, nil
	}
	s := u.Plan.Steps[i]
	if err := check(s); err != nil {
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
	if pr.st.RPOTarget > 0 && u.Plan.Op != Fence && !slices.ContainsFunc(u.Plan.Steps, func(s Step) bool { return s.Action == ActionRelaxRPO }) {
		fmt.Fprintf(w, "note: planned by an older paydr, without the steps that move the bound on loss (%s) with the writer: it leaves the bound where it is; check paydr dr status after it\n", pr.st.RPOTarget)
	}
	return u.Plan.render(w, calls, func(i int) string {
		switch {
		case u.Done[i]:
			return "done: " + u.Results[i]
		case pr.mooted[i] != "":
			return "owed, no longer needed (closed when it runs): " + pr.mooted[i]
		case pr.deferred[i] != "":
			return "owed, waits (the operation goes on): " + pr.deferred[i]
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
