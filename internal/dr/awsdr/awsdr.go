// Package awsdr is the DR backend on AWS: Aurora Global Database
// (DescribeGlobalClusters; SwitchoverGlobalCluster for a planned switchover,
// FailoverGlobalCluster with AllowDataLoss for an unplanned failover, never
// the other way round), CloudWatch (AuroraGlobalDBReplicationLag and
// AuroraGlobalDBRPOLag, published by whichever cluster is the secondary
// now), Route 53 (health-check status, failover records) and Lambda
// (reserved concurrency 0 fences a region's processor).
//
// Everything is discovered from the dr/topology SSM parameter of the acting
// region (the region the operator runs in; for a failover, the surviving
// one): never from Terraform state, whose bucket lives in the primary
// region, and never from a primary-region endpoint. Calls to the other
// region are made only where they are best effort (fencing, snapshotting a
// lost region) or needed (a planned switchover).
//
// Operations are serialized by a DynamoDB lock (DynamoLock): a conditional
// PutItem on the sessions table in the acting region.
package awsdr

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// RegionTopology is one side of the pair as dr/topology records it.
type RegionTopology struct {
	Region        string `json:"region"`
	ClusterID     string `json:"cluster_id"`
	FunctionName  string `json:"function_name"`
	HealthCheckID string `json:"health_check_id"`
	APIEndpoint   string `json:"api_endpoint"`
	EventBus      string `json:"event_bus"`
	AlarmTopicARN string `json:"alarm_topic_arn"`
}

// Topology is the dr/topology parameter: what DR automation needs, readable
// in either region.
type Topology struct {
	Environment     string         `json:"environment"`
	GlobalClusterID string         `json:"global_cluster_id"`
	ZoneID          string         `json:"zone_id"`
	FailoverName    string         `json:"failover_name"`
	SessionsTable   string         `json:"sessions_table"`
	DRRoleName      string         `json:"dr_role_name"`
	Primary         RegionTopology `json:"primary"`
	Secondary       RegionTopology `json:"secondary"`
}

// ParameterName returns the SSM name of the topology of environment suffix.
func ParameterName(suffix string) string { return "/paydr/" + suffix + "/dr/topology" }

// Validate reports every missing field.
func (t Topology) Validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"global_cluster_id", t.GlobalClusterID}, {"zone_id", t.ZoneID}, {"failover_name", t.FailoverName},
		{"primary.region", t.Primary.Region}, {"primary.cluster_id", t.Primary.ClusterID}, {"primary.function_name", t.Primary.FunctionName},
		{"secondary.region", t.Secondary.Region}, {"secondary.cluster_id", t.Secondary.ClusterID}, {"secondary.function_name", t.Secondary.FunctionName},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("awsdr: topology: missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// side returns the topology of region name.
func (t Topology) side(name string) (RegionTopology, string, bool) {
	switch name {
	case t.Primary.Region:
		return t.Primary, "primary", true
	case t.Secondary.Region:
		return t.Secondary, "secondary", true
	}
	return RegionTopology{}, "", false
}

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
	var t Topology
	if out.Parameter == nil || out.Parameter.Value == nil {
		return Topology{}, fmt.Errorf("awsdr: discover: parameter %s is empty", name)
	}
	if err := json.Unmarshal([]byte(*out.Parameter.Value), &t); err != nil {
		return Topology{}, fmt.Errorf("awsdr: discover: parameter %s: %w", name, err)
	}
	if err := t.Validate(); err != nil {
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

// HealthAPI reads Route 53 health checks and the failover records.
type HealthAPI interface {
	GetHealthCheckStatus(ctx context.Context, in *route53.GetHealthCheckStatusInput, opts ...func(*route53.Options)) (*route53.GetHealthCheckStatusOutput, error)
	ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, opts ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
}

// FenceAPI fences a region's processor with reserved concurrency.
type FenceAPI interface {
	PutFunctionConcurrency(ctx context.Context, in *lambda.PutFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.PutFunctionConcurrencyOutput, error)
	DeleteFunctionConcurrency(ctx context.Context, in *lambda.DeleteFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.DeleteFunctionConcurrencyOutput, error)
	GetFunctionConcurrency(ctx context.Context, in *lambda.GetFunctionConcurrencyInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConcurrencyOutput, error)
}

// Clients are the AWS APIs of one region.
type Clients struct {
	Global   GlobalClusterAPI
	Snapshot SnapshotAPI
	Metrics  MetricsAPI
	Fence    FenceAPI
}

// Backend is the AWS DR backend: a dr.Backend.
type Backend struct {
	topo Topology
	// acting is the region the operator acts from; global-cluster calls go
	// there.
	acting  string
	regions map[string]Clients
	health  HealthAPI
	// Poll is the interval between polls of a waiting step (default 10 s);
	// Wait bounds each waiting step (default 20 min).
	Poll time.Duration
	Wait time.Duration
	// MaxLag bounds the replication lag a switchover's wait-caught-up step
	// accepts (default 60 s).
	MaxLag time.Duration
	now    func() time.Time
	// arns are the member cluster ARNs last described, by region, so a
	// dry run prints the exact TargetDbClusterIdentifier.
	arns map[string]string
}

// New returns the backend for topo acting from region acting, with the
// clients of both regions and Route 53.
func New(topo Topology, acting string, regions map[string]Clients, health HealthAPI) (*Backend, error) {
	if _, _, ok := topo.side(acting); !ok {
		return nil, fmt.Errorf("awsdr: acting region %s is neither %s nor %s; pass --region with one of them (the surviving one for a failover)",
			acting, topo.Primary.Region, topo.Secondary.Region)
	}
	for _, r := range []string{topo.Primary.Region, topo.Secondary.Region} {
		if _, ok := regions[r]; !ok {
			return nil, fmt.Errorf("awsdr: no clients for region %s", r)
		}
	}
	return &Backend{topo: topo, acting: acting, regions: regions, health: health,
		Poll: 10 * time.Second, Wait: 20 * time.Minute, MaxLag: 60 * time.Second, now: time.Now, arns: map[string]string{}}, nil
}

// Topology returns the discovered topology.
func (b *Backend) Topology() Topology { return b.topo }

// clusterARN is the ARN of a region's cluster as RDS names it in the global
// cluster's members: taken from DescribeGlobalClusters when seen, else
// built from the region and id (account unknown, so the id alone is used
// by the API calls that accept it).
func clusterRegion(arn string) string {
	// arn:aws:rds:us-east-1:123456789012:cluster:payment-cluster-primary-x
	parts := strings.Split(arn, ":")
	if len(parts) >= 7 {
		return parts[3]
	}
	return ""
}

func clusterIDFromARN(arn string) string {
	if i := strings.LastIndex(arn, ":cluster:"); i >= 0 {
		return arn[i+len(":cluster:"):]
	}
	return arn
}
