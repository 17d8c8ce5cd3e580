package drill

import (
	"encoding/json"
	"fmt"
	"paydr/internal/dr"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestClassify(t *testing.T) {
	att := func(id string, amount int64, ans Answer) Attempt {
		return Attempt{PaymentID: id, AmountMinor: amount, Answer: ans}
	}
	row := func(id string, amount int64) LedgerRow { return LedgerRow{PaymentID: id, AmountMinor: amount} }
	tests := []struct {
		name     string
		attempts []Attempt
		ledger   []LedgerRow
		want     Classification
	}{
		{
			name:     "all acknowledged and present",
			attempts: []Attempt{att("a", 100, Acked), att("b", 250, Acked)},
			ledger:   []LedgerRow{row("a", 100), row("b", 250)},
			want:     Classification{Counts: map[Class]int{ClassOK: 2}, AckedTotal: 350, LedgerTotal: 350, Conserved: true, Exact: true},
		},
		{
			name:     "acknowledged and lost",
			attempts: []Attempt{att("a", 100, Acked), att("b", 250, Acked)},
			ledger:   []LedgerRow{row("a", 100)},
			want: Classification{Counts: map[Class]int{ClassOK: 1, ClassLost: 1}, Lost: []string{"b"},
				AckedTotal: 350, LedgerTotal: 100, LostTotal: 250, Conserved: true},
		},
		{
			name:     "timed out and applied is indeterminate; refused and absent is failed",
			attempts: []Attempt{att("a", 100, Indeterminate), att("b", 7, Rejected), att("c", 9, Indeterminate)},
			ledger:   []LedgerRow{row("a", 100)},
			want: Classification{Counts: map[Class]int{ClassIndeterminate: 1, ClassFailed: 2},
				LedgerTotal: 100, IndeterminateTotal: 100, Conserved: true},
		},
		{
			name:     "refused but applied is unexpected",
			attempts: []Attempt{att("a", 100, Rejected)},
			ledger:   []LedgerRow{row("a", 100)},
			want:     Classification{Counts: map[Class]int{ClassUnexpected: 1}, Unexpected: []string{"a"}, LedgerTotal: 100},
		},
		{
			name:     "duplicated, wrong amount, never sent",
			attempts: []Attempt{att("a", 100, Acked), att("b", 5, Acked)},
			ledger:   []LedgerRow{row("a", 100), row("a", 100), row("b", 6), row("zz", 1)},
			want: Classification{Counts: map[Class]int{ClassDuplicated: 1, ClassUnexpected: 2}, Duplicated: []string{"a"}, Unexpected: []string{"b", "zz"},
				AckedTotal: 105, LedgerTotal: 207},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.attempts, tt.ledger)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Classify() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReportFigures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &Report{Fault: FaultKillDB, From: "us-east-1", To: "us-west-2", Start: t0, End: at(10000), MaxRTO: 30 * time.Second,
		FaultAt: at(5000), DetectedAt: at(8000), PromoteStarted: at(8100), PromotedAt: at(8600), RPOLagAtFault: 40 * time.Millisecond,
		LossEstimate: &dr.LossEstimate{MayLoseData: true, Window: 3640 * time.Millisecond, Since: at(4960)},
		Attempts: []Attempt{
			{PaymentID: "p1", AmountMinor: 100, Sent: at(4900), Done: at(4950), Status: 201, Answer: Acked},
			{PaymentID: "p2", AmountMinor: 100, Sent: at(4960), Done: at(4990), Status: 201, Answer: Acked}, // lost: acked 10ms before the fault
			{PaymentID: "p3", AmountMinor: 100, Sent: at(5100), Done: at(5200), Status: 502, Answer: Indeterminate},
			{PaymentID: "p4", AmountMinor: 100, Sent: at(6000), Done: at(6001), Status: 503, Answer: Rejected},
			{PaymentID: "p5", AmountMinor: 100, Sent: at(9000), Done: at(9020), Status: 201, Answer: Acked},
		}}
	r.finish([]LedgerRow{{"p1", 100}, {"p5", 100}})
	got := struct {
		Detection, Promotion, Promote, RTO, LostWindow time.Duration
		Lost                                           int
		Errors                                         map[string]int
		Passed                                         bool
	}{r.Detection, r.Promotion, r.Promote, r.RTO, r.LostWindow, r.LostCount, r.ClientErrors, r.Passed()}
	want := struct {
		Detection, Promotion, Promote, RTO, LostWindow time.Duration
		Lost                                           int
		Errors                                         map[string]int
		Passed                                         bool
	}{3 * time.Second, 3600 * time.Millisecond, 500 * time.Millisecond, 4020 * time.Millisecond, 10 * time.Millisecond, 1,
		map[string]int{"http 502": 1, "http 503": 1}, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("drill figures (-want +got):\n%s", diff)
	}
	// A loss older than the rpo lag at the fault fails the check.
	r.RPOLagAtFault = 5 * time.Millisecond
	r.Checks = r.checks()
	if r.Passed() {
		t.Errorf("Passed() = true with a loss window of 10ms over an rpo lag of 5ms")
	}
	var text, svg strings.Builder
	if err := r.Render(&text); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"detection:   3s", "rto:         4.02s", "rpo:         1 acknowledged payments lost, window 10ms", "FAIL rpo within the replication lag at the fault",
		"estimated:   writes of about the last 3.64s may be lost", "PASS loss within the failover's estimate: 1 lost, window 10ms <= estimated 3.64s"} {
		if !strings.Contains(text.String(), s) {
			t.Errorf("Render() lacks %q:\n%s", s, text.String())
		}
	}
	if err := r.WriteTimeline(&svg); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"<svg ", "fault us-east-1", "promoted", "recovered us-west-2", "1 acknowledged, then lost", "</svg>"} {
		if !strings.Contains(svg.String(), s) {
			t.Errorf("WriteTimeline() lacks %q", s)
		}
	}
}

