package awsdr

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/dr"
)

// aliasDNS answers as Route 53 does for a public domain's failover alias
// records: the name has no CNAME and answers with the addresses of the
// healthy region's custom domain target (some of them: answers rotate).
type aliasDNS struct {
	name   string
	answer []string            // the failover name's addresses
	hosts  map[string][]string // each target's addresses
}

func (d aliasDNS) lookupCNAME(_ context.Context, host string) (string, error) {
	host = canonicalHost(host)
	if host == d.name || d.hosts[host] != nil {
		return host + ".", nil
	}
	return "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (d aliasDNS) lookupHost(_ context.Context, host string) ([]string, error) {
	host = canonicalHost(host)
	if host == d.name {
		return d.answer, nil
	}
	if a, ok := d.hosts[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// aliasBackend is a backend of a public-domain topology: each side's
// record_target is its custom domain's regional target.
func aliasBackend(dns aliasDNS) *Backend {
	side := func(region, slot, target string) RegionTopology {
		return RegionTopology{Region: region, ClusterID: "payment-cluster-" + slot + "-test", FunctionName: "payment-processor-test",
			APIEndpoint: "https://" + slot + ".execute-api." + region + ".amazonaws.com", RecordTarget: target}
	}
	topo := Topology{Environment: "test", GlobalClusterID: "payment-global-test", ZoneID: "Z0123456789ABC", FailoverName: dns.name,
		Primary:   side("us-east-1", "primary", "d-primary.execute-api.us-east-1.amazonaws.com"),
		Secondary: side("us-west-2", "secondary", "d-secondary.execute-api.us-west-2.amazonaws.com")}
	return &Backend{topo: topo, Poll: 10 * time.Second, DataPlane: DataPlane{LookupCNAME: dns.lookupCNAME, LookupHost: dns.lookupHost}}
}

func TestTrafficThroughAlias(t *testing.T) {
	hosts := map[string][]string{
		"d-primary.execute-api.us-east-1.amazonaws.com":   {"198.51.100.1", "198.51.100.2", "198.51.100.3"},
		"d-secondary.execute-api.us-west-2.amazonaws.com": {"203.0.113.1", "203.0.113.2", "203.0.113.3"},
	}
	tests := []struct {
		name       string
		answer     []string
		wantRegion string
		wantHost   string
		wantErr    string
	}{
		{"primary healthy", []string{"198.51.100.2", "198.51.100.3"}, "us-east-1", "d-primary.execute-api.us-east-1.amazonaws.com", ""},
		{"failed over", []string{"203.0.113.3"}, "us-west-2", "d-secondary.execute-api.us-west-2.amazonaws.com", ""},
		{"neither region's addresses", []string{"192.0.2.9"}, "", "192.0.2.9",
			"api.pay.acme-corp.io answers 192.0.2.9, addresses of neither region's target (us-east-1's d-primary.execute-api.us-east-1.amazonaws.com: 198.51.100.1 198.51.100.2 198.51.100.3; us-west-2's d-secondary.execute-api.us-west-2.amazonaws.com: 203.0.113.1 203.0.113.2 203.0.113.3)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := aliasBackend(aliasDNS{name: "api.pay.acme-corp.io", answer: tt.answer, hosts: hosts})
			got, err := b.traffic(context.Background())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("traffic() error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("traffic() error = %v", err)
			}
			if got.region != tt.wantRegion || got.host != tt.wantHost {
				t.Errorf("traffic() = %s (%s), want %s (%s)", got.host, got.region, tt.wantHost, tt.wantRegion)
			}
		})
	}
}

// TestAliasDryRunCalls: with record targets in the topology, the dry run
// says the failover name is an alias, read by its addresses.
func TestAliasDryRunCalls(t *testing.T) {
	b := aliasBackend(aliasDNS{name: "api.pay.acme-corp.io"})
	got := append(b.Calls(dr.Step{Action: dr.ActionWaitTraffic, Region: "us-west-2"}), b.Calls(dr.Step{Action: dr.ActionVerify, Region: "us-west-2"})...)
	want := []string{
		"dns A api.pay.acme-corp.io (every 10s until it answers an address of d-secondary.execute-api.us-west-2.amazonaws.com, the custom domain target of us-west-2: the record is an alias)",
		"us-west-2 GET https://secondary.execute-api.us-west-2.amazonaws.com/health (until 200: its database takes writes)",
		"us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (payment-cluster-secondary-test must be the writer)",
		"dns A api.pay.acme-corp.io (must answer an address of d-secondary.execute-api.us-west-2.amazonaws.com, the custom domain target of us-west-2: the record is an alias)",
		`us-west-2 POST https://api.pay.acme-corp.io/payments {"payment_id":"dr-verify-<op-id>","amount":"0.01","currency":"USD"} (the same payment until acknowledged; us-west-2 must have committed it)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
}
