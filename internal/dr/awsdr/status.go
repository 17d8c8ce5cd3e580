package awsdr

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"paydr/internal/dr"
)

// member is the global cluster member of one region.
type member struct {
	arn    string
	writer bool
	sync   string
}

// opCancelling is the FailoverState status of an operation being
// cancelled; every other (pending, failing-over, switching-over) is one in
// progress.
const opCancelling = "cancelling"

// operation is a switchover or failover under way, from FailoverState.
type operation struct {
	status   string // FailoverState.Status
	from, to string // cluster ARNs
	dataLoss bool
}

func (o operation) kind() string {
	if o.dataLoss {
		return "failover"
	}
	return "switchover"
}

func (o operation) String() string {
	return fmt.Sprintf("%s from %s to %s (%s)", o.kind(), clusterIDFromARN(o.from), clusterIDFromARN(o.to), o.status)
}

// globalState is the global cluster as one region describes it.
type globalState struct {
	status string
	// op is the switchover or failover under way; nil when none.
	op      *operation
	members map[string]member // by region
}

// writer returns the region whose member is the writer.
func (gs globalState) writer() (string, bool) {
	for r, m := range gs.members {
		if m.writer {
			return r, true
		}
	}
	return "", false
}

// describe describes the global cluster in region.
func (b *Backend) describe(ctx context.Context, region string) (globalState, error) {
	out, err := b.regions[region].Global.DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{
		GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID),
	})
	if err != nil {
		return globalState{}, fmt.Errorf("describe global cluster %s in %s: %w", b.topo.GlobalClusterID, region, err)
	}
	if len(out.GlobalClusters) != 1 {
		return globalState{}, fmt.Errorf("describe global cluster %s in %s: %d clusters returned, want 1", b.topo.GlobalClusterID, region, len(out.GlobalClusters))
	}
	gc := out.GlobalClusters[0]
	gs := globalState{status: aws.ToString(gc.Status), members: map[string]member{}}
	if fs := gc.FailoverState; fs != nil && fs.Status != "" {
		gs.op = &operation{status: string(fs.Status), from: aws.ToString(fs.FromDbClusterArn), to: aws.ToString(fs.ToDbClusterArn), dataLoss: aws.ToBool(fs.IsDataLossAllowed)}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range gc.GlobalClusterMembers {
		arn := aws.ToString(m.DBClusterArn)
		region := clusterRegion(arn)
		side, _, ok := side(b.topo, region)
		if !ok || clusterIDFromARN(arn) != side.ClusterID {
			continue
		}
		gs.members[region] = member{arn: arn, writer: aws.ToBool(m.IsWriter), sync: string(m.SynchronizationStatus)}
		b.arns[region] = arn
	}
	return gs, nil
}

// probe is what Status learns of one region apart from the global cluster.
type probe struct {
	fenced   bool
	fenceErr error
	// rpoBound is the bound on loss enforced on the region's cluster.
	rpoBound time.Duration
	rpoErr   error
	healthy  bool
	health   string
	// healthCheck is Route 53's view, best effort ("" when not read).
	healthCheck string
}

