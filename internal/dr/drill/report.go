package drill

import (
	"fmt"
	"io"
	"paydr/internal/dr"
	"sort"
	"strings"
	"time"
)

// Report is what a drill measured.
type Report struct {
	Backend  string        `json:"backend"`
	Fault    string        `json:"fault"`
	From     string        `json:"from"`
	To       string        `json:"to"`
	Rate     float64       `json:"rate_per_s"`
	Duration time.Duration `json:"duration_ns"`
	Prefix   string        `json:"prefix"`
	OpID     string        `json:"op_id,omitempty"`
	MaxRTO   time.Duration `json:"max_rto_ns"`

	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	FaultAt time.Time `json:"fault_at"`
	// DetectedAt is when the health checks reported the writer region
	// unhealthy (zero for a switchover).
	DetectedAt time.Time `json:"detected_at,omitzero"`
	// PromoteStarted and PromotedAt bound the promotion step.
	PromoteStarted time.Time `json:"promote_started,omitzero"`
	PromotedAt     time.Time `json:"promoted_at,omitzero"`
	// FirstErrorAt is the first failed request sent after the fault;
	// RecoveredAt is when the first payment sent after it succeeded.
	FirstErrorAt time.Time `json:"first_error_at,omitzero"`
	RecoveredAt  time.Time `json:"recovered_at,omitzero"`

	// Detection, Promotion and RTO are measured from the fault; Promotion
	// is when the new writer took writes. Promote is how long the
	// promotion step itself took.
	Detection time.Duration `json:"detection_ns"`
	Promotion time.Duration `json:"promotion_ns"`
	Promote   time.Duration `json:"promote_ns"`
	RTO       time.Duration `json:"rto_ns"`
	// Recovered is false when no payment succeeded after the fault before
	// the drill ended.
	Recovered bool `json:"recovered"`

	// LagAtFault is the replication observed just before the fault;
	// RPOLagAtFault is the fault time minus the commit time of the last
	// transaction the standby replayed: the most recent history a
	// failover at the fault could lose.
	LagAtFault    dr.Replication `json:"lag_at_fault"`
	RPOLagAtFault time.Duration  `json:"rpo_lag_at_fault_ns"`
	LastReplayed  time.Time      `json:"last_replayed,omitzero"`

	// LostCount and LostWindow are the RPO: acknowledged payments missing
	// from the new writer, and how far before the fault the earliest of
	// them was acknowledged.
	LostCount  int           `json:"rpo_lost_payments"`
	LostWindow time.Duration `json:"rpo_window_ns"`
	// LostSpan is from the earliest to the latest lost commit (each
	// payment's created_at, stamped just before its insert; its
	// acknowledgement when the answer had none): the span of history
	// lost, which an enforced bound on loss caps (LostWindow also counts
	// the time the writer spent blocked by it, and acknowledgements come
	// after the commit by the answer's way back).
	LostSpan time.Duration `json:"rpo_span_ns"`
	// LostAfterFault counts lost payments sent (so acknowledged and
	// committed) after the fault: the mark of an old writer that still took
	// writes (split brain).
	LostAfterFault int `json:"lost_after_fault"`
	// FencedAt is when the old writer's fence step succeeded (zero when it
	// did not run or failed); LostAfterFence counts lost payments sent
	// after it: a fence that did not hold.
	FencedAt       time.Time `json:"fenced_at,omitzero"`
	LostAfterFence int       `json:"lost_after_fence"`
	// RPOBound is the loss bound enforced on the old writer's commits when
	// the drill began (0: none); RPOZero is set when its commits waited for
	// the standby (synchronous: nothing acknowledged can be lost).
	RPOBound time.Duration `json:"rpo_bound_ns"`
	RPOZero  bool          `json:"rpo_zero,omitempty"`
	// Refused is the safety rule's refusal a drill expected and got (a
	// switchover while replication is cut).
	Refused string `json:"refused,omitempty"`
	// ReplicationCutAt is when the drill cut replication to the standby
	// (Options.CutReplication), zero when it did not.
	ReplicationCutAt time.Time `json:"replication_cut_at,omitzero"`
	// LossEstimate is what the failover's plan said it might lose, before
	// it acted.
	LossEstimate *dr.LossEstimate `json:"loss_estimate,omitempty"`

	Sent         int            `json:"sent"`
	Acked        int            `json:"acked"`
	ClientErrors map[string]int `json:"client_errors"`
	// InRegion is the client inside the isolated region of a partition
	// drill; its attempts are classified with the others but left out of
	// Sent, Acked, ClientErrors and the RTO, which are the failover name's.
	InRegion *InRegionTraffic `json:"in_region,omitempty"`

	Classification Classification `json:"classification"`
	Checks         []Check        `json:"checks"`
	Events         []Event        `json:"events"`
	// Preserved says where the old writer's final state was kept.
	Preserved      string    `json:"preserved,omitempty"`
	OperationError string    `json:"operation_error,omitempty"`
	Notes          []string  `json:"notes,omitempty"`
	Attempts       []Attempt `json:"attempts"`

	// lostBeforeFault is how far before the fault the earliest lost
	// payment was acknowledged: the part of the loss the replication lag
	// at the fault accounts for.
	lostBeforeFault time.Duration
}