func TestLossEstimateCheck(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// p2 and p3 are acknowledged at 4700 and 4900 and lost; the fault is at 5000.
	attempts := []Attempt{
		{PaymentID: "p1", AmountMinor: 100, Sent: at(4000), Done: at(4100), Status: 201, Answer: Acked},
		{PaymentID: "p2", AmountMinor: 100, Sent: at(4600), Done: at(4700), Status: 201, Answer: Acked},
		{PaymentID: "p3", AmountMinor: 100, Sent: at(4800), Done: at(4900), Status: 201, Answer: Acked},
		{PaymentID: "p4", AmountMinor: 100, Sent: at(9000), Done: at(9100), Status: 201, Answer: Acked},
	}
	tests := []struct {
		name     string
		estimate *dr.LossEstimate
		rows     []LedgerRow
		cut      bool
		wantPass bool
		want     string
	}{
		{"bounds the loss", &dr.LossEstimate{MayLoseData: true, Window: 400 * time.Millisecond, Since: at(4600)},
			[]LedgerRow{{"p1", 100}, {"p4", 100}}, true, true, "2 lost, window 300ms <= estimated 400ms"},
		{"loss before the last write said held", &dr.LossEstimate{MayLoseData: true, Window: time.Second, Since: at(4800)},
			[]LedgerRow{{"p1", 100}, {"p4", 100}}, true, false, "1 lost payments acknowledged before 00:00:04.800"},
		{"window too short", &dr.LossEstimate{MayLoseData: true, Window: 200 * time.Millisecond},
			[]LedgerRow{{"p1", 100}, {"p4", 100}}, true, false, "window 300ms > estimated 200ms"},
		{"promised no loss", &dr.LossEstimate{Basis: "streaming"},
			[]LedgerRow{{"p1", 100}, {"p4", 100}}, false, false, "2 lost, but the estimate said: no data loss expected"},
		{"no estimate", nil, []LedgerRow{{"p1", 100}, {"p4", 100}}, false, false, "the failover printed no estimate"},
		{"cut but nothing lost", &dr.LossEstimate{MayLoseData: true, Window: time.Second, Since: at(4600)},
			[]LedgerRow{{"p1", 100}, {"p2", 100}, {"p3", 100}, {"p4", 100}}, true, true, "0 lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Fault: FaultKillDB, Start: t0, End: at(10000), FaultAt: at(5000), MaxRTO: 30 * time.Second,
				RPOLagAtFault: time.Second, LossEstimate: tt.estimate, Attempts: append([]Attempt(nil), attempts...)}
			if tt.cut {
				r.ReplicationCutAt = at(3000)
			}
			r.finish(tt.rows)
			var got *Check
			for i, c := range r.Checks {
				if c.Name == "loss within the failover's estimate" {
					got = &r.Checks[i]
				}
			}
			if got == nil {
				t.Fatalf("no estimate check in %+v", r.Checks)
			}
			if got.Pass != tt.wantPass || !strings.Contains(got.Detail, tt.want) {
				t.Errorf("estimate check = %v %q, want %v containing %q", got.Pass, got.Detail, tt.wantPass, tt.want)
			}
		})
	}
}

