package dr

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The bound on loss (issue 11, item 5): enforced on the writer while its
// standby replicates within it, relaxed before a standby becomes a writer,
// moved with the writer by switchover and failback.

// bounded is healthy() with a bound of 5 minutes enforced on the writer.
func bounded() Status {
	return with(healthy(), func(s *Status) {
		s.RPOTarget = 5 * time.Minute
		s.Regions[0].RPOBound = 5 * time.Minute
	})
}

// switchedOver is bounded() after promote and rebuild-standby of a
// switchover to us-west-2: us-west-2 writes, fenced, with no bound yet.
func switchedOver() Status {
	return with(bounded(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleStandby, true, false)
		s.Regions[1] = region("us-west-2", "secondary", RoleWriter, true, false)
		s.Regions[1].Fenced = true
	})
}

func TestCheckStepEnforceRPO(t *testing.T) {
	p, err := PlanSwitchover(bounded(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	enforce := Step{Action: ActionEnforceRPO, Region: "us-west-2", Peer: "us-east-1", BestEffort: true}
	tests := []struct {
		name   string
		st     Status
		refuse string // "" when allowed
	}{
		{name: "standby streams within the bound", st: switchedOver()},
		{name: "enforced already", st: with(switchedOver(), func(s *Status) {
			s.Regions[1].RPOBound = 5 * time.Minute
			s.Replication.Streaming = false
		})},
		{name: "the deployment sets no bound", st: with(switchedOver(), func(s *Status) { s.RPOTarget = 0; s.Replication.Streaming = false })},
		{name: "standby not streaming", st: with(switchedOver(), func(s *Status) { s.Replication.Streaming, s.Replication.State = false, "catchup" }),
			refuse: `enforce-rpo us-west-2 would block every commit of us-west-2: the standby us-east-1 is not streaming (state "catchup")`},
		{name: "replication unknown", st: with(switchedOver(), func(s *Status) { s.Replication = Replication{LagBytes: -1} }),
			refuse: `the standby us-east-1 is not streaming`},
		{name: "standby behind the bound", st: with(switchedOver(), func(s *Status) { s.Replication.RPOLag = 6 * time.Minute }),
			refuse: "enforce-rpo us-west-2 would block the commits of us-west-2: the rpo lag of us-east-1 is 6m0s, above the bound 5m0s"},
		{name: "peer not a standby", st: with(switchedOver(), func(s *Status) { s.Regions[0].Role = RoleDown }),
			refuse: "enforce-rpo us-west-2 would block every commit of us-west-2: us-east-1 is down, not its reachable standby"},
		{name: "peer unreachable", st: with(switchedOver(), func(s *Status) { s.Regions[0].Reachable = false }),
			refuse: "us-east-1 is standby and unreachable, not its reachable standby"},
		{name: "not the writer", st: bounded(),
			refuse: "enforce-rpo us-west-2: us-west-2 is standby; the bound on loss is enforced only on the writer"},
		{name: "two writers", st: with(switchedOver(), func(s *Status) {
			s.Regions[0].Role = RoleWriter
			s.Regions[1].Fenced = false
		}), refuse: "enforce-rpo us-west-2: us-east-1 and us-west-2 are both writable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckStep(StepCheck{Plan: p, Step: enforce, Promoted: true}, tt.st)
			var r *Refusal
			switch {
			case tt.refuse == "" && err != nil:
				t.Errorf("CheckStep(enforce-rpo us-west-2) = %v, want allowed", err)
			case tt.refuse != "" && (!errors.As(err, &r) || !strings.Contains(r.Reason, tt.refuse) || r.Remedy == ""):
				t.Errorf("CheckStep(enforce-rpo us-west-2) = %v, want a refusal with a remedy: %s", err, tt.refuse)
			}
		})
	}
}

func TestCheckStepFailoverPromoteNeedsNoBound(t *testing.T) {
	lost := with(bounded(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false)
		s.Regions[1].RPOBound = time.Minute // a bound left on the standby
	})
	p := Plan{Op: Failover, From: "us-east-1", To: "us-west-2"}
	promote := Step{Action: ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: ModeFailover}
	err := CheckStep(StepCheck{Plan: p, Step: promote, Options: Options{AllowDataLoss: true}}, lost)
	var r *Refusal
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "us-west-2 enforces a bound on loss (1m0s)") || !strings.Contains(r.Remedy, "paydr dr abandon") {
		t.Errorf("CheckStep(failover promote of a bounded standby) = %v, want a refusal saying to plan again", err)
	}
	lost.Regions[1].RPOBound = 0
	if err := CheckStep(StepCheck{Plan: p, Step: promote, Options: Options{AllowDataLoss: true}}, lost); err != nil {
		t.Errorf("CheckStep(failover promote, bound relaxed) = %v, want allowed", err)
	}
}