// Check is one target a drill asserts.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// Passed reports whether every check passed.
func (r *Report) Passed() bool {
	for _, c := range r.Checks {
		if !c.Pass {
			return false
		}
	}
	return len(r.Checks) > 0
}

// finish classifies the attempts against rows and derives the figures and
// checks.
func (r *Report) finish(rows []LedgerRow) {
	sort.Slice(r.Attempts, func(i, j int) bool { return r.Attempts[i].Sent.Before(r.Attempts[j].Sent) })
	r.Classification = Classify(r.Attempts, rows)
	r.summarizeInRegion()
	traffic := r.trafficAttempts()
	r.ClientErrors = map[string]int{}
	r.Sent = len(traffic)
	for _, a := range traffic {
		if a.Answer == Acked {
			r.Acked++
			continue
		}
		r.ClientErrors[errorKind(a)]++
	}
	for _, a := range traffic {
		if a.Sent.Before(r.FaultAt) {
			continue
		}
		if r.FirstErrorAt.IsZero() && a.Answer != Acked {
			r.FirstErrorAt = a.Sent
			continue
		}
		if !r.FirstErrorAt.IsZero() && a.Answer == Acked && a.Sent.After(r.FirstErrorAt) {
			if r.RecoveredAt.IsZero() || a.Done.Before(r.RecoveredAt) {
				r.RecoveredAt = a.Done
			}
		}
	}
	switch {
	case r.FirstErrorAt.IsZero():
		r.Recovered = true // clients never noticed
	case !r.RecoveredAt.IsZero():
		r.Recovered = true
		r.RTO = r.RecoveredAt.Sub(r.FaultAt)
		r.Events = append(r.Events, Event{Time: r.RecoveredAt, Kind: "recovered", Region: r.To, Detail: "first successful payment after the fault"})
	}
	r.Events = append(r.Events, Event{Time: r.FaultAt, Kind: "fault", Region: r.From, Detail: r.Fault})
	if !r.DetectedAt.IsZero() {
		r.Detection = r.DetectedAt.Sub(r.FaultAt)
		r.Events = append(r.Events, Event{Time: r.DetectedAt, Kind: "detected", Region: r.From, Detail: "health check failed"})
	}
	if !r.FencedAt.IsZero() {
		r.Events = append(r.Events, Event{Time: r.FencedAt, Kind: "fenced", Region: r.From, Detail: "old writer fenced"})
	}
	if !r.PromotedAt.IsZero() {
		r.Promotion = r.PromotedAt.Sub(r.FaultAt)
		r.Promote = r.PromotedAt.Sub(r.PromoteStarted)
		r.Events = append(r.Events, Event{Time: r.PromotedAt, Kind: "promoted", Region: r.To})
	}
	// The loss window spans every lost acknowledgement: from the earliest
	// to the fault, or further, to the latest lost payment sent after the
	// fault. Such a payment was committed after the fault, by an old writer
	// still taking writes (a split brain): it is counted, never clamped
	// away. A payment in flight at the fault (sent before, answered after)
	// may have committed just before it, and counts up to the fault.
	var earliest, latest, firstCommit, lastCommit time.Time
	r.LostAfterFault, r.LostAfterFence = 0, 0
	for _, a := range r.lostAttempts() {
		if c := a.committed(); firstCommit.IsZero() || c.Before(firstCommit) {
			firstCommit = c
		}
		if c := a.committed(); c.After(lastCommit) {
			lastCommit = c
		}
		if earliest.IsZero() || a.Done.Before(earliest) {
			earliest = a.Done
		}
		if a.Sent.After(r.FaultAt) {
			r.LostAfterFault++
			if a.Done.After(latest) {
				latest = a.Done
			}
		}
		if !r.FencedAt.IsZero() && a.Sent.After(r.FencedAt) {
			r.LostAfterFence++
		}
	}
	r.lostBeforeFault = 0
	if !earliest.IsZero() && earliest.Before(r.FaultAt) {
		r.lostBeforeFault = r.FaultAt.Sub(earliest)
	}
	r.LostCount = len(r.Classification.Lost)
	if !earliest.IsZero() {
		end := r.FaultAt
		if latest.After(end) {
			end = latest
		}
		r.LostWindow = max(0, end.Sub(earliest))
		r.LostSpan = lastCommit.Sub(firstCommit)
	}
	sort.SliceStable(r.Events, func(i, j int) bool { return r.Events[i].Time.Before(r.Events[j].Time) })
	r.Checks = r.checks()
}

