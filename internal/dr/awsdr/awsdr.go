// Package awsdr is the DR backend on AWS: Aurora Global Database
// (DescribeGlobalClusters; SwitchoverGlobalCluster for a planned switchover,
// FailoverGlobalCluster with AllowDataLoss for an unplanned failover, never
// the other way round), CloudWatch (AuroraGlobalDBReplicationLag and
// AuroraGlobalDBRPOLag, published by whichever cluster is the secondary
// now), Lambda (reserved concurrency 0 fences a region's processor), and
// the data plane clients use: the failover name's DNS answer and each
// region's API endpoint.
//
// Everything is discovered from the dr/topology SSM parameter of the acting
// region (the region the operator runs in; for a failover, the surviving
// one): never from Terraform state, whose bucket lives in the primary
// region, and never from a primary-region endpoint. Calls to the other
// region are made only where they are best effort (fencing, snapshotting a
// lost region) or needed (a planned switchover), each bounded by
// Backend.CallTimeout so that a region that black-holes requests fails the
// step instead of hanging it.
//
// A failover must not need the region it replaces. Route 53's control plane
// (GetHealthCheckStatus, ListResourceRecordSets, ChangeResourceRecordSets),
// IAM and STS's global endpoint are served from us-east-1, so no step
// calls them: wait-traffic and verify judge traffic by the data plane, which
// is global (DataPlane): the failover name's DNS answer (a CNAME to one
// region's API endpoint, chosen by Route 53's health checkers), each
// region's GET /health straight from its regional endpoint, and a real
// payment sent through the failover name (the same payment_id until it is
// acknowledged, and committed by the target region), carrying the payments
// API key read from the acting region's /paydr/<suffix>/api/key (the same
// key in both regions, package apikey). Status reads Route 53's
// health checks only as a note, best effort within 2 s.
//
// Role changes follow the global cluster as DescribeGlobalClusters reports
// it: the members' IsWriter says who writes, and FailoverState (Status
// pending, failing-over, switching-over or cancelling; FromDbClusterArn,
// ToDbClusterArn, IsDataLossAllowed) says which switchover or failover is
// under way. A promote step that finds one under way toward its target
// waits for it rather than calling again (a resumed operation), and refuses
// one toward the other cluster or being cancelled. As AWS requires,
// SwitchoverGlobalCluster is sent to the current writer's region and
// FailoverGlobalCluster to the target's (the surviving region); the waits
// describe the global cluster from the region that will hold the writer,
// never from the lost one. Calls, printed by dry runs, names the region of
// every call.
//
// Status probes both regions at once, each probe bounded by
// Backend.ProbeTimeout, so it stays fast while a region black-holes
// requests: a region is Reachable when its AWS API (Lambda
// GetFunctionConcurrency) answers, Healthy when its /health answers 200
// (its database takes writes), and Traffic is the region the failover
// name's DNS answer points at.
//
// The bound on loss (the topology's rpo_bound_seconds) is Aurora
// PostgreSQL's rds.global_db_rpo in the writer's cluster parameter group:
// enforce-rpo sets it (ModifyDBClusterParameterGroup, ApplyMethod
// immediate), relax-rpo resets it (ResetDBClusterParameterGroup), each in
// the region of that cluster only, so a failover relaxes the surviving
// region's group without the lost one. Status reads it in each region
// (DescribeDBClusterParameters, Source user), best effort: a region that
// does not answer reports no bound, and a note says why.
//
// Operations are serialized by a DynamoDB lock (DynamoLock): a conditional
// PutItem on the sessions table in the acting region.
package awsdr

import (
	"context"

	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/topology"
)

// RegionTopology is one side of the pair as dr/topology records it.
type RegionTopology = topology.Side

// Topology is the dr/topology parameter (paydr/internal/topology): what DR
// automation needs, readable in either region.
type Topology = topology.Topology

// ParameterName returns the SSM name of the topology of environment suffix.
func ParameterName(suffix string) string { return topology.ParameterName(suffix) }

// side returns the topology of region name.
func side(t Topology, name string) (RegionTopology, string, bool) { return topology.Lookup(t, name) }

// ParamsAPI reads the topology parameter.
type ParamsAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Discover reads the topology of environment suffix from the acting
// region's SSM parameter.
func Discover(ctx context.Context, api ParamsAPI, suffix string) (Topology, error) {
	name := ParameterName(suffix)
	out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		return Topology{}, fmt.Errorf("awsdr: discover: get parameter %s: %w; check --env and that the acting region holds the stack's parameters", name, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return Topology{}, fmt.Errorf("awsdr: discover: parameter %s is empty", name)
	}
	t, err := topology.Parse(*out.Parameter.Value)
	if err != nil {
		return Topology{}, fmt.Errorf("awsdr: discover: parameter %s: %w", name, err)
	}
	return t, nil
}

// GlobalClusterAPI is the part of RDS a role change needs.
type GlobalClusterAPI interface {
	DescribeGlobalClusters(ctx context.Context, in *rds.DescribeGlobalClustersInput, opts ...func(*rds.Options)) (*rds.DescribeGlobalClustersOutput, error)
	SwitchoverGlobalCluster(ctx context.Context, in *rds.SwitchoverGlobalClusterInput, opts ...func(*rds.Options)) (*rds.SwitchoverGlobalClusterOutput, error)
	FailoverGlobalCluster(ctx context.Context, in *rds.FailoverGlobalClusterInput, opts ...func(*rds.Options)) (*rds.FailoverGlobalClusterOutput, error)
}

