package dr

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func region(name, slot string, role Role, reachable, healthy bool) Region {
	return Region{Name: name, Slot: slot, Role: role, Reachable: reachable, Healthy: healthy}
}

// healthy is the normal state: us-east-1 writes, us-west-2 streams.
func healthy() Status {
	return Status{
		Regions: []Region{
			region("us-east-1", "primary", RoleWriter, true, true),
			region("us-west-2", "secondary", RoleStandby, true, false),
		},
		Replication: Replication{Known: true, Streaming: true, State: "streaming", LagBytes: 0, ReplayLag: 2 * time.Millisecond},
		Traffic:     "us-east-1",
	}
}

func with(st Status, f func(*Status)) Status {
	st.Regions = append([]Region(nil), st.Regions...)
	f(&st)
	return st
}

func TestPlanSwitchover(t *testing.T) {
	tests := []struct {
		name    string
		st      Status
		want    Plan
		refusal string
	}{
		{
			name: "healthy pair",
			st:   healthy(),
			want: Plan{Op: Switchover, From: "us-east-1", To: "us-west-2", Steps: []Step{
				{Action: ActionFence, Region: "us-east-1", Why: "stop writes in the old writer region so nothing commits that the standby misses"},
				{Action: ActionWaitCaughtUp, Region: "us-west-2", Peer: "us-east-1", Why: "wait until the standby has applied everything the old writer committed"},
				{Action: ActionRelaxRPO, Region: "us-east-1", Why: "stop enforcing the bound on loss in the old writer region, fenced now, so that it never holds one as a standby"},
				{Action: ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: ModeSwitchover, Why: "make the standby the writer (planned switchover: no data loss)"},
				{Action: ActionRebuildStandby, Region: "us-east-1", Peer: "us-west-2", Why: "make the old writer a standby of the new writer"},
				{Action: ActionEnforceRPO, Region: "us-west-2", Peer: "us-east-1", BestEffort: true, Why: "enforce the bound on loss on the new writer, now that the old writer replicates from it"},
				{Action: ActionUnfence, Region: "us-west-2", Why: "let the new writer region's processor take writes"},
				{Action: ActionWaitTraffic, Region: "us-west-2", Why: "wait until the failover name sends traffic to the new writer"},
				{Action: ActionVerify, Region: "us-west-2", Why: "send a real payment through the failover name and find it in the new writer's ledger"},
			}},
		},
		{
			name: "back from the secondary slot",
			st: with(healthy(), func(s *Status) {
				s.Regions[0].Role, s.Regions[1].Role = RoleStandby, RoleWriter
				s.Regions[0].Healthy, s.Regions[1].Healthy = false, true
			}),
			want: Plan{Op: Switchover, From: "us-west-2", To: "us-east-1", Steps: switchoverSteps("us-west-2", "us-east-1")},
		},
		{
			name: "unhealthy writer still reachable warns",
			st:   with(healthy(), func(s *Status) { s.Regions[0].Healthy, s.Regions[0].Health = false, "processor down" }),
			want: Plan{Op: Switchover, From: "us-east-1", To: "us-west-2", Steps: switchoverSteps("us-east-1", "us-west-2"),
				Warnings: []string{"the writer region us-east-1 is unhealthy (processor down); clients may already see errors"}},
		},
		{name: "writer lost", st: with(healthy(), func(s *Status) { s.Regions[0].Role, s.Regions[0].Reachable = RoleUnknown, false }),
			refusal: "dr: switchover refused: no region holds a writable database; a switchover needs a running writer; if the writer region is lost, run paydr dr failover"},
		{name: "two writers", st: with(healthy(), func(s *Status) { s.Regions[1].Role = RoleWriter }),
			refusal: "dr: switchover refused: us-east-1 and us-west-2 are both writable; fence the region that must not take writes first"},
		{name: "standby down", st: with(healthy(), func(s *Status) { s.Regions[1].Role = RoleDown }),
			refusal: "dr: switchover refused: us-west-2 is down, not a reachable standby; rebuild us-west-2 as a standby first"},
		{name: "not streaming", st: with(healthy(), func(s *Status) { s.Replication.Streaming, s.Replication.State = false, "catchup" }),
			refusal: `dr: switchover refused: the standby us-west-2 is not streaming (state "catchup"); wait until paydr dr status shows the standby streaming`},
		{name: "lag too high", st: with(healthy(), func(s *Status) { s.Replication.ReplayLag = 2 * time.Minute }),
			refusal: "dr: switchover refused: replication lag 2m0s exceeds 1m0s; wait until paydr dr status shows the standby streaming within the bound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanSwitchover(tt.st, Options{})
			checkPlan(t, "PlanSwitchover", got, err, tt.want, tt.refusal)
		})
	}
}

