package awsdr

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/dr"
	"paydr/internal/topology"
)

// memGlobal is an in-memory global cluster shared by both regions' RDS
// clients (regionGlobal), recording "<region> <Action>" for each call. An
// operation under way completes after it has been described left more
// times.
type memGlobal struct {
	mu     sync.Mutex
	writer string
	op     *rdstypes.FailoverState
	left   int
	calls  []string
}

type regionGlobal struct {
	region string
	m      *memGlobal
}

func (g regionGlobal) DescribeGlobalClusters(ctx context.Context, in *rds.DescribeGlobalClustersInput, _ ...func(*rds.Options)) (*rds.DescribeGlobalClustersOutput, error) {
	m := g.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, g.region+" DescribeGlobalClusters")
	gc := rdstypes.GlobalCluster{GlobalClusterIdentifier: in.GlobalClusterIdentifier, Status: aws.String("available"), FailoverState: m.op,
		GlobalClusterMembers: []rdstypes.GlobalClusterMember{
			{DBClusterArn: aws.String(primaryARN), IsWriter: aws.Bool(m.writer == primaryARN)},
			{DBClusterArn: aws.String(secondaryARN), IsWriter: aws.Bool(m.writer == secondaryARN)},
		}}
	if m.op != nil {
		if m.left--; m.left < 0 {
			m.writer, m.op = aws.ToString(m.op.ToDbClusterArn), nil
		}
	}
	return &rds.DescribeGlobalClustersOutput{GlobalClusters: []rdstypes.GlobalCluster{gc}}, nil
}

func (g regionGlobal) start(action, to string, dataLoss bool) {
	m := g.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, g.region+" "+action)
	m.op = &rdstypes.FailoverState{Status: rdstypes.FailoverStatusPending, FromDbClusterArn: aws.String(m.writer), ToDbClusterArn: aws.String(to), IsDataLossAllowed: aws.Bool(dataLoss)}
	m.left = 1
}

func (g regionGlobal) SwitchoverGlobalCluster(ctx context.Context, in *rds.SwitchoverGlobalClusterInput, _ ...func(*rds.Options)) (*rds.SwitchoverGlobalClusterOutput, error) {
	g.start("SwitchoverGlobalCluster", aws.ToString(in.TargetDbClusterIdentifier), false)
	return &rds.SwitchoverGlobalClusterOutput{}, nil
}

func (g regionGlobal) FailoverGlobalCluster(ctx context.Context, in *rds.FailoverGlobalClusterInput, _ ...func(*rds.Options)) (*rds.FailoverGlobalClusterOutput, error) {
	g.start("FailoverGlobalCluster", aws.ToString(in.TargetDbClusterIdentifier), aws.ToBool(in.AllowDataLoss))
	return &rds.FailoverGlobalClusterOutput{}, nil
}

func testTopology() Topology {
	side := func(r, role string) RegionTopology {
		return RegionTopology{Region: r, ClusterID: "payment-cluster-" + role + "-test", FunctionName: "payment-processor-test", APIEndpoint: "https://" + r + ".api.test"}
	}
	return Topology{Environment: "test", GlobalClusterID: "payment-global-test", ZoneID: "Z1", FailoverName: failoverName,
		Primary: side("us-east-1", "primary"), Secondary: side("us-west-2", "secondary")}
}

