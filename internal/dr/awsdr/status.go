package awsdr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"paydr/internal/dr"
)

// probeTimeout bounds each call that may go to a lost region.
const probeTimeout = 5 * time.Second

// member is the global cluster member of one region.
type member struct {
	arn    string
	writer bool
	sync   string
}

// globalState is the global cluster as the acting region describes it.
type globalState struct {
	status  string
	members map[string]member // by region
}

func (b *Backend) describe(ctx context.Context) (globalState, error) {
	out, err := b.regions[b.acting].Global.DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{
		GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID),
	})
	if err != nil {
		return globalState{}, fmt.Errorf("describe global cluster %s in %s: %w", b.topo.GlobalClusterID, b.acting, err)
	}
	if len(out.GlobalClusters) != 1 {
		return globalState{}, fmt.Errorf("describe global cluster %s in %s: %d clusters returned, want 1", b.topo.GlobalClusterID, b.acting, len(out.GlobalClusters))
	}
	gc := out.GlobalClusters[0]
	gs := globalState{status: aws.ToString(gc.Status), members: map[string]member{}}
	for _, m := range gc.GlobalClusterMembers {
		arn := aws.ToString(m.DBClusterArn)
		region := clusterRegion(arn)
		side, _, ok := b.topo.side(region)
		if !ok || clusterIDFromARN(arn) != side.ClusterID {
			continue
		}
		gs.members[region] = member{arn: arn, writer: aws.ToBool(m.IsWriter), sync: string(m.SynchronizationStatus)}
		b.arns[region] = arn
	}
	return gs, nil
}

// Status implements dr.Observer.
func (b *Backend) Status(ctx context.Context) (dr.Status, error) {
	st := dr.Status{Backend: "aws", Observed: b.now().UTC(), Global: b.topo.GlobalClusterID + " (acting from " + b.acting + ")",
		Sessions: "DynamoDB global table " + b.topo.SessionsTable}
	gs, err := b.describe(ctx)
	if err != nil {
		return st, fmt.Errorf("awsdr: status: %w", err)
	}
	var secondary string
	for _, side := range []struct {
		t    RegionTopology
		slot string
	}{{b.topo.Primary, "primary"}, {b.topo.Secondary, "secondary"}} {
		r := dr.Region{Name: side.t.Region, Slot: side.slot, Database: side.t.ClusterID, Function: side.t.FunctionName, HealthCheckID: side.t.HealthCheckID}
		m, ok := gs.members[side.t.Region]
		switch {
		case !ok:
			r.Role = dr.RoleDown
			st.Notes = append(st.Notes, fmt.Sprintf("%s (%s) is not a member of global cluster %s", side.t.ClusterID, side.t.Region, b.topo.GlobalClusterID))
		case m.writer:
			r.Role, r.DatabaseARN = dr.RoleWriter, m.arn
		default:
			r.Role, r.DatabaseARN = dr.RoleStandby, m.arn
			secondary = side.t.Region
		}
		fenced, err := b.fenced(ctx, side.t)
		if err != nil {
			r.Reachable = side.t.Region == b.acting
			st.Notes = append(st.Notes, fmt.Sprintf("%s: %v", side.t.Region, err))
		} else {
			r.Reachable, r.Fenced = true, fenced
		}
		r.Healthy, r.Health = b.healthy(ctx, side.t.HealthCheckID)
		st.Regions = append(st.Regions, r)
	}
	if secondary != "" {
		side, _, _ := b.topo.side(secondary)
		st.Replication = b.lag(ctx, side)
		st.Replication.State = gs.members[secondary].sync
		st.Replication.Streaming = st.Replication.Known && (st.Replication.State == "" || st.Replication.State == "connected")
	} else {
		st.Replication.LagBytes = -1
	}
	st.Traffic, err = b.traffic(ctx, st)
	if err != nil {
		st.Notes = append(st.Notes, err.Error())
	}
	return st, nil
}

// fenced reports whether a region's function has reserved concurrency 0;
// an error means the region's Lambda API did not answer.
func (b *Backend) fenced(ctx context.Context, t RegionTopology) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := b.regions[t.Region].Fence.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(t.FunctionName)})
	if err != nil {
		return false, fmt.Errorf("get function concurrency %s: %w", t.FunctionName, err)
	}
	return out.ReservedConcurrentExecutions != nil && *out.ReservedConcurrentExecutions == 0, nil
}