// Status implements dr.Observer. It describes the global cluster in the
// acting region and probes both regions at once, each probe bounded by
// ProbeTimeout.
func (b *Backend) Status(ctx context.Context) (dr.Status, error) {
	st := dr.Status{Backend: "aws", Observed: b.now().UTC(), Global: b.topo.GlobalClusterID + " (acting from " + b.acting + ")",
		Sessions: "DynamoDB global table " + b.topo.SessionsTable, RPOTarget: b.topo.RPOBound()}
	sides := []struct {
		t    RegionTopology
		slot string
	}{{b.topo.Primary, "primary"}, {b.topo.Secondary, "secondary"}}
	var (
		wg        sync.WaitGroup
		probes    = make([]probe, len(sides))
		gs        globalState
		gerr      error
		rep       = dr.Replication{LagBytes: -1}
		answer    trafficAnswer
		answerErr error
	)
	wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
		defer cancel()
		if gs, gerr = b.describe(pctx, b.acting); gerr != nil {
			return
		}
		for _, side := range sides {
			if m, ok := gs.members[side.t.Region]; ok && !m.writer {
				rep = b.lag(ctx, side.t)
				rep.State = m.sync
				rep.Streaming = rep.Known && (rep.State == "" || rep.State == "connected")
			}
		}
	})
	wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
		defer cancel()
		answer, answerErr = b.traffic(pctx)
	})
	for i, side := range sides {
		p := &probes[i]
		wg.Go(func() { p.fenced, p.fenceErr = b.fenced(ctx, side.t) })
		wg.Go(func() { p.healthy, p.health = b.probeHealth(ctx, side.t) })
		wg.Go(func() { p.rpoBound, p.rpoErr = b.rpoBound(ctx, side.t) })
		if b.health != nil && side.t.HealthCheckID != "" {
			wg.Go(func() { p.healthCheck = b.healthCheck(ctx, side.t.HealthCheckID) })
		}
	}
	wg.Wait()
	if gerr != nil {
		return st, fmt.Errorf("awsdr: status: %w; act from the surviving region (--region)", gerr)
	}
	for i, side := range sides {
		p := probes[i]
		r := dr.Region{Name: side.t.Region, Slot: side.slot, Database: side.t.ClusterID, Function: side.t.FunctionName, HealthCheckID: side.t.HealthCheckID,
			Healthy: p.healthy, Health: p.health, RPOBound: p.rpoBound}
		if p.rpoErr != nil {
			st.Notes = append(st.Notes, fmt.Sprintf("%s: bound on loss not read (%s): %v", side.t.Region, RPOParameter, p.rpoErr))
		}
		m, ok := gs.members[side.t.Region]
		switch {
		case !ok:
			r.Role = dr.RoleDown
			st.Notes = append(st.Notes, fmt.Sprintf("%s (%s) is not a member of global cluster %s", side.t.ClusterID, side.t.Region, b.topo.GlobalClusterID))
		case m.writer:
			r.Role, r.DatabaseARN = dr.RoleWriter, m.arn
		default:
			r.Role, r.DatabaseARN = dr.RoleStandby, m.arn
		}
		if p.fenceErr != nil {
			// The acting region's RDS API answered the describe.
			r.Reachable = side.t.Region == b.acting
			st.Notes = append(st.Notes, fmt.Sprintf("%s: %v", side.t.Region, p.fenceErr))
		} else {
			r.Reachable, r.Fenced = true, p.fenced
		}
		if p.healthCheck != "" {
			st.Notes = append(st.Notes, fmt.Sprintf("%s: %s", side.t.Region, p.healthCheck))
		}
		st.Regions = append(st.Regions, r)
	}
	st.Replication = rep
	if gs.op != nil {
		st.Global += "; " + gs.op.String() + " under way"
	}
	if answerErr != nil {
		st.Notes = append(st.Notes, "traffic: "+answerErr.Error())
	}
	st.Traffic = answer.region
	return st, nil
}

// fenced reports whether a region's function has reserved concurrency 0;
// an error means the region's Lambda API did not answer within
// ProbeTimeout.
func (b *Backend) fenced(ctx context.Context, t RegionTopology) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
	defer cancel()
	out, err := b.regions[t.Region].Fence.GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String(t.FunctionName)})
	if err != nil {
		return false, fmt.Errorf("get function concurrency %s: %w", t.FunctionName, err)
	}
	return out.ReservedConcurrentExecutions != nil && *out.ReservedConcurrentExecutions == 0, nil
}

// controlPlaneTimeout bounds a best-effort call to Route 53's control plane,
// which a lost us-east-1 takes away.
const controlPlaneTimeout = 2 * time.Second

// healthCheck reads a Route 53 health check, best effort: Route 53's
// control plane is in us-east-1, so it is only a note.
func (b *Backend) healthCheck(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, min(controlPlaneTimeout, b.ProbeTimeout))
	defer cancel()
	out, err := b.health.GetHealthCheckStatus(ctx, &route53.GetHealthCheckStatusInput{HealthCheckId: aws.String(id)})
	if err != nil {
		return fmt.Sprintf("route53 health check %s not read (its API is in us-east-1): %v", id, err)
	}
	ok := 0
	for _, o := range out.HealthCheckObservations {
		if o.StatusReport != nil && strings.HasPrefix(aws.ToString(o.StatusReport.Status), "Success") {
			ok++
		}
	}
	return fmt.Sprintf("route53 health check %s: %d of %d checkers report success", id, ok, len(out.HealthCheckObservations))
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
	ctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
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