// TestPromoteFollowsFailoverState checks the promote step against each
// FailoverState it may find, acting from either region: where the call
// goes, and that an operation under way toward the target is waited for,
// never started again.
func TestPromoteFollowsFailoverState(t *testing.T) {
	op := func(status rdstypes.FailoverStatus, from, to string) *rdstypes.FailoverState {
		return &rdstypes.FailoverState{Status: status, FromDbClusterArn: aws.String(from), ToDbClusterArn: aws.String(to), IsDataLossAllowed: aws.Bool(true)}
	}
	failover := dr.Step{Action: dr.ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: dr.ModeFailover}
	switchover := dr.Step{Action: dr.ActionPromote, Region: "us-west-2", Peer: "us-east-1", Mode: dr.ModeSwitchover}
	tests := []struct {
		name      string
		step      dr.Step
		writer    string // default primaryARN
		op        *rdstypes.FailoverState
		left      int
		wantCalls []string // other than describes
		wantErr   string
		wantRes   string
	}{
		{name: "failover: sent to the target's region", step: failover,
			wantCalls: []string{"us-west-2 FailoverGlobalCluster"}, wantRes: "FailoverGlobalCluster with AllowDataLoss in us-west-2"},
		{name: "switchover: sent to the writer's region", step: switchover,
			wantCalls: []string{"us-east-1 SwitchoverGlobalCluster"}, wantRes: "SwitchoverGlobalCluster in us-east-1"},
		{name: "pending toward the target: waits", step: failover, op: op(rdstypes.FailoverStatusPending, primaryARN, secondaryARN), left: 3,
			wantRes: "(pending) was already under way (not called again)"},
		{name: "failing-over toward the target: waits", step: failover, op: op(rdstypes.FailoverStatusFailingOver, primaryARN, secondaryARN), left: 1,
			wantRes: "(failing-over) was already under way"},
		{name: "switching-over toward the target: a failover waits for it", step: failover, op: op(rdstypes.FailoverStatus("switching-over"), primaryARN, secondaryARN), left: 1,
			wantRes: "(switching-over) was already under way"},
		{name: "toward the other cluster: refused", step: failover, writer: secondaryARN, op: op(rdstypes.FailoverStatusPending, secondaryARN, primaryARN), left: 1,
			wantErr: "has a failover from payment-cluster-secondary-test to payment-cluster-primary-test (pending) under way, not toward payment-cluster-secondary-test"},
		{name: "already the writer: nothing to do", step: failover, writer: secondaryARN, wantRes: "payment-cluster-secondary-test is already the writer"},
		{name: "cancelling: refused", step: switchover, op: op(rdstypes.FailoverStatusCancelling, primaryARN, secondaryARN), left: 1,
			wantErr: "is being cancelled; wait until paydr dr status shows none under way"},
	}
	for _, acting := range []string{"us-west-2", "us-east-1"} {
		for _, tt := range tests {
			t.Run(acting+"/"+tt.name, func(t *testing.T) {
				writer := tt.writer
				if writer == "" {
					writer = primaryARN
				}
				m := &memGlobal{writer: writer, op: tt.op, left: tt.left}
				regions := map[string]Clients{"us-east-1": {Global: regionGlobal{"us-east-1", m}}, "us-west-2": {Global: regionGlobal{"us-west-2", m}}}
				b, err := New(testTopology(), acting, regions, nil)
				if err != nil {
					t.Fatal(err)
				}
				b.Poll, b.Wait = time.Millisecond, 2*time.Second
				res, err := b.Do(context.Background(), "op", tt.step)
				switch {
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("Do(%s) = %q, %v; want an error containing %q", tt.step.Name(), res, err, tt.wantErr)
				case tt.wantErr == "" && (err != nil || !strings.Contains(res, tt.wantRes)):
					t.Errorf("Do(%s) = %q, %v; want a result containing %q", tt.step.Name(), res, err, tt.wantRes)
				}
				var changes []string
				for _, c := range m.calls {
					if strings.HasSuffix(c, "DescribeGlobalClusters") {
						if !strings.HasPrefix(c, "us-west-2 ") {
							t.Errorf("call %q, want every describe in us-west-2 (the target's region)", c)
						}
						continue
					}
					changes = append(changes, c)
				}
				if diff := cmp.Diff(tt.wantCalls, changes); diff != "" {
					t.Errorf("role-change calls (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestEndpointHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://abc123.execute-api.us-east-1.amazonaws.com", "abc123.execute-api.us-east-1.amazonaws.com"},
		{"https://ABC.example.com/", "abc.example.com"},
		{"abc.example.com.", "abc.example.com"},
	}
	for _, tt := range tests {
		if got := endpointHost(tt.in); got != tt.want {
			t.Errorf("endpointHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTopologyNeedsAPIEndpoints(t *testing.T) {
	topo := testTopology()
	topo.Secondary.APIEndpoint = ""
	if err := topology.Validate(topo); err == nil || !strings.Contains(err.Error(), "secondary.api_endpoint") {
		t.Errorf("Validate() without secondary.api_endpoint = %v, want it named", err)
	}
}
