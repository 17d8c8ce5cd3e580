package dr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeBackend records the steps it does; it fails (or crashes) at a chosen
// step.
type fakeBackend struct {
	st     Status
	did    []string
	failAt string          // step name that fails
	fail   map[string]bool // step names that fail
	crash  string          // step name at which the "process" dies (ctx canceled mid-step)
	cancel context.CancelFunc
}

func (f *fakeBackend) Status(context.Context) (Status, error) { return f.st, nil }
func (f *fakeBackend) Calls(s Step) []string                  { return []string{"fake " + s.Name()} }
func (f *fakeBackend) Do(ctx context.Context, opID string, s Step) (string, error) {
	if s.Name() == f.crash {
		f.crash = ""
		f.cancel()
		return "", ctx.Err()
	}
	if s.Name() == f.failAt || f.fail[s.Name()] {
		return "", errors.New("boom")
	}
	f.did = append(f.did, s.Name())
	f.apply(s)
	return "did " + s.Name(), nil
}

// apply changes the fake's state as the step would (fencing as on AWS: the
// processor is fenced, the database keeps its role).
func (f *fakeBackend) apply(s Step) {
	idx := func(name string) int {
		for i, r := range f.st.Regions {
			if r.Name == name {
				return i
			}
		}
		return -1
	}
	i := idx(s.Region)
	if i < 0 {
		return
	}
	f.st.Regions = append([]Region(nil), f.st.Regions...)
	r := &f.st.Regions[i]
	switch s.Action {
	case ActionFence:
		r.Fenced, r.Healthy = true, false
	case ActionPromote:
		r.Role = RoleWriter
		if p := idx(s.Peer); p >= 0 && f.st.Regions[p].Reachable {
			f.st.Regions[p].Role = RoleStandby
		}
	case ActionRebuildStandby:
		r.Role = RoleStandby
	case ActionUnfence:
		r.Fenced, r.Healthy = false, r.Role == RoleWriter
	case ActionWaitTraffic:
		f.st.Traffic = s.Region
	case ActionRelaxRPO:
		r.RPOBound = 0
	case ActionEnforceRPO:
		r.RPOBound = f.st.RPOTarget
	}
}