// healthy reads a Route 53 health check: healthy when most checkers
// report success.
func (b *Backend) healthy(ctx context.Context, id string) (bool, string) {
	if id == "" {
		return false, "no health check"
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := b.health.GetHealthCheckStatus(ctx, &route53.GetHealthCheckStatusInput{HealthCheckId: aws.String(id)})
	if err != nil {
		return false, fmt.Sprintf("health check %s: %v", id, err)
	}
	ok := 0
	for _, o := range out.HealthCheckObservations {
		if o.StatusReport != nil && strings.HasPrefix(aws.ToString(o.StatusReport.Status), "Success") {
			ok++
		}
	}
	n := len(out.HealthCheckObservations)
	return n > 0 && ok*2 > n, fmt.Sprintf("%d of %d checkers report success", ok, n)
}

// Lag metrics, published by the secondary region's cluster.
const (
	MetricReplicationLag = "AuroraGlobalDBReplicationLag"
	MetricRPOLag         = "AuroraGlobalDBRPOLag"
)

// lagQuery is the GetMetricData input for the secondary cluster's lag.
func lagQuery(clusterID string, end time.Time) *cloudwatch.GetMetricDataInput {
	q := func(id, metric string) cwtypes.MetricDataQuery {
		return cwtypes.MetricDataQuery{Id: aws.String(id), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String("AWS/RDS"), MetricName: aws.String(metric),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("DBClusterIdentifier"), Value: aws.String(clusterID)}}},
			Period: aws.Int32(60), Stat: aws.String("Maximum")}}
	}
	return &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(end.Add(-10 * time.Minute)), EndTime: aws.Time(end),
		ScanBy:            cwtypes.ScanByTimestampDescending,
		MetricDataQueries: []cwtypes.MetricDataQuery{q("replication_lag", MetricReplicationLag), q("rpo_lag", MetricRPOLag)},
	}
}

// lag reads the latest lag of the secondary side (in its own region).
func (b *Backend) lag(ctx context.Context, side RegionTopology) dr.Replication {
	rep := dr.Replication{LagBytes: -1}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := b.regions[side.Region].Metrics.GetMetricData(ctx, lagQuery(side.ClusterID, b.now()))
	if err != nil {
		return rep
	}
	for _, r := range out.MetricDataResults {
		if len(r.Values) == 0 {
			continue
		}
		latest, v := r.Timestamps[0], r.Values[0]
		for i, ts := range r.Timestamps {
			if ts.After(latest) {
				latest, v = ts, r.Values[i]
			}
		}
		d := time.Duration(v * float64(time.Millisecond))
		switch aws.ToString(r.Id) {
		case "replication_lag":
			rep.ReplayLag, rep.Known = d, true
		case "rpo_lag":
			rep.RPOLag, rep.Known = d, true
		}
	}
	return rep
}

// traffic returns the region the failover records answer with: the PRIMARY
// record's while its health check passes, else the SECONDARY's.
func (b *Backend) traffic(ctx context.Context, st dr.Status) (string, error) {
	name := strings.TrimSuffix(b.topo.FailoverName, ".") + "."
	out, err := b.health.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(b.topo.ZoneID), StartRecordName: aws.String(name), MaxItems: aws.Int32(10)})
	if err != nil {
		return "", fmt.Errorf("list failover records of %s: %w", name, err)
	}
	byHC := map[string]string{b.topo.Primary.HealthCheckID: b.topo.Primary.Region, b.topo.Secondary.HealthCheckID: b.topo.Secondary.Region}
	var primary, secondary string
	for _, rr := range out.ResourceRecordSets {
		if !strings.EqualFold(aws.ToString(rr.Name), name) {
			continue
		}
		switch rr.Failover {
		case r53types.ResourceRecordSetFailoverPrimary:
			primary = byHC[aws.ToString(rr.HealthCheckId)]
		case r53types.ResourceRecordSetFailoverSecondary:
			secondary = byHC[aws.ToString(rr.HealthCheckId)]
		}
	}
	if primary == "" || secondary == "" {
		return "", fmt.Errorf("failover records of %s: PRIMARY %q, SECONDARY %q; want both, with the stack's health checks", name, primary, secondary)
	}
	if r, ok := st.Region(primary); ok && r.Healthy {
		return primary, nil
	}
	if r, ok := st.Region(secondary); ok && !r.Healthy {
		return primary, nil // Route 53 answers with the primary when all are unhealthy
	}
	return secondary, nil
}