// lostAttempts returns the attempts classified lost: acknowledged, and
// missing from the new writer's ledger.
func (r *Report) lostAttempts() []Attempt {
	lost := make(map[string]bool, len(r.Classification.Lost))
	for _, id := range r.Classification.Lost {
		lost[id] = true
	}
	var out []Attempt
	for _, a := range r.Attempts {
		if lost[a.PaymentID] {
			out = append(out, a)
		}
	}
	return out
}

func errorKind(a Attempt) string {
	switch {
	case a.Status != 0:
		return fmt.Sprintf("http %d", a.Status)
	case a.Error == "timeout":
		return "timeout"
	case strings.HasPrefix(a.Error, "not sent"):
		return "not sent"
	default:
		return "connection error"
	}
}

func (r *Report) checks() []Check {
	c := r.Classification
	out := []Check{
		{Name: "no duplicates", Pass: c.Counts[ClassDuplicated] == 0, Detail: fmt.Sprintf("%d duplicated", c.Counts[ClassDuplicated])},
		{Name: "no unexpected payments", Pass: c.Counts[ClassUnexpected] == 0, Detail: fmt.Sprintf("%d unexpected %v", c.Counts[ClassUnexpected], c.Unexpected)},
		{Name: "conservation", Pass: c.Conserved, Detail: fmt.Sprintf("ledger %d = acknowledged %d - lost %d + indeterminate %d", c.LedgerTotal, c.AckedTotal, c.LostTotal, c.IndeterminateTotal)},
	}
	if r.Refused != "" {
		out = append(out, Check{Name: "switchover refused while replication is cut", Pass: true, Detail: r.Refused})
	} else {
		out = append(out, Check{Name: "operation completed", Pass: r.OperationError == "", Detail: orNone(r.OperationError)})
	}
	if r.Refused == "" {
		out = append(out, Check{Name: "recovered", Pass: r.Recovered, Detail: fmt.Sprintf("rto %s", r.RTO.Round(time.Millisecond))})
	}
	// A refused switchover moves nothing: while replication stays cut, a
	// writer held to a bound on loss stops acknowledging (as Aurora does
	// under rds.global_db_rpo), so clients may see errors to the end; the
	// checks that matter are the refusal and that nothing is lost.
	out = append(out,
		// A payment acknowledged after the fence and lost means the fence
		// did not stop the old writer: a split brain, whatever the bound.
		Check{Name: "no payment acknowledged after the fence is lost", Pass: r.LostAfterFence == 0,
			Detail: fmt.Sprintf("%d lost after the fence%s", r.LostAfterFence, fenceWhen(r))},
	)
	switch {
	case r.RPOZero:
		out = append(out, Check{Name: "rpo 0: no acknowledged payment is lost", Pass: r.LostCount == 0,
			Detail: fmt.Sprintf("%d lost (%d after the fault); commits waited for the standby", r.LostCount, r.LostAfterFault)})
	case r.RPOBound > 0:
		// A writer cut off from its standby cannot know it is: it goes on
		// acknowledging until the bound stops it. Payments lost after the
		// fault are allowed only inside the bound.
		out = append(out, Check{Name: "loss within the enforced rpo bound", Pass: r.LostSpan <= r.RPOBound,
			Detail: fmt.Sprintf("%d lost (%d after the fault), committed over %s <= bound %s", r.LostCount, r.LostAfterFault, r.LostSpan.Round(time.Millisecond), r.RPOBound)})
	default:
		out = append(out, Check{Name: "no payment acknowledged after the fault is lost", Pass: r.LostAfterFault == 0,
			Detail: fmt.Sprintf("%d lost after the fault (an old writer still taking writes; no rpo bound enforced)", r.LostAfterFault)})
	}
	if r.Fault == FaultSwitchover {
		out = append(out, Check{Name: "switchover rpo is 0 payments", Pass: r.LostCount == 0, Detail: fmt.Sprintf("%d lost", r.LostCount)})
	} else {
		out = append(out,
			Check{Name: "rto under target", Pass: r.Recovered && r.RTO < r.MaxRTO, Detail: fmt.Sprintf("%s < %s", r.RTO.Round(time.Millisecond), r.MaxRTO)},
			Check{Name: "rpo within the replication lag at the fault", Pass: r.lostBeforeFault <= r.RPOLagAtFault,
				Detail: fmt.Sprintf("%d lost, %s of them before the fault <= rpo lag at fault %s", r.LostCount, r.lostBeforeFault.Round(time.Microsecond), r.RPOLagAtFault.Round(time.Microsecond))},
		)
		if r.LostCount > 0 || !r.ReplicationCutAt.IsZero() {
			out = append(out, r.estimateCheck())
		}
	}
	return out
}

