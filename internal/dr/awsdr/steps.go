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
	"paydr/internal/processor/api"
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

// Calls implements dr.Runner: the exact calls of step, in order, each
// prefixed with where it goes: the region of an AWS API or of an API
// endpoint, or "dns" for a DNS lookup.
func (b *Backend) Calls(s dr.Step) []string {
	side, _, _ := side(b.topo, s.Region)
	gc := b.topo.GlobalClusterID
	b.mu.Lock()
	target := b.arns[s.Region]
	b.mu.Unlock()
	if target == "" {
		target = fmt.Sprintf("<arn of %s in %s, from DescribeGlobalClusters>", side.ClusterID, s.Region)
	}
	describe := func(region string) string {
		return fmt.Sprintf("%s rds:DescribeGlobalClusters GlobalClusterIdentifier=%s", region, gc)
	}
	name := canonicalHost(b.topo.FailoverName)
	record := recordTarget(side)
	host := endpointHost(side.APIEndpoint)
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
		// Switchover in the current writer's region (the plan's Peer);
		// failover in the target's.
		call := fmt.Sprintf("%s rds:SwitchoverGlobalCluster GlobalClusterIdentifier=%s TargetDbClusterIdentifier=%s", s.Peer, gc, target)
		if s.Mode == dr.ModeFailover {
			call = fmt.Sprintf("%s rds:FailoverGlobalCluster GlobalClusterIdentifier=%s TargetDbClusterIdentifier=%s AllowDataLoss=true", s.Region, gc, target)
		}
		return []string{
			describe(s.Region) + fmt.Sprintf(" (no call below while its FailoverState shows an operation toward %s: wait for it)", side.ClusterID),
			call,
			describe(s.Region) + fmt.Sprintf(" (every %s until %s is the writer and FailoverState is empty)", b.Poll, side.ClusterID),
		}
	case dr.ActionRelaxRPO, dr.ActionEnforceRPO:
		return b.boundCalls(s, side)
	case dr.ActionRebuildStandby:
		return []string{describe(s.Peer) + fmt.Sprintf(" (every %s until %s is a secondary member and FailoverState is empty; Aurora demotes the old writer itself)", b.Poll, side.ClusterID)}
	case dr.ActionWaitTraffic:
		if side.RecordTarget != "" {
			return []string{
				fmt.Sprintf("dns A %s (every %s until it answers an address of %s, the custom domain target of %s: the record is an alias)", name, b.Poll, record, s.Region),
				fmt.Sprintf("%s GET %s (until 200: its database takes writes)", s.Region, b.DataPlane.url(host, api.PathHealth)),
			}
		}
		return []string{
			fmt.Sprintf("dns CNAME %s (every %s until it answers %s, the endpoint of %s)", name, b.Poll, record, s.Region),
			fmt.Sprintf("%s GET %s (until 200: its database takes writes)", s.Region, b.DataPlane.url(host, api.PathHealth)),
		}
	case dr.ActionVerify:
		calls := []string{
			describe(s.Region) + fmt.Sprintf(" (%s must be the writer)", side.ClusterID),
			fmt.Sprintf("dns CNAME %s (must answer %s, the endpoint of %s)", name, record, s.Region),
		}
		if side.RecordTarget != "" {
			calls[1] = fmt.Sprintf("dns A %s (must answer an address of %s, the custom domain target of %s: the record is an alias)", name, record, s.Region)
		}
		auth := ""
		if b.APIKey != nil {
			calls = append(calls, fmt.Sprintf("%s ssm:GetParameter Name=%s WithDecryption=true (the payments API key)", b.acting, b.APIKeyParameter))
			auth = " Authorization: Bearer <key>"
		}
		return append(calls, fmt.Sprintf("%s POST %s%s %s (the same payment until acknowledged; %s must have committed it)",
			s.Region, b.DataPlane.url(name, api.PathPayments), auth, verifyBody("dr-verify-<op-id>"), s.Region))
	}
	return nil
}

// Do implements dr.Runner. No step calls Route 53's control plane.
func (b *Backend) Do(ctx context.Context, opID string, s dr.Step) (string, error) {
	side, _, ok := side(b.topo, s.Region)
	if !ok {
		return "", fmt.Errorf("awsdr: %s: region %s is not in the topology", s.Name(), s.Region)
	}
	c := b.regions[s.Region]
	switch s.Action {
	case dr.ActionFence:
		ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
		defer cancel()
		_, err := c.Fence.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(side.FunctionName), ReservedConcurrentExecutions: aws.Int32(0)})
		if err != nil {
			return "", fmt.Errorf("awsdr: fence %s: put function concurrency %s: %w; fence it before it comes back (reserved concurrency 0)", s.Region, side.FunctionName, err)
		}
		return fmt.Sprintf("%s reserved concurrency 0", side.FunctionName), nil
	case dr.ActionUnfence:
		ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
		defer cancel()
		_, err := c.Fence.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(side.FunctionName)})
		if err != nil {
			return "", fmt.Errorf("awsdr: unfence %s: delete function concurrency %s: %w", s.Region, side.FunctionName, err)
		}
		return fmt.Sprintf("%s reserved concurrency removed", side.FunctionName), nil
	case dr.ActionPreserve:
		ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
		defer cancel()
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
	case dr.ActionRelaxRPO:
		return b.relaxRPO(ctx, s, side)
	case dr.ActionEnforceRPO:
		return b.enforceRPO(ctx, s, side)
	case dr.ActionRebuildStandby:
		return b.waitGlobal(ctx, s, s.Peer, func(gs globalState) (bool, string) {
			m, ok := gs.members[s.Region]
			return ok && !m.writer && gs.op == nil, fmt.Sprintf("%s is a secondary member (synchronization %q)", side.ClusterID, m.sync)
		})
	case dr.ActionWaitTraffic:
		return b.waitTraffic(ctx, s, side)
	case dr.ActionVerify:
		gs, err := b.describe(ctx, s.Region)
		if err != nil {
			return "", fmt.Errorf("awsdr: verify %s: %w; run the command again", s.Region, err)
		}
		if m := gs.members[s.Region]; !m.writer {
			return "", fmt.Errorf("awsdr: verify %s: %s is not the writer of %s; run paydr dr status", s.Region, side.ClusterID, b.topo.GlobalClusterID)
		}
		res, err := b.verifyPayment(ctx, s, opID)
		if err != nil {
			return "", err
		}
		return side.ClusterID + " is the writer; " + res, nil
	}
	return "", fmt.Errorf("awsdr: unknown action %q", s.Action)
}