func checkPlan(t *testing.T, fn string, got Plan, err error, want Plan, refusal string) {
	t.Helper()
	if refusal != "" {
		var r *Refusal
		if !errors.As(err, &r) {
			t.Fatalf("%s() error = %v, want a *Refusal", fn, err)
		}
		if !strings.HasPrefix(err.Error(), refusal) {
			t.Fatalf("%s() error =\n%s\nwant prefix\n%s", fn, err, refusal)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s() error = %v", fn, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s() mismatch (-want +got):\n%s", fn, diff)
	}
}

func failoverSteps(from, to string) []Step {
	return []Step{
		{Action: ActionFence, Region: from, BestEffort: true, Why: "stop the lost writer from taking writes if it comes back (never two writable regions)"},
		{Action: ActionPreserve, Region: from, BestEffort: true, Why: "keep the old writer's final state, including writes that never replicated"},
		{Action: ActionRelaxRPO, Region: to, Why: "enforce no bound on loss on the standby before it becomes a writer without a healthy standby (a bound would block its commits)"},
		{Action: ActionPromote, Region: to, Peer: from, Mode: ModeFailover, Why: "make the standby the writer without waiting for the lost writer (unplanned failover)"},
		{Action: ActionUnfence, Region: to, Why: "let the new writer region's processor take writes"},
		{Action: ActionWaitTraffic, Region: to, Why: "wait until the failover name sends traffic to the new writer"},
		{Action: ActionVerify, Region: to, Why: "send a real payment through the failover name and find it in the new writer's ledger"},
	}
}