func TestMootRPO(t *testing.T) {
	tests := []struct {
		name string
		s    Step
		st   Status
		want string
	}{
		{"enforced already", Step{Action: ActionEnforceRPO, Region: "us-east-1"}, bounded(), "us-east-1 enforces the bound 5m0s already"},
		{"enforced with another bound", Step{Action: ActionEnforceRPO, Region: "us-east-1"}, with(bounded(), func(s *Status) { s.RPOTarget = time.Minute }), ""},
		{"no bound set", Step{Action: ActionEnforceRPO, Region: "us-east-1"}, healthy(), "the deployment sets no bound on loss"},
		{"unreachable", Step{Action: ActionEnforceRPO, Region: "us-east-1"}, with(bounded(), func(s *Status) { s.Regions[0].Reachable = false }), ""},
		{"relaxed already", Step{Action: ActionRelaxRPO, Region: "us-west-2"}, bounded(), "us-west-2 enforces no bound"},
		{"still enforced", Step{Action: ActionRelaxRPO, Region: "us-east-1"}, bounded(), ""},
	}
	for _, tt := range tests {
		why, ok := moot(tt.s, tt.st)
		if why != tt.want || ok != (tt.want != "") {
			t.Errorf("%s: moot(%s) = %q, %v; want %q", tt.name, tt.s.Name(), why, ok, tt.want)
		}
	}
}

// rpoBackend is a fakeBackend whose rebuilt standby does not stream until
// streams is set: enforce-rpo is refused meanwhile.
type rpoBackend struct {
	*fakeBackend
	streams bool
}

func (b *rpoBackend) Do(ctx context.Context, opID string, s Step) (string, error) {
	res, err := b.fakeBackend.Do(ctx, opID, s)
	if err == nil && s.Action == ActionRebuildStandby {
		b.streams = false
	}
	return res, err
}

func (b *rpoBackend) Status(ctx context.Context) (Status, error) {
	st, _ := b.fakeBackend.Status(ctx)
	st.Replication.Streaming = b.streams
	return st, nil
}

