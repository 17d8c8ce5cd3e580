package dr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file are the regression tests of the defects issue 10
// quotes: each failed on the main of 2026-12-01.

// staleFailoverJournal records a failover (data loss allowed) whose fence
// and preserve failed as best effort and whose promote failed.
func staleFailoverJournal(t *testing.T, j *Journal) Plan {
	t.Helper()
	lost := with(healthy(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false)
		s.Replication = Replication{LagBytes: -1}
	})
	plan, err := PlanFailover(lost, Options{AllowDataLoss: true})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{st: lost, fail: map[string]bool{"fence us-east-1": true, "preserve us-east-1": true, "promote us-west-2": true}}
	if _, err := (&Executor{Backend: fb, Journal: j}).Execute(context.Background(), "20260101T000000.000Z-failover", plan, nil); err == nil {
		t.Fatal("the stale failover's promote did not fail")
	}
	return plan
}

// TestResumedFailoverRechecksSafety: a stale failover in the journal must
// not run once the writer region is healthy again, and the options of the
// command that runs (no --allow-data-loss) are never replaced by the
// journaled ones.
func TestResumedFailoverRechecksSafety(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	staleFailoverJournal(t, j)
	for _, dry := range []bool{true, false} {
		fb := &fakeBackend{st: healthy()} // us-east-1 is a healthy writer again
		var out strings.Builder
		_, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failover, DryRun: dry}, &out)
		var r *Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "us-east-1") {
			t.Errorf("Operate(failover, dry run %v) with us-east-1 healthy again = %v, want a refusal naming us-east-1\n%s", dry, err, out.String())
		}
		if r != nil && !strings.Contains(r.Remedy, "paydr dr abandon") {
			t.Errorf("refusal remedy = %q, want it to say how to close the old operation (paydr dr abandon)", r.Remedy)
		}
		if len(fb.did) != 0 {
			t.Errorf("Operate(failover, dry run %v) did %v, want nothing", dry, fb.did)
		}
	}
}

// TestResumeUsesTheRunningCommandsOptions: the journaled failover allowed
// data loss; a resume without --allow-data-loss must not promote with loss.
func TestResumeUsesTheRunningCommandsOptions(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	staleFailoverJournal(t, j)
	lost := with(healthy(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false)
		s.Replication = Replication{LagBytes: -1, ReplayLag: 3 * time.Second}
	})
	fb := &fakeBackend{st: lost, fail: map[string]bool{"fence us-east-1": true, "preserve us-east-1": true}}
	_, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failover}, &strings.Builder{})
	var r *Refusal
	if !errors.As(err, &r) || r.Loss == nil {
		t.Fatalf("resumed failover without --allow-data-loss = %v, want a refusal about data loss", err)
	}
	for _, d := range fb.did {
		if strings.HasPrefix(d, "promote") {
			t.Errorf("resumed failover without --allow-data-loss did %v", fb.did)
		}
	}
	// With the acknowledgement it resumes, and retries the failed best-effort
	// steps first.
	fb.fail = nil
	out, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failover, Options: Options{AllowDataLoss: true}}, &strings.Builder{})
	if err != nil {
		t.Fatalf("resumed failover with --allow-data-loss = %v", err)
	}
	if len(fb.did) < 3 || fb.did[0] != "fence us-east-1" || fb.did[1] != "preserve us-east-1" || fb.did[2] != "promote us-west-2" {
		t.Errorf("resumed failover did %v, want the failed fence and preserve retried, then promote", fb.did)
	}
	if out.OpID != "20260101T000000.000Z-failover" {
		t.Errorf("resumed op = %s, want the journaled one", out.OpID)
	}
}

// TestBestEffortFailureIsRecordedAsFailed: a best-effort step that failed is
// shown as failed in the outcome and is not recorded as done.
func TestBestEffortFailureIsRecordedAsFailed(t *testing.T) {
	j, _ := OpenJournal(t.TempDir())
	staleFailoverJournal(t, j)
	u, err := j.Unfinished()
	if err != nil || u == nil {
		t.Fatalf("Unfinished() = %v, %v", u, err)
	}
	if u.Done[0] || u.Done[1] {
		t.Errorf("journal says the failed fence/preserve are done (%v); they failed", u.Done)
	}
}