func TestPlanFailover(t *testing.T) {
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lost := with(healthy(), func(s *Status) {
		s.Regions[0] = region("us-east-1", "primary", RoleUnknown, false, false)
		s.Replication = Replication{Known: false, LagBytes: -1, RPOLag: 800 * time.Millisecond, ReplayLag: 3 * time.Millisecond, LastReplayed: last}
	})
	lostLoss := LossEstimate{MayLoseData: true, Window: 800 * time.Millisecond, Since: last, Unbounded: true,
		Basis: "us-east-1 cannot be asked what it committed; the last lag observed is the estimate; if it is alive and cut off, it may still be acknowledging writes: no bound on loss is known to be enforced on it"}
	boundedLoss := LossEstimate{MayLoseData: true, Window: 2 * time.Minute, Since: last,
		Basis: "us-east-1 cannot be asked what it committed; the last lag observed is the estimate; if it is alive and cut off, it went on committing until its bound on loss (2m0s) stopped it"}
	procDead := with(healthy(), func(s *Status) { s.Regions[0].Healthy = false })
	tests := []struct {
		name    string
		st      Status
		opts    Options
		want    Plan
		refusal string
	}{
		{
			name: "writer lost, data loss allowed",
			st:   lost, opts: Options{AllowDataLoss: true},
			want: Plan{Op: Failover, From: "us-east-1", To: "us-west-2", AllowDataLoss: true, Loss: &lostLoss,
				Steps:    failoverSteps("us-east-1", "us-west-2"),
				Warnings: []string{"us-east-1 is unreachable: fencing and preserving it are best effort; fence it before it comes back"}},
		},
		{
			name: "writer lost, a bound on loss set: not enforced after",
			st:   with(lost, func(s *Status) { s.RPOTarget = 5 * time.Minute }), opts: Options{AllowDataLoss: true},
			want: Plan{Op: Failover, From: "us-east-1", To: "us-west-2", AllowDataLoss: true, Loss: &lostLoss,
				Steps: failoverSteps("us-east-1", "us-west-2"),
				Warnings: []string{"us-east-1 is unreachable: fencing and preserving it are best effort; fence it before it comes back",
					"the bound on loss (5m0s) is not enforced on us-west-2 after this failover: with no healthy standby it would block every commit; it is enforced again when paydr dr failback rebuilds us-east-1 as a standby and moves the writer back with the bound"}},
		},
		{
			name: "to the primary slot, a bound on loss set",
			st: with(lost, func(s *Status) {
				s.RPOTarget = time.Minute
				s.Regions[0], s.Regions[1] = region("us-east-1", "primary", RoleStandby, true, false), region("us-west-2", "secondary", RoleUnknown, false, false)
			}), opts: Options{AllowDataLoss: true},
			want: Plan{Op: Failover, From: "us-west-2", To: "us-east-1", AllowDataLoss: true,
				Loss:  &LossEstimate{MayLoseData: true, Window: 800 * time.Millisecond, Since: last, Unbounded: true, Basis: "us-west-2 cannot be asked what it committed; the last lag observed is the estimate; if it is alive and cut off, it may still be acknowledging writes: no bound on loss is known to be enforced on it"},
				Steps: failoverSteps("us-west-2", "us-east-1"),
				Warnings: []string{"us-west-2 is unreachable: fencing and preserving it are best effort; fence it before it comes back",
					"the bound on loss (1m0s) is not enforced on us-east-1 after this failover: with no healthy standby it would block every commit; it is enforced again when us-west-2 is a standby again and a switchover moves the writer with the bound"}},
		},
		{
			name: "writer lost, no acknowledgement",
			st:   lost, refusal: "dr: failover refused: data may be lost; estimated loss: writes of at least the last 800ms may be lost, with no upper bound (everything committed after 2026-01-02T03:04:05Z): us-east-1 cannot be asked what it committed; the last lag observed is the estimate; if it is alive and cut off, it may still be acknowledging writes: no bound on loss is known to be enforced on it; pass --allow-data-loss to accept it",
		},
		{
			// A writer that is cut off but alive goes on committing until
			// its bound stops it: the estimate says so, not the last lag.
			name: "writer lost with a bound enforced: the bound is the estimate",
			st:   with(lost, func(s *Status) { s.RPOTarget, s.Regions[0].RPOBound = 2*time.Minute, 2*time.Minute }), opts: Options{AllowDataLoss: true},
			want: Plan{Op: Failover, From: "us-east-1", To: "us-west-2", AllowDataLoss: true, Loss: &boundedLoss,
				Steps: failoverSteps("us-east-1", "us-west-2"),
				Warnings: []string{"us-east-1 is unreachable: fencing and preserving it are best effort; fence it before it comes back",
					"the bound on loss (2m0s) is not enforced on us-west-2 after this failover: with no healthy standby it would block every commit; it is enforced again when paydr dr failback rebuilds us-east-1 as a standby and moves the writer back with the bound"}},
		},
		{
			name: "processor dead, database caught up: no flag needed",
			st:   procDead,
			want: Plan{Op: Failover, From: "us-east-1", To: "us-west-2",
				Loss:  &LossEstimate{Basis: "the standby has applied everything us-east-1 wrote (0 bytes behind, streaming)"},
				Steps: failoverSteps("us-east-1", "us-west-2")},
		},
		{
			name:    "processor dead, standby behind",
			st:      with(procDead, func(s *Status) { s.Replication.LagBytes = 4096 }),
			refusal: "dr: failover refused: data may be lost; estimated loss: writes of about the last 2ms may be lost: the standby is 4096 bytes behind",
		},
		{name: "writer healthy", st: healthy(), opts: Options{AllowDataLoss: true},
			refusal: "dr: failover refused: the writer region us-east-1 is reachable and healthy; use paydr dr switchover"},
		{name: "already failed over", st: with(healthy(), func(s *Status) {
			s.Regions[0].Role, s.Regions[0].Reachable = RoleDown, true
			s.Regions[1].Role = RoleWriter
		}), refusal: "dr: failover refused: us-west-2 already holds the writer and us-east-1 is down; there is no standby to promote; nothing to fail over"},
		{name: "standby unreachable", st: with(lost, func(s *Status) { s.Regions[1].Reachable = false }), opts: Options{AllowDataLoss: true},
			refusal: "dr: failover refused: no reachable standby to promote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanFailover(tt.st, tt.opts)
			checkPlan(t, "PlanFailover", got, err, tt.want, tt.refusal)
		})
	}
}