func fenceWhen(r *Report) string {
	if r.FencedAt.IsZero() {
		return " (no fence ran)"
	}
	return fmt.Sprintf(" (fenced at +%s)", r.FencedAt.Sub(r.Start).Round(time.Millisecond))
}

// estimateCheck checks the failover's loss estimate against the loss: it
// must have warned of loss, and every lost payment must have been
// acknowledged after the last write it said the standby held, and within
// the window it gave.
func (r *Report) estimateCheck() Check {
	c := Check{Name: "loss within the failover's estimate"}
	e := r.LossEstimate
	switch {
	case e == nil:
		c.Detail = "the failover printed no estimate"
		return c
	case !e.MayLoseData && r.LostCount > 0:
		c.Detail = fmt.Sprintf("%d lost, but the estimate said: %s", r.LostCount, e)
		return c
	case !e.MayLoseData:
		c.Pass, c.Detail = true, "no loss expected, none found"
		return c
	}
	var before []string
	for _, a := range r.lostAttempts() {
		if !e.Since.IsZero() && a.Done.Before(e.Since) {
			before = append(before, a.PaymentID)
		}
	}
	switch {
	case len(before) > 0:
		c.Detail = fmt.Sprintf("%d lost payments acknowledged before %s, the last write the standby was said to hold: %v",
			len(before), e.Since.UTC().Format("15:04:05.000"), before)
	case r.LostWindow > e.Window && e.Unbounded:
		c.Pass = true
		c.Detail = fmt.Sprintf("%d lost, window %s: the estimate gave %s as a lower bound, with no upper bound", r.LostCount, r.LostWindow.Round(time.Millisecond), e.Window.Round(time.Millisecond))
	case r.LostWindow > e.Window:
		c.Detail = fmt.Sprintf("%d lost, window %s > estimated %s", r.LostCount, r.LostWindow.Round(time.Millisecond), e.Window.Round(time.Millisecond))
	default:
		c.Pass = true
		c.Detail = fmt.Sprintf("%d lost, window %s <= estimated %s, all after %s", r.LostCount, r.LostWindow.Round(time.Millisecond),
			e.Window.Round(time.Millisecond), e.Since.UTC().Format("15:04:05.000"))
	}
	return c
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// Render writes the report as text.
func (r *Report) Render(w io.Writer) error {
	var b strings.Builder
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	fmt.Fprintf(&b, "drill %s: %s on %s (writer %s -> %s), %s backend\n", r.Prefix, r.Fault, r.From, r.From, r.To, r.Backend)
	fmt.Fprintf(&b, "traffic:     %d payments sent at %.0f/s over %s, %d acknowledged\n", r.Sent, r.Rate, ms(r.End.Sub(r.Start)), r.Acked)
	r.renderInRegion(&b)
	if !r.ReplicationCutAt.IsZero() {
		fmt.Fprintf(&b, "cut:         replication to %s at +%s, %s before the fault\n", r.To, ms(r.ReplicationCutAt.Sub(r.Start)), ms(r.FaultAt.Sub(r.ReplicationCutAt)))
	}
	fmt.Fprintf(&b, "fault at:    %s (+%s)\n", r.FaultAt.UTC().Format("15:04:05.000"), ms(r.FaultAt.Sub(r.Start)))
	if !r.DetectedAt.IsZero() {
		fmt.Fprintf(&b, "detection:   %s\n", ms(r.Detection))
	}
	if !r.PromotedAt.IsZero() {
		fmt.Fprintf(&b, "promotion:   %s after the fault (the promote step took %s)\n", ms(r.Promotion), ms(r.Promote))
	}
	if r.Recovered {
		fmt.Fprintf(&b, "rto:         %s (fault to first successful payment after)\n", ms(r.RTO))
	} else {
		b.WriteString("rto:         not recovered before the drill ended\n")
	}
	fmt.Fprintf(&b, "rpo:         %d acknowledged payments lost, window %s (committed over %s)\n", r.LostCount, r.LostWindow.Round(time.Microsecond), r.LostSpan.Round(time.Microsecond))
	switch {
	case r.RPOZero:
		b.WriteString("rpo bound:   0 (commits waited for the standby)\n")
	case r.RPOBound > 0:
		fmt.Fprintf(&b, "rpo bound:   %s enforced on %s\n", r.RPOBound, r.From)
	}
	if r.LossEstimate != nil {
		fmt.Fprintf(&b, "estimated:   %s\n", r.LossEstimate)
	}
	fmt.Fprintf(&b, "lag:         at the fault replay lag %s, %d bytes behind; rpo lag %s\n",
		r.LagAtFault.ReplayLag.Round(time.Microsecond), r.LagAtFault.LagBytes, r.RPOLagAtFault.Round(time.Microsecond))
	kinds := make([]string, 0, len(r.ClientErrors))
	for k := range r.ClientErrors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	errs := make([]string, 0, len(kinds))
	total := 0
	for _, k := range kinds {
		errs = append(errs, fmt.Sprintf("%s: %d", k, r.ClientErrors[k]))
		total += r.ClientErrors[k]
	}
	fmt.Fprintf(&b, "errors:      %d seen by clients (%s)\n", total, strings.Join(errs, ", "))
	c := r.Classification
	fmt.Fprintf(&b, "payments:    ok %d, lost %d, duplicated %d, indeterminate %d, unexpected %d, failed %d\n",
		c.Counts[ClassOK], c.Counts[ClassLost], c.Counts[ClassDuplicated], c.Counts[ClassIndeterminate], c.Counts[ClassUnexpected], c.Counts[ClassFailed])
	if r.Preserved != "" {
		fmt.Fprintf(&b, "preserved:   %s\n", r.Preserved)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note:        %s\n", n)
	}
	b.WriteString("checks:\n")
	for _, ch := range r.Checks {
		mark := "PASS"
		if !ch.Pass {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", mark, ch.Name, ch.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
