package topology

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func complete() Topology {
	side := func(region, slot string) Side {
		return Side{Region: region, ClusterID: "payment-cluster-" + slot + "-dev", FunctionName: "payment-processor-dev",
			APIEndpoint: "https://" + region + ".api.test", ClusterParameterGroup: "payment-cluster-" + slot + "-dev-1"}
	}
	return Topology{Environment: "dev", GlobalClusterID: "payment-global-dev", ZoneID: "Z1", FailoverName: "api.pay.test",
		RPOBoundSeconds: 300, Primary: side("us-east-1", "primary"), Secondary: side("us-west-2", "secondary")}
}

func TestParseRoundTrip(t *testing.T) {
	want := complete()
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(string(b))
	if err != nil {
		t.Fatalf("Parse(%s) = %v", b, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(Marshal(t)) (-want +got):\n%s", diff)
	}
	if got.RPOBound() != 5*time.Minute {
		t.Errorf("RPOBound() = %s, want 5m0s", got.RPOBound())
	}
}

func TestValidateBound(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Topology)
		want   string // "" when valid
	}{
		{"complete", func(*Topology) {}, ""},
		{"written before the bound: no bound, no groups", func(t *Topology) {
			t.RPOBoundSeconds, t.Primary.ClusterParameterGroup, t.Secondary.ClusterParameterGroup = 0, "", ""
		}, ""},
		{"a bound without the groups it is set in", func(t *Topology) { t.Secondary.ClusterParameterGroup = "" }, "topology: missing secondary.cluster_parameter_group"},
		{"a negative bound", func(t *Topology) { t.RPOBoundSeconds = -1 }, "topology: rpo_bound_seconds is -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := complete()
			tt.change(&topo)
			err := Validate(topo)
			if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