// TestFailbackChecksLag: with the standby 2 h behind (still streaming) a
// failback must refuse before fencing the only writer.
func TestFailbackChecksLag(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	st := Status{
		Regions: []Region{
			region("us-east-1", "primary", RoleStandby, true, false),
			region("us-west-2", "secondary", RoleWriter, true, true),
		},
		Replication: Replication{Known: true, Streaming: true, State: "streaming", LagBytes: 1 << 30, ReplayLag: 2 * time.Hour},
		Traffic:     "us-west-2",
	}
	fb := &fakeBackend{st: st}
	_, err := Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failback}, &strings.Builder{})
	var r *Refusal
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "lag") {
		t.Errorf("failback with 2h lag = %v, want a refusal about the lag", err)
	}
	if len(fb.did) != 0 {
		t.Errorf("failback with 2h lag did %v, want nothing (never fence the only writer)", fb.did)
	}
}

// TestStaleLockTakeoverHasOneWinner: four operators find a dead holder's
// lock at once; exactly one may hold it.
func TestStaleLockTakeoverHasOneWinner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	host, _ := os.Hostname()
	for round := range 300 {
		os.WriteFile(path, []byte(`{"owner":"ghost","host":"`+host+`","pid":4194305}`), 0o644)
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			mu      sync.Mutex
			holders int
			unlocks []func(context.Context) error
		)
		for i := range 4 {
			wg.Go(func() {
				<-start
				unlock, err := FileLock{Path: path}.Lock(context.Background(), LockInfo{Owner: "op" + string(rune('a'+i)), Host: host, PID: os.Getpid()})
				if err == nil {
					mu.Lock()
					holders++
					unlocks = append(unlocks, unlock)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		for _, u := range unlocks {
			u(context.Background())
		}
		if holders != 1 {
			t.Fatalf("round %d: %d operators held the lock at once, want exactly 1", round, holders)
		}
	}
}

// TestUnlockChecksOwnership: a stale unlock function (its lock released and
// taken by someone else since) must not release the new holder's lock.
func TestUnlockChecksOwnership(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	host, _ := os.Hostname()
	l := FileLock{Path: path}
	unlockB, err := l.Lock(context.Background(), LockInfo{Owner: "bob", Host: host, PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	unlockB(context.Background())
	unlockA, err := l.Lock(context.Background(), LockInfo{Owner: "alice", Host: host, PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	defer unlockA(context.Background())
	unlockB(context.Background()) // bob's stale unlock, again
	if unlockC, err := l.Lock(context.Background(), LockInfo{Owner: "carol", Host: host, PID: os.Getpid()}); err == nil {
		unlockC(context.Background())
		t.Fatal("carol took the lock alice holds after bob's stale unlock")
	}
}

// TestTornJournalLineIsRepaired: a crash in the middle of an append leaves
// a partial line; the resumed operation's lines must not be glued onto it,
// and once it completes it is never resumed again.
func TestTornJournalLineIsRepaired(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	plan, _ := PlanSwitchover(healthy(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	fb := &fakeBackend{st: healthy(), crash: "promote us-west-2", cancel: cancel}
	(&Executor{Backend: fb, Journal: j}).Execute(ctx, "op1", plan, nil)
	f, _ := os.OpenFile(j.Path("op1"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-01-01T00:00:00Z","op_id":"op1","event":"end","st`)
	f.Close()
	fb2 := &fakeBackend{st: fb.st} // the deployment as the crash left it
	if _, err := Operate(context.Background(), fb2, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Switchover}, &strings.Builder{}); err != nil {
		t.Fatalf("resume after a torn line = %v", err)
	}
	if u, err := j.Unfinished(); err != nil || u != nil {
		t.Fatalf("Unfinished() after the resumed operation completed = %+v, %v, want nil", u, err)
	}
	// A new switchover is a new operation, not a replay of op1's steps.
	fb3 := &fakeBackend{st: fb2.st} // op1 moved the writer to us-west-2: this one moves it back
	out, err := Operate(context.Background(), fb3, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Switchover}, &strings.Builder{})
	if err != nil || out.OpID == "op1" {
		t.Errorf("new switchover = %s, %v; want a new operation", out.OpID, err)
	}
}