// SnapshotAPI keeps a cluster's final state.
type SnapshotAPI interface {
	CreateDBClusterSnapshot(ctx context.Context, in *rds.CreateDBClusterSnapshotInput, opts ...func(*rds.Options)) (*rds.CreateDBClusterSnapshotOutput, error)
}

// MetricsAPI reads the replication lag.
type MetricsAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// HealthAPI reads Route 53 health checks. Route 53's control plane is in
// us-east-1: Status reads them best effort, and no step depends on them.
type HealthAPI interface {
	GetHealthCheckStatus(ctx context.Context, in *route53.GetHealthCheckStatusInput, opts ...func(*route53.Options)) (*route53.GetHealthCheckStatusOutput, error)
}

// FenceAPI fences a region's processor with reserved concurrency.
type FenceAPI interface {
	PutFunctionConcurrency(ctx context.Context, in *lambda.PutFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.PutFunctionConcurrencyOutput, error)
	DeleteFunctionConcurrency(ctx context.Context, in *lambda.DeleteFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.DeleteFunctionConcurrencyOutput, error)
	GetFunctionConcurrency(ctx context.Context, in *lambda.GetFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error)
}

// BoundAPI moves the bound on loss: rds.global_db_rpo in a cluster
// parameter group.
type BoundAPI interface {
	ModifyDBClusterParameterGroup(ctx context.Context, in *rds.ModifyDBClusterParameterGroupInput, opts ...func(*rds.Options)) (*rds.ModifyDBClusterParameterGroupOutput, error)
	ResetDBClusterParameterGroup(ctx context.Context, in *rds.ResetDBClusterParameterGroupInput, opts ...func(*rds.Options)) (*rds.ResetDBClusterParameterGroupOutput, error)
	DescribeDBClusterParameters(ctx context.Context, in *rds.DescribeDBClusterParametersInput, opts ...func(*rds.Options)) (*rds.DescribeDBClusterParametersOutput, error)
}

// Clients are the AWS APIs of one region.
type Clients struct {
	Global   GlobalClusterAPI
	Snapshot SnapshotAPI
	Bound    BoundAPI
	Metrics  MetricsAPI
	Fence    FenceAPI
}

// Backend is the AWS DR backend: a dr.Backend.
type Backend struct {
	topo Topology
	// acting is the region the operator acts from; Status describes the
	// global cluster there.
	acting  string
	regions map[string]Clients
	// health is Route 53 (nil: not read).
	health HealthAPI
	// DataPlane is how traffic is judged: DNS answers and the regions' API
	// endpoints.
	DataPlane DataPlane
	// Poll is the interval between polls of a waiting step (default 10 s);
	// Wait bounds each waiting step (default 20 min).
	Poll time.Duration
	Wait time.Duration
	// MaxLag bounds the replication lag a switchover's wait-caught-up step
	// accepts (default 60 s).
	MaxLag time.Duration
	// ProbeTimeout bounds each probe of Status and each /health probe
	// (default 5 s).
	ProbeTimeout time.Duration
	// CallTimeout bounds each single call of a step, such as fencing or
	// snapshotting a lost region, or one attempt of the verify payment
	// (default 15 s).
	CallTimeout time.Duration
	// APIKey returns the payments API key the verify payment carries
	// (Connect: ssmkey.Read of the acting region's parameter, with
	// decryption). Nil: the payment carries none, and the processor
	// refuses it.
	APIKey func(ctx context.Context) (string, error)
	// APIKeyParameter names the parameter APIKey reads, for dry runs.
	APIKeyParameter string
	now             func() time.Time
	// arns are the member cluster ARNs last described, by region, so a
	// dry run prints the exact TargetDbClusterIdentifier.
	mu   sync.Mutex
	arns map[string]string
}

// New returns the backend for topo acting from region acting, with the
// clients of both regions and, for notes in Status only, Route 53 (may be
// nil). Its DataPlane uses the system resolver and HTTPS.
func New(topo Topology, acting string, regions map[string]Clients, health HealthAPI) (*Backend, error) {
	if _, _, ok := side(topo, acting); !ok {
		return nil, fmt.Errorf("awsdr: acting region %s is neither %s nor %s; pass --region with one of them (the surviving one for a failover)",
			acting, topo.Primary.Region, topo.Secondary.Region)
	}
	for _, r := range []string{topo.Primary.Region, topo.Secondary.Region} {
		if _, ok := regions[r]; !ok {
			return nil, fmt.Errorf("awsdr: no clients for region %s", r)
		}
	}
	return &Backend{topo: topo, acting: acting, regions: regions, health: health,
		Poll: 10 * time.Second, Wait: 20 * time.Minute, MaxLag: 60 * time.Second,
		ProbeTimeout: 5 * time.Second, CallTimeout: 15 * time.Second,
		now: time.Now, arns: map[string]string{}}, nil
}

// Topology returns the discovered topology.
func (b *Backend) Topology() Topology { return b.topo }

// clusterRegion returns the region of a cluster ARN, "" when arn is not
// one.
func clusterRegion(arn string) string {
	// arn:aws:rds:us-east-1:123456789012:cluster:payment-cluster-primary-x
	parts := strings.Split(arn, ":")
	if len(parts) >= 7 {
		return parts[3]
	}
	return ""
}

// clusterIDFromARN returns the cluster identifier of a cluster ARN.
func clusterIDFromARN(arn string) string {
	if i := strings.LastIndex(arn, ":cluster:"); i >= 0 {
		return arn[i+len(":cluster:"):]
	}
	return arn
}
