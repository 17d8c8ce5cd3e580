package awsdr

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"

	"paydr/internal/dr"
)

// SnapshotID is the identifier of the final snapshot preserve takes of a
// cluster during operation opID.
func SnapshotID(clusterID, opID string) string {
	id := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString("paydr-final-"+clusterID+"-"+opID, "-"))
	id = strings.Trim(id, "-")
	if len(id) > 255 {
		id = id[:255]
	}
	return id
}

// Calls implements dr.Runner: the exact API calls of step, in order.
func (b *Backend) Calls(s dr.Step) []string {
	side, _, _ := b.topo.side(s.Region)
	gc := b.topo.GlobalClusterID
	target := b.arns[s.Region]
	if target == "" {
		target = fmt.Sprintf("<arn of %s in %s, from DescribeGlobalClusters>", side.ClusterID, s.Region)
	}
	describe := fmt.Sprintf("%s rds:DescribeGlobalClusters GlobalClusterIdentifier=%s", b.acting, gc)
	switch s.Action {
	case dr.ActionFence:
		return []string{fmt.Sprintf("%s lambda:PutFunctionConcurrency FunctionName=%s ReservedConcurrentExecutions=0", s.Region, side.FunctionName)}
	case dr.ActionUnfence:
		return []string{fmt.Sprintf("%s lambda:DeleteFunctionConcurrency FunctionName=%s", s.Region, side.FunctionName)}
	case dr.ActionPreserve:
		return []string{fmt.Sprintf("%s rds:CreateDBClusterSnapshot DBClusterIdentifier=%s DBClusterSnapshotIdentifier=%s", s.Region, side.ClusterID, SnapshotID(side.ClusterID, "<op-id>"))}
	case dr.ActionWaitCaughtUp:
		return []string{fmt.Sprintf("%s cloudwatch:GetMetricData AWS/RDS %s,%s DBClusterIdentifier=%s (refuse above %s; SwitchoverGlobalCluster itself waits for the secondary to catch up)",
			s.Region, MetricReplicationLag, MetricRPOLag, side.ClusterID, b.MaxLag)}
	case dr.ActionPromote:
		call := fmt.Sprintf("%s rds:SwitchoverGlobalCluster GlobalClusterIdentifier=%s TargetDbClusterIdentifier=%s", b.acting, gc, target)
		if s.Mode == dr.ModeFailover {
			call = fmt.Sprintf("%s rds:FailoverGlobalCluster GlobalClusterIdentifier=%s TargetDbClusterIdentifier=%s AllowDataLoss=true", b.acting, gc, target)
		}
		return []string{describe, call, describe + fmt.Sprintf(" (every %s until %s is the writer and the status is available)", b.Poll, side.ClusterID)}
	case dr.ActionRebuildStandby:
		return []string{describe + fmt.Sprintf(" (every %s until %s is a secondary member; Aurora demotes the old writer itself)", b.Poll, side.ClusterID)}
	case dr.ActionWaitTraffic:
		return []string{
			fmt.Sprintf("route53:GetHealthCheckStatus HealthCheckId=%s (every %s until healthy)", side.HealthCheckID, b.Poll),
			fmt.Sprintf("route53:ListResourceRecordSets HostedZoneId=%s StartRecordName=%s", b.topo.ZoneID, b.topo.FailoverName),
		}
	case dr.ActionVerify:
		return []string{describe, fmt.Sprintf("route53:GetHealthCheckStatus HealthCheckId=%s (its /health commits a write probe to %s)", side.HealthCheckID, side.ClusterID)}
	}
	return nil
}

