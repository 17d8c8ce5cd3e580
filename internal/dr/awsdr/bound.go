package awsdr

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"

	"paydr/internal/dr"
)

// RPOParameter is Aurora PostgreSQL's bound on loss of a global database's
// writer, in seconds, in its cluster parameter group: while every secondary
// lags more, the writer blocks commits.
const RPOParameter = "rds.global_db_rpo"

// boundCalls are the calls of enforce-rpo and relax-rpo on side.
func (b *Backend) boundCalls(s dr.Step, side RegionTopology) []string {
	group := side.ClusterParameterGroup
	switch {
	case group == "" && s.Action == dr.ActionRelaxRPO:
		return []string{fmt.Sprintf("none: the topology names no cluster parameter group for %s, so paydr set no bound there (apply the stack to add one)", side.ClusterID)}
	case s.Action == dr.ActionRelaxRPO:
		return []string{fmt.Sprintf("%s rds:ResetDBClusterParameterGroup DBClusterParameterGroupName=%s Parameters=[ParameterName=%s,ApplyMethod=immediate]", s.Region, group, RPOParameter)}
	case b.topo.RPOBoundSeconds <= 0:
		return []string{"none: the topology sets no bound on loss (rpo_bound_seconds)"}
	}
	return []string{fmt.Sprintf("%s rds:ModifyDBClusterParameterGroup DBClusterParameterGroupName=%s Parameters=[ParameterName=%s,ParameterValue=%d,ApplyMethod=immediate]",
		s.Region, group, RPOParameter, b.topo.RPOBoundSeconds)}
}

// relaxRPO resets rds.global_db_rpo in side's group, in side's region.
func (b *Backend) relaxRPO(ctx context.Context, s dr.Step, side RegionTopology) (string, error) {
	group := side.ClusterParameterGroup
	if group == "" {
		return fmt.Sprintf("no cluster parameter group in the topology for %s: no bound set by paydr", side.ClusterID), nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
	defer cancel()
	_, err := b.regions[s.Region].Bound.ResetDBClusterParameterGroup(ctx, &rds.ResetDBClusterParameterGroupInput{
		DBClusterParameterGroupName: aws.String(group),
		Parameters:                  []rdstypes.Parameter{{ParameterName: aws.String(RPOParameter), ApplyMethod: rdstypes.ApplyMethodImmediate}},
	})
	if err != nil {
		return "", fmt.Errorf("awsdr: relax rpo %s: reset %s in cluster parameter group %s: %w; run the command again", s.Region, RPOParameter, group, err)
	}
	return fmt.Sprintf("%s reset in %s (%s): no bound on loss", RPOParameter, group, s.Region), nil
}

// enforceRPO sets rds.global_db_rpo to the topology's bound in side's
// group, in side's region.
func (b *Backend) enforceRPO(ctx context.Context, s dr.Step, side RegionTopology) (string, error) {
	if b.topo.RPOBoundSeconds <= 0 {
		return "the topology sets no bound on loss: nothing enforced", nil
	}
	group := side.ClusterParameterGroup
	ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
	defer cancel()
	value := strconv.Itoa(b.topo.RPOBoundSeconds)
	_, err := b.regions[s.Region].Bound.ModifyDBClusterParameterGroup(ctx, &rds.ModifyDBClusterParameterGroupInput{
		DBClusterParameterGroupName: aws.String(group),
		Parameters:                  []rdstypes.Parameter{{ParameterName: aws.String(RPOParameter), ParameterValue: aws.String(value), ApplyMethod: rdstypes.ApplyMethodImmediate}},
	})
	if err != nil {
		return "", fmt.Errorf("awsdr: enforce rpo %s: set %s=%s in cluster parameter group %s: %w; run the command again", s.Region, RPOParameter, value, group, err)
	}
	return fmt.Sprintf("%s=%s in %s (%s): %s stops acknowledging while its standby lags more", RPOParameter, value, group, s.Region, side.ClusterID), nil
}

// rpoBound reads the bound on loss enforced on side's cluster: the
// user-set rds.global_db_rpo of its group (0 when unset). Bounded by
// ProbeTimeout.
func (b *Backend) rpoBound(ctx context.Context, side RegionTopology) (time.Duration, error) {
	group := side.ClusterParameterGroup
	if group == "" {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
	defer cancel()
	in := &rds.DescribeDBClusterParametersInput{DBClusterParameterGroupName: aws.String(group), Source: aws.String("user")}
	for {
		out, err := b.regions[side.Region].Bound.DescribeDBClusterParameters(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("describe cluster parameters %s: %w", group, err)
		}
		for _, p := range out.Parameters {
			if aws.ToString(p.ParameterName) != RPOParameter || p.ParameterValue == nil {
				continue
			}
			secs, err := strconv.Atoi(aws.ToString(p.ParameterValue))
			if err != nil {
				return 0, fmt.Errorf("cluster parameter group %s: %s = %q, not a number of seconds", group, RPOParameter, aws.ToString(p.ParameterValue))
			}
			return time.Duration(secs) * time.Second, nil
		}
		if aws.ToString(out.Marker) == "" {
			return 0, nil
		}
		in.Marker = out.Marker
	}
}