// TestEnforceRPOWaitsForTheStandby: a switchover whose rebuilt standby does
// not stream yet still unfences the new writer (payments go on), owes
// enforce-rpo and stays open; run again once the standby streams, it
// enforces the bound and finishes.
func TestEnforceRPOWaitsForTheStandby(t *testing.T) {
	dir := t.TempDir()
	j, _ := OpenJournal(filepath.Join(dir, "journal"))
	lock := FileLock{Path: filepath.Join(dir, "lock")}
	b := &rpoBackend{fakeBackend: &fakeBackend{st: bounded()}, streams: true}
	var out strings.Builder
	_, err := Operate(context.Background(), b, lock, j, Request{Op: Switchover}, &out)
	var inc *IncompleteError
	if !errors.As(err, &inc) || len(inc.Owed) != 1 || inc.Owed[0].Step.Name() != "enforce-rpo us-west-2" {
		t.Fatalf("switchover with the standby not streaming = %v, want an *IncompleteError owing enforce-rpo us-west-2\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "6. enforce-rpo us-west-2: not now, owed (best effort; the operation goes on): enforce-rpo us-west-2 would block every commit of us-west-2: the standby us-east-1 is not streaming") {
		t.Errorf("output does not say why enforce-rpo waits:\n%s", out.String())
	}
	want := []string{"fence us-east-1", "wait-caught-up us-west-2", "relax-rpo us-east-1", "promote us-west-2", "rebuild-standby us-east-1", "unfence us-west-2", "wait-traffic us-west-2", "verify us-west-2"}
	if diff := cmp.Diff(want, b.did); diff != "" {
		t.Errorf("steps done (-want +got):\n%s", diff)
	}
	if r, _ := b.st.Region("us-west-2"); r.RPOBound != 0 || r.Fenced {
		t.Errorf("us-west-2 after the switchover: bound %s, fenced %v; want unfenced, no bound yet", r.RPOBound, r.Fenced)
	}

	// A dry run says the step waits; the same command later enforces it.
	out.Reset()
	if _, err := Operate(context.Background(), b, lock, j, Request{Op: Switchover, DryRun: true}, &out); err != nil {
		t.Fatalf("dry run while the standby does not stream = %v", err)
	}
	if !strings.Contains(out.String(), "[owed, waits (the operation goes on): enforce-rpo us-west-2 would block") {
		t.Errorf("dry run does not show enforce-rpo waiting:\n%s", out.String())
	}
	b.streams, b.did = true, nil
	out.Reset()
	if _, err := Operate(context.Background(), b, lock, j, Request{Op: Switchover}, &out); err != nil {
		t.Fatalf("switchover run again with the standby streaming = %v\n%s", err, out.String())
	}
	if diff := cmp.Diff([]string{"enforce-rpo us-west-2"}, b.did); diff != "" {
		t.Errorf("steps done when run again (-want +got):\n%s", diff)
	}
	if r, _ := b.st.Region("us-west-2"); r.RPOBound != 5*time.Minute {
		t.Errorf("us-west-2 bound = %s, want 5m0s enforced", r.RPOBound)
	}
	if r, _ := b.st.Region("us-east-1"); r.RPOBound != 0 {
		t.Errorf("us-east-1 (the standby) bound = %s, want none", r.RPOBound)
	}
	if u, _ := j.Unfinished(); u != nil {
		t.Errorf("Unfinished() = %s, want the switchover closed", u.ID)
	}
}

// TestResumeOldPlanShape: an operation journaled by a paydr whose plans did
// not move the bound on loss resumes by its own steps (journal entries name
// steps by their index in the journaled plan, which is never rewritten), and
// says it leaves the bound where it is; a failover of that shape stops
// before promoting a standby that enforces a bound.
func TestResumeOldPlanShape(t *testing.T) {
	old := func(p Plan) Plan {
		var steps []Step
		for _, s := range p.Steps {
			if s.Action != ActionRelaxRPO && s.Action != ActionEnforceRPO {
				steps = append(steps, s)
			}
		}
		p.Steps = steps
		return p
	}
	t.Run("switchover", func(t *testing.T) {
		dir := t.TempDir()
		j, _ := OpenJournal(filepath.Join(dir, "journal"))
		p, err := PlanSwitchover(healthy(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		p = old(p)
		ctx, cancel := context.WithCancel(context.Background())
		fb := &fakeBackend{st: bounded(), crash: "promote us-west-2", cancel: cancel}
		if _, err := (&Executor{Backend: fb, Journal: j}).Execute(ctx, "20260101T000000.000Z-switchover", p, nil); err == nil {
			t.Fatal("Execute() with a crash at promote = nil error")
		}
		fb2 := &fakeBackend{st: fb.st}
		var out strings.Builder
		if _, err := Operate(context.Background(), fb2, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Switchover}, &out); err != nil {
			t.Fatalf("resumed old-shape switchover = %v\n%s", err, out.String())
		}
		want := []string{"promote us-west-2", "rebuild-standby us-east-1", "unfence us-west-2", "wait-traffic us-west-2", "verify us-west-2"}
		if diff := cmp.Diff(want, fb2.did); diff != "" {
			t.Errorf("steps after resume (-want +got):\n%s", diff)
		}
		if !strings.Contains(out.String(), "note: planned by an older paydr, without the steps that move the bound on loss (5m0s) with the writer") {
			t.Errorf("resumed output does not say the bound stays where it is:\n%s", out.String())
		}
	})
	t.Run("failover", func(t *testing.T) {
		dir := t.TempDir()
		j, _ := OpenJournal(filepath.Join(dir, "journal"))
		// A failover back to the primary slot, whose cluster parameter
		// group the stack gave the bound.
		lost := with(bounded(), func(s *Status) {
			s.Regions[0].Role, s.Regions[0].Healthy = RoleStandby, false
			s.Regions[1] = region("us-west-2", "secondary", RoleUnknown, false, false)
			s.Replication = Replication{LagBytes: -1}
		})
		p, err := PlanFailover(lost, Options{AllowDataLoss: true})
		if err != nil {
			t.Fatal(err)
		}
		p = old(p)
		if err := j.Begin("20260101T000000.000Z-failover", p, time.Now()); err != nil {
			t.Fatal(err)
		}
		fb := &fakeBackend{st: lost}
		_, err = Operate(context.Background(), fb, FileLock{Path: filepath.Join(dir, "lock")}, j, Request{Op: Failover, Options: Options{AllowDataLoss: true}}, &strings.Builder{})
		var r *Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "us-east-1 enforces a bound on loss") {
			t.Fatalf("resumed old-shape failover = %v, want a refusal before promoting a bounded standby", err)
		}
		for _, s := range fb.did {
			if strings.HasPrefix(s, "promote") {
				t.Errorf("the old-shape failover promoted (%v)", fb.did)
			}
		}
	})
}
