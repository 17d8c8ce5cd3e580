package env

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRPOEnforced(t *testing.T) {
	var none *RPO
	if none.Enforces(SlotPrimary) {
		t.Error("nil RPO Enforces(primary) = true, want false")
	}
	r := &RPO{Bound: Duration(5 * time.Minute)}
	r.SetEnforced(SlotSecondary, true)
	r.SetEnforced(SlotPrimary, true)
	r.SetEnforced(SlotPrimary, true)
	if diff := cmp.Diff([]Slot{SlotPrimary, SlotSecondary}, r.Enforced); diff != "" {
		t.Errorf("Enforced mismatch (-want +got):\n%s", diff)
	}
	r.SetEnforced(SlotPrimary, false)
	if r.Enforces(SlotPrimary) || !r.Enforces(SlotSecondary) {
		t.Errorf("after SetEnforced(primary, false): Enforced = %v, want [secondary]", r.Enforced)
	}
	// What paydr up writes, dr steps and the rpo guards read back.
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"bound":"5m0s","enforced":["secondary"]}`; string(b) != want {
		t.Errorf("json = %s, want %s", b, want)
	}
	var back RPO
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*r, back); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}
