package drill

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"paydr/internal/golden"

	"github.com/google/go-cmp/cmp"
)

func TestMatrixCases(t *testing.T) {
	got := MatrixCases([]string{FaultKillDB, FaultSwitchover}, 3*time.Second)
	want := []Case{{Fault: FaultKillDB}, {Fault: FaultKillDB, CutReplication: 3 * time.Second}, {Fault: FaultSwitchover}, {Fault: FaultSwitchover, CutReplication: 3 * time.Second}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MatrixCases (-want +got):\n%s", diff)
	}
	var names []string
	for _, c := range got {
		names = append(names, c.Name())
	}
	if want := "kill-db kill-db+cut switchover switchover+cut"; strings.Join(names, " ") != want {
		t.Errorf("names = %q, want %q", strings.Join(names, " "), want)
	}
}

// TestMatrixMarkdown renders a matrix of three drills (one passed, one
// refused as expected, one failed) to the golden table the README carries.
func TestMatrixMarkdown(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pass := &Report{Backend: "local", Fault: FaultKillDB, Start: t0, End: at(30000), MaxRTO: 30 * time.Second, FaultAt: at(5000),
		DetectedAt: at(7400), PromoteStarted: at(7600), PromotedAt: at(8100), RPOBound: 2 * time.Second,
		Attempts: []Attempt{{PaymentID: "a", AmountMinor: 100, Sent: at(1000), Done: at(1010), Status: 201, Answer: Acked},
			{PaymentID: "b", AmountMinor: 100, Sent: at(6000), Done: at(9000), Error: "timeout", Answer: Indeterminate},
			{PaymentID: "c", AmountMinor: 100, Sent: at(9500), Done: at(9600), Status: 201, Answer: Acked}}}
	pass.finish([]LedgerRow{{"a", 100}, {"c", 100}})
	refused := &Report{Backend: "local", Fault: FaultSwitchover, Start: t0, End: at(30000), MaxRTO: 30 * time.Second, FaultAt: at(5000),
		Refused:  "dr: switchover refused: standby not streaming",
		Attempts: []Attempt{{PaymentID: "d", AmountMinor: 100, Sent: at(1000), Done: at(1010), Status: 201, Answer: Acked}}}
	refused.finish([]LedgerRow{{"d", 100}})
	failed := &Report{Backend: "local", Fault: FaultPartitionName, Start: t0, End: at(30000), MaxRTO: 30 * time.Second, FaultAt: at(5000),
		DetectedAt: at(7000), PromotedAt: at(9000), PromoteStarted: at(8500),
		Attempts: []Attempt{{PaymentID: "e", AmountMinor: 100, Sent: at(6000), Done: at(6010), Status: 201, Answer: Acked},
			{PaymentID: "f", AmountMinor: 100, Sent: at(9500), Done: at(9600), Status: 201, Answer: Acked}}}
	failed.finish([]LedgerRow{{"f", 100}})
	m := &Matrix{Backend: "local", Start: t0, Rate: 5, Duration: 30 * time.Second, FaultAfter: 5 * time.Second, Rows: []MatrixRow{
		{Case: Case{Fault: FaultKillDB, CutReplication: 3 * time.Second}, Report: pass, Pass: pass.Passed()},
		{Case: Case{Fault: FaultSwitchover, CutReplication: 3 * time.Second}, Report: refused, Pass: refused.Passed()},
		{Case: Case{Fault: FaultPartitionName}, Report: failed, Pass: failed.Passed()},
		{Case: Case{Fault: FaultCutRegion}, Error: "drill: the pair is not healthy"},
	}}
	if !m.Rows[0].Pass || !m.Rows[1].Pass || m.Rows[2].Pass {
		t.Fatalf("rows pass = %v %v %v, want true true false; checks %+v / %+v / %+v", m.Rows[0].Pass, m.Rows[1].Pass, m.Rows[2].Pass, pass.Checks, refused.Checks, failed.Checks)
	}
	if m.Passed() {
		t.Error("Matrix.Passed() = true with a failed row")
	}
	var b bytes.Buffer
	if err := m.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/matrix.md", b.Bytes())
}

// FaultPartitionName spells the partition fault for the tests of this file,
// which do not depend on the environment offering it.
const FaultPartitionName = "partition"

func TestReplaceSection(t *testing.T) {
	const begin, end = "<!-- begin -->", "<!-- end -->"
	doc := "# t\n<!-- begin -->\nold\nlines\n<!-- end -->\nafter\n"
	got, err := ReplaceSection([]byte(doc), begin, end, []byte("new"))
	if want := "# t\n<!-- begin -->\nnew\n<!-- end -->\nafter\n"; err != nil || string(got) != want {
		t.Errorf("ReplaceSection = %q, %v; want %q", got, err, want)
	}
	for _, bad := range []string{"# no markers\n", "<!-- end -->\n<!-- begin -->\n", "<!-- begin -->\n"} {
		if _, err := ReplaceSection([]byte(bad), begin, end, []byte("x")); err == nil || !strings.Contains(err.Error(), begin) {
			t.Errorf("ReplaceSection(%q) error = %v, want one naming the markers", bad, err)
		}
	}
}