func TestPlanFailback(t *testing.T) {
	failedOver := with(healthy(), func(s *Status) {
		s.Regions[0].Role, s.Regions[0].Healthy = RoleDown, false
		s.Regions[1].Role, s.Regions[1].Healthy = RoleWriter, true
		s.Replication = Replication{Known: true, LagBytes: -1}
	})
	rebuild := []Step{
		{Action: ActionFence, Region: "us-east-1", Why: "keep the old writer from taking writes while it is rebuilt"},
		{Action: ActionPreserve, Region: "us-east-1", Why: "keep the old writer's final state before rebuilding discards its unreplicated writes"},
		{Action: ActionRebuildStandby, Region: "us-east-1", Peer: "us-west-2", Why: "make the old writer a standby of the current writer"},
	}
	tests := []struct {
		name    string
		st      Status
		want    Plan
		refusal string
	}{
		{name: "old writer down: rebuild, then switch over", st: failedOver,
			want: Plan{Op: Failback, From: "us-west-2", To: "us-east-1", Steps: append(rebuild, switchoverSteps("us-west-2", "us-east-1")...)}},
		{name: "old writer already a streaming standby: switch over only", st: with(failedOver, func(s *Status) {
			s.Regions[0].Role = RoleStandby
			s.Replication = Replication{Known: true, Streaming: true}
		}), want: Plan{Op: Failback, From: "us-west-2", To: "us-east-1", Steps: switchoverSteps("us-west-2", "us-east-1")}},
		{name: "nothing to fail back", st: healthy(), refusal: "dr: failback refused: us-east-1 (the primary slot) already holds the writer; nothing to fail back"},
		{name: "current writer lost", st: with(failedOver, func(s *Status) { s.Regions[1].Role, s.Regions[1].Reachable = RoleUnknown, false }),
			refusal: "dr: failback refused: us-west-2 is unknown and unreachable, not a reachable writer"},
		{name: "home unreachable", st: with(failedOver, func(s *Status) { s.Regions[0].Role, s.Regions[0].Reachable = RoleUnknown, false }),
			refusal: "dr: failback refused: us-east-1 cannot be reached; restore us-east-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanFailback(tt.st, Options{})
			checkPlan(t, "PlanFailback", got, err, tt.want, tt.refusal)
		})
	}
}

func TestPlanRender(t *testing.T) {
	p, err := PlanSwitchover(healthy(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := p.Render(&b, func(s Step) []string { return []string{"call " + s.Name()} }); err != nil {
		t.Fatal(err)
	}
	want := `plan: switchover from us-east-1 to us-west-2
 1. fence us-east-1: stop writes in the old writer region so nothing commits that the standby misses
      call fence us-east-1
 2. wait-caught-up us-west-2: wait until the standby has applied everything the old writer committed
      call wait-caught-up us-west-2
`
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("Render() =\n%s\nwant prefix\n%s", b.String(), want)
	}
}

func TestPlanFence(t *testing.T) {
	split := with(healthy(), func(s *Status) { s.Regions[1] = region("us-west-2", "secondary", RoleWriter, true, true) })
	p, err := PlanFence(split, Options{Target: "us-east-1"})
	if err != nil {
		t.Fatalf("PlanFence(two writers) = %v", err)
	}
	want := []string{"fence us-east-1", "wait-traffic us-west-2"}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.Name())
	}
	if diff := cmp.Diff(want, got); diff != "" || p.To != "us-west-2" {
		t.Errorf("PlanFence steps (-want +got):\n%s (to %s)", diff, p.To)
	}
	if err := CheckStep(StepCheck{Plan: p, Step: p.Steps[0]}, split); err != nil {
		t.Errorf("CheckStep(fence us-east-1 while two write) = %v, want allowed", err)
	}
	for _, tc := range []struct {
		name, target, want string
		st                 Status
	}{
		{"the only writer", "us-east-1", "us-east-1 is the only writer", healthy()},
		{"a standby", "us-west-2", "us-west-2 is standby, not a writer", healthy()},
		{"unknown region", "eu-west-1", `region "eu-west-1" is not in the deployment`, healthy()},
	} {
		var r *Refusal
		if _, err := PlanFence(tc.st, Options{Target: tc.target}); !errors.As(err, &r) || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("%s: PlanFence(%s) = %v, want a refusal: %s", tc.name, tc.target, err, tc.want)
		}
	}
}

func TestVerifyPaymentID(t *testing.T) {
	tests := []struct{ opID, want string }{
		{"20260101T000000.000Z-failover", "dr-verify-20260101T000000-000Z-failover"},
		{strings.Repeat("x", 80), "dr-verify-" + strings.Repeat("x", 54)},
	}
	for _, tt := range tests {
		if got := VerifyPaymentID(tt.opID); got != tt.want {
			t.Errorf("VerifyPaymentID(%q) = %q, want %q", tt.opID, got, tt.want)
		}
	}
}
