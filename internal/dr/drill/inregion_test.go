package drill

import (
	"strings"
	"testing"
	"time"
)

// The in-region client's payments are classified with the rest (a lost one
// sent after the fault fails the split-brain check) but neither count as
// the failover name's traffic nor end the outage the RTO measures.
func TestInRegionAttemptsAreClassifiedButNotTraffic(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &Report{Fault: FaultPartition, From: "us-east-1", To: "us-west-2", Prefix: "d", Start: t0, FaultAt: at(5), MaxRTO: 30 * time.Second,
		InRegion: &InRegionTraffic{Region: "us-east-1", URL: "http://10.1.2.2:8081"}}
	r.Attempts = []Attempt{
		{PaymentID: "d-000000", AmountMinor: 100, Sent: at(1), Done: at(1.1), Answer: Acked},
		{PaymentID: "d-000001", AmountMinor: 100, Sent: at(6), Done: at(9), Answer: Indeterminate, Error: "timeout"},
		{PaymentID: "d-000002", AmountMinor: 100, Sent: at(12), Done: at(12.1), Answer: Acked},
		{PaymentID: "d-inregion-000000", AmountMinor: 200, Sent: at(1), Done: at(1.1), Answer: Acked},
		{PaymentID: "d-inregion-000001", AmountMinor: 200, Sent: at(6), Done: at(6.1), Answer: Acked},
		{PaymentID: "d-inregion-000002", AmountMinor: 200, Sent: at(8), Done: at(8.1), Answer: Acked},
	}
	// The new writer has what replicated before the fault and what it took
	// after the failover; the isolated old writer's acknowledgements are gone.
	r.finish([]LedgerRow{{"d-000000", 100}, {"d-000002", 100}, {"d-inregion-000000", 200}})

	if r.Sent != 3 || r.Acked != 2 {
		t.Errorf("Sent, Acked = %d, %d; want 3, 2 (the failover name's traffic only)", r.Sent, r.Acked)
	}
	if want := 7100 * time.Millisecond; r.RTO != want {
		t.Errorf("RTO = %s, want %s: in-region acknowledgements do not end the outage", r.RTO, want)
	}
	want := InRegionTraffic{Region: "us-east-1", URL: "http://10.1.2.2:8081", Sent: 3, Acked: 3, AckedAfterFault: 2, Lost: 2, LostAfterFault: 2, LastAckAfterFault: at(8.1)}
	if *r.InRegion != want {
		t.Errorf("InRegion = %+v, want %+v", *r.InRegion, want)
	}
	if r.LostAfterFault != 2 {
		t.Errorf("LostAfterFault = %d, want 2", r.LostAfterFault)
	}
	for _, c := range r.Checks {
		if c.Name == "no payment acknowledged after the fault is lost" && c.Pass {
			t.Errorf("check %q passed with 2 in-region payments lost after the fault", c.Name)
		}
	}
	var b strings.Builder
	if err := r.Render(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "in-region:   3 payments sent from inside us-east-1") {
		t.Errorf("report has no in-region line:\n%s", b.String())
	}
}

func TestValidateAcceptsPartition(t *testing.T) {
	o := Options{Fault: FaultPartition}.withDefaults(time.Now())
	if err := o.Validate(); err != nil {
		t.Errorf("Validate(partition) = %v", err)
	}
}