// TestSplitBrainFailsTheDrill: payments acknowledged after the fault and then
// lost are what an old writer still taking writes leaves behind. They fail a
// check of their own, count in the loss window, and are reported as
// lost_after_fault (issue 11: a drill with 14 such losses passed both RPO
// checks, the window clamped to 0).
func TestSplitBrainFailsTheDrill(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &Report{Fault: FaultKillDB, From: "us-east-1", To: "us-west-2", Start: t0, End: at(10000), MaxRTO: 30 * time.Second,
		FaultAt: at(5000), DetectedAt: at(7000), PromoteStarted: at(7100), PromotedAt: at(7500), RPOLagAtFault: 40 * time.Millisecond,
		LossEstimate: &dr.LossEstimate{MayLoseData: true, Window: 3 * time.Second, Since: at(4990)},
		Attempts: []Attempt{
			{PaymentID: "p1", AmountMinor: 100, Sent: at(4900), Done: at(4950), Status: 201, Answer: Acked},
			{PaymentID: "p2", AmountMinor: 100, Sent: at(5500), Done: at(5600), Status: 201, Answer: Acked}, // the old writer, after the fault
			{PaymentID: "p3", AmountMinor: 100, Sent: at(6200), Done: at(6300), Status: 201, Answer: Acked}, // likewise
			{PaymentID: "p4", AmountMinor: 100, Sent: at(9000), Done: at(9020), Status: 201, Answer: Acked},
		}}
	r.finish([]LedgerRow{{"p1", 100}, {"p4", 100}})
	if r.LostAfterFault != 2 {
		t.Errorf("LostAfterFault = %d, want 2 (p2, p3)", r.LostAfterFault)
	}
	if want := 700 * time.Millisecond; r.LostWindow != want {
		t.Errorf("LostWindow = %s, want %s: from the earliest lost acknowledgement (p2, 5.6s) to the latest (p3, 6.3s)", r.LostWindow, want)
	}
	failed := map[string]bool{}
	for _, c := range r.Checks {
		if !c.Pass {
			failed[c.Name] = true
		}
	}
	for _, name := range []string{"no payment acknowledged after the fault is lost"} {
		if !failed[name] {
			t.Errorf("check %q passed (or is missing) with 2 payments acknowledged after the fault and lost; checks: %+v", name, r.Checks)
		}
	}
	if r.Passed() {
		t.Error("Passed() = true for a split brain")
	}
	// A payment in flight at the fault (sent 10 ms before it, answered 12
	// ms after) may have committed before the fault: it is lost within the
	// window up to the fault, not a split brain.
	inflight := &Report{Fault: FaultKillDB, From: "us-east-1", To: "us-west-2", Start: t0, End: at(10000), MaxRTO: 30 * time.Second,
		FaultAt: at(5000), RPOLagAtFault: 40 * time.Millisecond,
		Attempts: []Attempt{
			{PaymentID: "q1", AmountMinor: 100, Sent: at(4970), Done: at(4980), Status: 201, Answer: Acked},
			{PaymentID: "q2", AmountMinor: 100, Sent: at(4990), Done: at(5012), Status: 201, Answer: Acked},
		}}
	inflight.finish(nil)
	if inflight.LostAfterFault != 0 || inflight.LostWindow != 20*time.Millisecond {
		t.Errorf("in flight at the fault: LostAfterFault %d, LostWindow %s; want 0 and 20ms (from q1's answer to the fault)", inflight.LostAfterFault, inflight.LostWindow)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"lost_after_fault":2`) {
		t.Errorf("JSON report lacks \"lost_after_fault\":2: %v", err)
	}
}

// TestLossChecksFollowTheBound: with no bound enforced, any payment lost
// after the fault fails the drill; with a bound, losses after the fault are
// allowed inside it (a cut-off writer cannot know it is cut off) and fail
// beyond it; with RPO 0 any loss fails; and a payment lost after the fence
// fails whatever the bound.
func TestLossChecksFollowTheBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	report := func(bound time.Duration, zero bool, fenced time.Time, lostSent ...int) *Report {
		r := &Report{Fault: FaultCutRegion, From: "us-east-1", To: "us-west-2", Start: t0, End: at(20000), MaxRTO: 30 * time.Second,
			FaultAt: at(5000), DetectedAt: at(7000), PromoteStarted: at(9000), PromotedAt: at(9500), FencedAt: fenced,
			RPOBound: bound, RPOZero: zero, LossEstimate: &dr.LossEstimate{MayLoseData: true, Window: 10 * time.Second, Since: at(4900)}}
		r.Attempts = append(r.Attempts, Attempt{PaymentID: "ok", AmountMinor: 100, Sent: at(4000), Done: at(4010), Status: 201, Answer: Acked})
		for i, ms := range lostSent {
			r.Attempts = append(r.Attempts, Attempt{PaymentID: fmt.Sprintf("l%d", i), AmountMinor: 100, Sent: at(ms), Done: at(ms + 10), Status: 201, Answer: Acked})
		}
		r.finish([]LedgerRow{{"ok", 100}})
		return r
	}
	for _, tc := range []struct {
		name   string
		r      *Report
		failed []string
	}{
		{"no bound, lost after the fault", report(0, false, at(8000), 5500), []string{"no payment acknowledged after the fault is lost"}},
		{"bound 2s, lost within it", report(2*time.Second, false, at(8000), 5100, 6500), nil},
		// Replication cut long before the fault: the writer acknowledged
		// for 1.4 s, then its bound stopped it; the window to the fault
		// (3 s) counts the time it spent blocked, the span does not.
		{"bound 2s, cut long before the fault", func() *Report {
			r := report(2*time.Second, false, at(8000), 2000, 3400)
			r.RPOLagAtFault, r.LossEstimate.Since = 3100*time.Millisecond, at(1900)
			r.finish([]LedgerRow{{"ok", 100}})
			return r
		}(), nil},
		{"bound 2s, lost beyond it", report(2*time.Second, false, at(8000), 5100, 7500), []string{"loss within the enforced rpo bound"}},
		{"bound 2s, lost after the fence", report(2*time.Second, false, at(6000), 5100, 6500), []string{"no payment acknowledged after the fence is lost"}},
		{"rpo 0, lost", report(0, true, at(8000), 5100), []string{"rpo 0: no acknowledged payment is lost"}},
		{"rpo 0, nothing lost", report(0, true, at(8000)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, c := range tc.r.Checks {
				if !c.Pass {
					got = append(got, c.Name)
				}
			}
			if diff := cmp.Diff(tc.failed, got); diff != "" {
				t.Errorf("failed checks (-want +got):\n%s\nchecks: %+v", diff, tc.r.Checks)
			}
		})
	}
}

// The span of lost history is measured between commits (the created_at the
// processor stamps before its insert), not acknowledgements: an answer
// held up after its commit (a slow cache write or event) must not stretch
// the span past the bound the writer kept, nor one answered fast shrink it.
func TestLostSpanIsMeasuredBetweenCommits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &Report{Fault: FaultKillDB, From: "us-east-1", To: "us-west-2", Start: t0, End: at(10000), MaxRTO: 30 * time.Second,
		FaultAt: at(5000), RPOLagAtFault: 3 * time.Second, RPOBound: 2 * time.Second,
		Attempts: []Attempt{
			// Committed at 3.0 s, answered at once.
			{PaymentID: "p1", AmountMinor: 100, Sent: at(2990), CreatedAt: at(3000), Done: at(3010), Status: 201, Answer: Acked},
			// Committed at 4.9 s, answered 400 ms later.
			{PaymentID: "p2", AmountMinor: 100, Sent: at(4890), CreatedAt: at(4900), Done: at(5300), Status: 201, Answer: Acked},
			{PaymentID: "p3", AmountMinor: 100, Sent: at(6000), CreatedAt: at(6010), Done: at(6020), Status: 201, Answer: Acked},
		}}
	r.finish([]LedgerRow{{"p3", 100}})
	if want := 1900 * time.Millisecond; r.LostSpan != want {
		t.Errorf("LostSpan = %s, want %s (created_at 3.0 s to 4.9 s; the acknowledgements span 2.29 s)", r.LostSpan, want)
	}
	for _, c := range r.Checks {
		if c.Name == "loss within the enforced rpo bound" && !c.Pass {
			t.Errorf("check %q failed: %s", c.Name, c.Detail)
		}
	}
	// Without created_at the acknowledgements are all there is.
	for i := range r.Attempts {
		r.Attempts[i].CreatedAt = time.Time{}
	}
	r.finish([]LedgerRow{{"p3", 100}})
	if want := 2290 * time.Millisecond; r.LostSpan != want {
		t.Errorf("LostSpan without created_at = %s, want %s (from p1's to p2's acknowledgement)", r.LostSpan, want)
	}
}