// Do implements dr.Runner.
func (b *Backend) Do(ctx context.Context, opID string, s dr.Step) (string, error) {
	side, _, ok := b.topo.side(s.Region)
	if !ok {
		return "", fmt.Errorf("awsdr: %s: region %s is not in the topology", s.Name(), s.Region)
	}
	c := b.regions[s.Region]
	switch s.Action {
	case dr.ActionFence:
		_, err := c.Fence.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(side.FunctionName), ReservedConcurrentExecutions: aws.Int32(0)})
		if err != nil {
			return "", fmt.Errorf("awsdr: fence %s: put function concurrency %s: %w", s.Region, side.FunctionName, err)
		}
		return fmt.Sprintf("%s reserved concurrency 0", side.FunctionName), nil
	case dr.ActionUnfence:
		_, err := c.Fence.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(side.FunctionName)})
		if err != nil {
			return "", fmt.Errorf("awsdr: unfence %s: delete function concurrency %s: %w", s.Region, side.FunctionName, err)
		}
		return fmt.Sprintf("%s reserved concurrency removed", side.FunctionName), nil
	case dr.ActionPreserve:
		id := SnapshotID(side.ClusterID, opID)
		out, err := c.Snapshot.CreateDBClusterSnapshot(ctx, &rds.CreateDBClusterSnapshotInput{DBClusterIdentifier: aws.String(side.ClusterID), DBClusterSnapshotIdentifier: aws.String(id)})
		var exists *rdstypes.DBClusterSnapshotAlreadyExistsFault
		switch {
		case errors.As(err, &exists):
			return fmt.Sprintf("snapshot %s of %s in %s (already taken)", id, side.ClusterID, s.Region), nil
		case err != nil:
			return "", fmt.Errorf("awsdr: preserve %s: create cluster snapshot %s: %w; when %s recovers, Aurora keeps the old primary's data in a snapshot before it rejoins (look for unplanned-global-failover snapshots in %s)", s.Region, id, err, s.Region, s.Region)
		}
		where := id
		if out.DBClusterSnapshot != nil && out.DBClusterSnapshot.DBClusterSnapshotArn != nil {
			where = *out.DBClusterSnapshot.DBClusterSnapshotArn
		}
		return fmt.Sprintf("final state of %s kept in snapshot %s (%s)", side.ClusterID, where, s.Region), nil
	case dr.ActionWaitCaughtUp:
		rep := b.lag(ctx, side)
		if !rep.Known {
			return "no lag metric in the last 10 minutes; SwitchoverGlobalCluster waits for the secondary to catch up", nil
		}
		if lag := max(rep.ReplayLag, rep.RPOLag); lag > b.MaxLag {
			return "", fmt.Errorf("awsdr: wait caught up %s: replication lag %s exceeds %s; wait for the secondary to catch up and run the command again", s.Region, lag, b.MaxLag)
		}
		return fmt.Sprintf("replication lag %s, rpo lag %s", rep.ReplayLag, rep.RPOLag), nil
	case dr.ActionPromote:
		return b.promote(ctx, s, side)
	case dr.ActionRebuildStandby:
		return b.waitGlobal(ctx, s, func(gs globalState) (bool, string) {
			m, ok := gs.members[s.Region]
			return ok && !m.writer, fmt.Sprintf("%s is a secondary member (synchronization %q)", side.ClusterID, m.sync)
		})
	case dr.ActionWaitTraffic:
		return b.waitTraffic(ctx, s)
	case dr.ActionVerify:
		gs, err := b.describe(ctx)
		if err != nil {
			return "", fmt.Errorf("awsdr: verify %s: %w", s.Region, err)
		}
		if m := gs.members[s.Region]; !m.writer {
			return "", fmt.Errorf("awsdr: verify %s: %s is not the writer of %s; run paydr dr status", s.Region, side.ClusterID, b.topo.GlobalClusterID)
		}
		if ok, detail := b.healthy(ctx, side.HealthCheckID); !ok {
			return "", fmt.Errorf("awsdr: verify %s: health check %s: %s; its /health commits a write probe, so the writer does not take writes yet", s.Region, side.HealthCheckID, detail)
		}
		return fmt.Sprintf("%s is the writer and its health check (a committed write probe) passes", side.ClusterID), nil
	}
	return "", fmt.Errorf("awsdr: unknown action %q", s.Action)
}

// promote starts the switchover or failover unless the target is already
// the writer or a role change is under way, then waits for it.
func (b *Backend) promote(ctx context.Context, s dr.Step, side RegionTopology) (string, error) {
	gs, err := b.describe(ctx)
	if err != nil {
		return "", fmt.Errorf("awsdr: promote %s: %w", s.Region, err)
	}
	m, ok := gs.members[s.Region]
	if !ok {
		return "", fmt.Errorf("awsdr: promote %s: %s is not a member of global cluster %s; it cannot be promoted", s.Region, side.ClusterID, b.topo.GlobalClusterID)
	}
	started := ""
	switch {
	case m.writer && gs.status == "available":
		return fmt.Sprintf("%s is already the writer", side.ClusterID), nil
	case gs.status == "switching-over" || gs.status == "failing-over":
		started = "a role change was already under way (" + gs.status + ")"
	case s.Mode == dr.ModeFailover:
		_, err = b.regions[b.acting].Global.FailoverGlobalCluster(ctx, &rds.FailoverGlobalClusterInput{
			GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID), TargetDbClusterIdentifier: aws.String(m.arn), AllowDataLoss: aws.Bool(true)})
		started = "FailoverGlobalCluster with AllowDataLoss"
	default:
		_, err = b.regions[b.acting].Global.SwitchoverGlobalCluster(ctx, &rds.SwitchoverGlobalClusterInput{
			GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID), TargetDbClusterIdentifier: aws.String(m.arn)})
		started = "SwitchoverGlobalCluster"
	}
	if err != nil {
		return "", fmt.Errorf("awsdr: promote %s: %s: %w", s.Region, started, err)
	}
	res, err := b.waitGlobal(ctx, s, func(gs globalState) (bool, string) {
		return gs.members[s.Region].writer && gs.status == "available", fmt.Sprintf("%s: %s is the writer", started, side.ClusterID)
	})
	return res, err
}

// waitGlobal polls DescribeGlobalClusters until done says so, bounded by
// b.Wait.
func (b *Backend) waitGlobal(ctx context.Context, s dr.Step, done func(globalState) (bool, string)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	for {
		gs, err := b.describe(ctx)
		if err == nil {
			if ok, what := done(gs); ok {
				return what, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("awsdr: %s: not done after %s (global cluster status %q): %w; run the command again to keep waiting", s.Name(), b.Wait, gs.status, ctx.Err())
		case <-time.After(b.Poll):
		}
	}
}

// waitTraffic polls the health check and records until the failover name
// answers with region.
func (b *Backend) waitTraffic(ctx context.Context, s dr.Step) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	for {
		st, err := b.Status(ctx)
		if err == nil && st.Traffic == s.Region {
			return fmt.Sprintf("%s answers with %s", b.topo.FailoverName, s.Region), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("awsdr: %s: traffic still goes to %q after %s: %w", s.Name(), st.Traffic, b.Wait, ctx.Err())
		case <-time.After(b.Poll):
		}
	}
}

var _ dr.Backend = (*Backend)(nil)