// promote starts the switchover or failover unless the target is already
// the writer or a role change toward it is under way, then waits for it.
// Everything is read from the target's region; a failover is sent there
// too, a switchover to the current writer's region.
func (b *Backend) promote(ctx context.Context, s dr.Step, side RegionTopology) (string, error) {
	gs, err := b.describe(ctx, s.Region)
	if err != nil {
		return "", fmt.Errorf("awsdr: promote %s: %w; run the command again", s.Region, err)
	}
	m, ok := gs.members[s.Region]
	if !ok {
		return "", fmt.Errorf("awsdr: promote %s: %s is not a member of global cluster %s; it cannot be promoted", s.Region, side.ClusterID, b.topo.GlobalClusterID)
	}
	var started string
	switch op := gs.op; {
	case op != nil && op.status == opCancelling:
		return "", fmt.Errorf("awsdr: promote %s: the %s of global cluster %s is being cancelled; wait until paydr dr status shows none under way, then run the command again",
			s.Region, op, b.topo.GlobalClusterID)
	case op != nil && op.to != m.arn:
		return "", fmt.Errorf("awsdr: promote %s: global cluster %s has a %s under way, not toward %s; another operation is running: wait until paydr dr status shows none under way, then plan again",
			s.Region, b.topo.GlobalClusterID, op, side.ClusterID)
	case op != nil:
		started = fmt.Sprintf("a %s was already under way (not called again)", op)
	case m.writer:
		return fmt.Sprintf("%s is already the writer", side.ClusterID), nil
	case s.Mode == dr.ModeFailover:
		cctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
		_, err = b.regions[s.Region].Global.FailoverGlobalCluster(cctx, &rds.FailoverGlobalClusterInput{
			GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID), TargetDbClusterIdentifier: aws.String(m.arn), AllowDataLoss: aws.Bool(true)})
		cancel()
		started = "FailoverGlobalCluster with AllowDataLoss in " + s.Region
	default:
		writer, ok := gs.writer()
		if !ok {
			return "", fmt.Errorf("awsdr: promote %s: global cluster %s has no writer to switch over from; if the writer region is lost, run paydr dr failover", s.Region, b.topo.GlobalClusterID)
		}
		cctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
		_, err = b.regions[writer].Global.SwitchoverGlobalCluster(cctx, &rds.SwitchoverGlobalClusterInput{
			GlobalClusterIdentifier: aws.String(b.topo.GlobalClusterID), TargetDbClusterIdentifier: aws.String(m.arn)})
		cancel()
		started = "SwitchoverGlobalCluster in " + writer
	}
	if err != nil {
		lost, ok := b.startedAnyway(ctx, s.Region, m.arn)
		if !ok {
			return "", fmt.Errorf("awsdr: promote %s: %s: %w; run the command again: it resumes here and calls again only if no operation is under way", s.Region, started, err)
		}
		started += fmt.Sprintf(" (answered %q, yet RDS shows %s: the call was carried out, its answer was lost)", err, lost)
	}
	return b.waitGlobal(ctx, s, s.Region, func(gs globalState) (bool, string) {
		return gs.members[s.Region].writer && gs.op == nil, fmt.Sprintf("%s: %s is the writer", started, side.ClusterID)
	})
}

// startedAnyway reports whether a role-change call that failed was carried
// out all the same: its answer lost, the SDK sent it again, and RDS
// refused the second, the first's operation being under way. It is, when
// the global cluster (described in region) shows a role change toward
// target that is not being cancelled, or target already the writer.
func (b *Backend) startedAnyway(ctx context.Context, region, target string) (string, bool) {
	gs, err := b.describe(ctx, region)
	if err != nil {
		return "", false
	}
	switch op := gs.op; {
	case op != nil && op.to == target && op.status != opCancelling:
		return fmt.Sprintf("a %s under way", op), true
	case op == nil && gs.members[region].writer && gs.members[region].arn == target:
		return "the target the writer", true
	}
	return "", false
}

// waitGlobal describes the global cluster in region every Poll until done
// says so, bounded by Wait.
func (b *Backend) waitGlobal(ctx context.Context, s dr.Step, region string, done func(globalState) (bool, string)) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	var last string
	for {
		gs, err := b.describe(ctx, region)
		if err == nil {
			if ok, what := done(gs); ok {
				return what, nil
			}
			last = fmt.Sprintf("status %q", gs.status)
			if gs.op != nil {
				last += ", " + gs.op.String()
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("awsdr: %s: not done after %s (global cluster %s: %s): %w; run the command again to keep waiting", s.Name(), b.Wait, b.topo.GlobalClusterID, last, ctx.Err())
		case <-time.After(b.Poll):
		}
	}
}

var _ dr.Backend = (*Backend)(nil)