func TestExecuteResumesAfterCrash(t *testing.T) {
	dir := t.TempDir()
	j, err := OpenJournal(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanSwitchover(healthy(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fb := &fakeBackend{st: healthy(), crash: "promote us-west-2", cancel: cancel}
	ex := &Executor{Backend: fb, Journal: j}
	if _, err := ex.Execute(ctx, "op1", plan, nil); err == nil {
		t.Fatal("Execute() with a crash at promote = nil error")
	}
	if diff := cmp.Diff([]string{"fence us-east-1", "wait-caught-up us-west-2", "relax-rpo us-east-1"}, fb.did); diff != "" {
		t.Errorf("steps before the crash (-want +got):\n%s", diff)
	}
	u, err := j.Unfinished()
	if err != nil || u == nil {
		t.Fatalf("Unfinished() = %v, %v, want op1", u, err)
	}
	if u.ID != "op1" || !cmp.Equal(u.Done, []bool{true, true, true, false, false, false, false, false, false}) {
		t.Fatalf("Unfinished() = %s %v, want op1 with the first three steps done", u.ID, u.Done)
	}
	// A new process resumes from the journal: the promote step runs again
	// (it is idempotent), the finished steps do not.
	fb2 := &fakeBackend{st: fb.st} // the deployment as the crash left it
	out, err := (&Executor{Backend: fb2, Journal: j}).Execute(context.Background(), u.ID, u.Plan, u)
	if err != nil {
		t.Fatalf("Execute(resume) = %v", err)
	}
	want := []string{"promote us-west-2", "rebuild-standby us-east-1", "enforce-rpo us-west-2", "unfence us-west-2", "wait-traffic us-west-2", "verify us-west-2"}
	if diff := cmp.Diff(want, fb2.did); diff != "" {
		t.Errorf("steps after resume (-want +got):\n%s", diff)
	}
	if !out.Steps[0].Resumed || out.Steps[0].Result != "did fence us-east-1" {
		t.Errorf("resumed step 1 = %+v, want resumed with its journaled result", out.Steps[0])
	}
	if u, err := j.Unfinished(); err != nil || u != nil {
		t.Errorf("Unfinished() after completion = %v, %v, want nil", u, err)
	}
	entries, err := j.Read("op1")
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, e := range entries {
		events = append(events, e.Event)
	}
	wantEvents := "plan " + strings.Repeat("start end ", 10) + "done"
	if got := strings.Join(events, " "); got != wantEvents {
		t.Errorf("journal events = %s\nwant %s", got, wantEvents)
	}
}

func TestExecuteBestEffortAndFailure(t *testing.T) {
	j, _ := OpenJournal(t.TempDir())
	lost := with(healthy(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false)
		s.Replication = Replication{LagBytes: -1}
	})
	plan, err := PlanFailover(lost, Options{AllowDataLoss: true})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{st: lost, failAt: "fence us-east-1"}
	out, err := (&Executor{Backend: fb, Journal: j, Options: Options{AllowDataLoss: true}}).Execute(context.Background(), "op", plan, nil)
	// The operation goes on past the failed fence, but owes it while
	// us-east-1 cannot be reached, and stays open.
	var inc *IncompleteError
	if !errors.As(err, &inc) || len(inc.Owed) != 1 || inc.Owed[0].Step.Name() != "fence us-east-1" {
		t.Fatalf("Execute() = %v, want an *IncompleteError owing the fence of us-east-1", err)
	}
	if !out.Steps[0].Failed || out.Steps[0].Error != "boom" {
		t.Errorf("step 1 = %+v, want failed with error boom", out.Steps[0])
	}
	if got := fb.did[len(fb.did)-1]; got != "verify us-west-2" {
		t.Errorf("last step done = %s, want verify us-west-2 (the failover goes on)", got)
	}
	if u, _ := j.Unfinished(); u == nil || u.ID != "op" {
		t.Errorf("Unfinished() = %+v, want op to stay open", u)
	}
	fb = &fakeBackend{st: lost, failAt: "promote us-west-2"}
	_, err = (&Executor{Backend: fb, Journal: j, Options: Options{AllowDataLoss: true}}).Execute(context.Background(), "op2", plan, nil)
	if err == nil || !strings.Contains(err.Error(), "step 4 (promote us-west-2): boom") || !strings.Contains(err.Error(), "run the same command again to resume") {
		t.Errorf("Execute() = %v, want step 4 failure with how to resume", err)
	}
}

func TestJournalIgnoresTornLine(t *testing.T) {
	j, _ := OpenJournal(t.TempDir())
	plan := Plan{Op: Switchover, Steps: []Step{{Action: ActionFence, Region: "a"}}}
	if err := j.Append(Entry{OpID: "x", Event: EventPlan, Plan: &plan}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(j.Path("x"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op_id":"x","event":"end","st`)
	f.Close()
	u, err := j.Unfinished()
	if err != nil || u == nil || u.Done[0] {
		t.Fatalf("Unfinished() = %+v, %v, want x with nothing done", u, err)
	}
}

func TestOperateRefusesOtherUnfinished(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	plan := Plan{Op: Failover, From: "us-east-1", To: "us-west-2", Steps: []Step{
		{Action: ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: ModeFailover},
		{Action: ActionUnfence, Region: "us-west-2"},
		{Action: ActionWaitTraffic, Region: "us-west-2"},
	}}
	j.Append(Entry{OpID: "old", Event: EventPlan, Plan: &plan})
	lost := with(healthy(), func(s *Status) { s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false) })
	_, err := Operate(context.Background(), &fakeBackend{st: lost}, FileLock{Path: filepath.Join(dir, "lock")}, j,
		Request{Op: Switchover}, &strings.Builder{})
	if !errors.Is(err, ErrUnfinishedOther) || !strings.Contains(err.Error(), "run paydr dr failover to resume it first") {
		t.Errorf("Operate() = %v, want ErrUnfinishedOther naming failover", err)
	}
	// The same operation resumes the recorded plan.
	fb := &fakeBackend{st: lost}
	out, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failover, Options: Options{AllowDataLoss: true}}, &strings.Builder{})
	if err != nil || out.OpID != "old" || !cmp.Equal(fb.did, []string{"promote us-west-2", "unfence us-west-2", "wait-traffic us-west-2"}) {
		t.Errorf("Operate(failover) = %v, %v, did %v; want op old resumed", out.OpID, err, fb.did)
	}
}

func TestOperateDryRunChangesNothing(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	fb := &fakeBackend{st: healthy()}
	var b strings.Builder
	if _, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Switchover, DryRun: true}, &b); err != nil {
		t.Fatal(err)
	}
	if len(fb.did) != 0 {
		t.Errorf("dry run did %v", fb.did)
	}
	if ids, _ := j.IDs(); len(ids) != 0 {
		t.Errorf("dry run journaled %v", ids)
	}
	if !strings.Contains(b.String(), "      fake promote us-west-2\n") {
		t.Errorf("dry run output lacks the calls:\n%s", b.String())
	}
}

func TestFileLockContention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l := FileLock{Path: path}
	host, _ := os.Hostname()
	me := LockInfo{Owner: "alice", Host: host, PID: os.Getpid(), Op: "switchover", Time: time.Now()}
	unlock, err := l.Lock(context.Background(), me)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Lock(context.Background(), LockInfo{Owner: "bob", Host: host, PID: os.Getpid(), Op: "failover"})
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "alice" || !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock() = %v, want *LockedError held by alice", err)
	}
	if err := unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	unlock, err = l.Lock(context.Background(), LockInfo{Owner: "bob", Host: host, PID: os.Getpid()})
	if err != nil {
		t.Fatalf("Lock() after unlock = %v", err)
	}
	unlock(context.Background())
}

func TestFileLockTakesOverDeadHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	host, _ := os.Hostname()
	// pid 2^22+1 is above Linux's pid_max default: never alive.
	os.WriteFile(path, []byte(`{"owner":"ghost","host":"`+host+`","pid":4194305}`), 0o644)
	unlock, err := FileLock{Path: path}.Lock(context.Background(), LockInfo{Owner: "me", Host: host, PID: os.Getpid()})
	if err != nil {
		t.Fatalf("Lock() over a dead holder = %v", err)
	}
	unlock(context.Background())
}

// TestFileLockHeldByAnotherProcess: a lock held by a live process (this
// test binary, run again as the holder) is respected, and is free the
// moment that process dies.
func TestFileLockHeldByAnotherProcess(t *testing.T) {
	if path := os.Getenv("PAYDR_DR_LOCK_HOLDER"); path != "" {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err == nil {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		}
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "lock")
	os.WriteFile(path, []byte(`{"owner":"other","host":"elsewhere","pid":1}`), 0o644)
	holder := exec.Command(os.Args[0], "-test.run=^TestFileLockHeldByAnotherProcess$")
	holder.Env = append(os.Environ(), "PAYDR_DR_LOCK_HOLDER="+path)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("holder said %q, want locked", line)
	}
	host, _ := os.Hostname()
	if _, err := (FileLock{Path: path}).Lock(context.Background(), LockInfo{Owner: "me", Host: host, PID: os.Getpid()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock() while another process holds it = %v, want ErrLocked", err)
	}
	holder.Process.Kill()
	holder.Wait()
	unlock, err := (FileLock{Path: path}).Lock(context.Background(), LockInfo{Owner: "me", Host: host, PID: os.Getpid()})
	if err != nil {
		t.Fatalf("Lock() after the holder died = %v, want it taken", err)
	}
	unlock(context.Background())
}
