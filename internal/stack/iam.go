package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// assumeRolePolicy returns a trust policy for the given service principals.
func assumeRolePolicy(services ...string) tf.String {
	return tf.JSONEncode(tf.Raw(tf.Obj{
		"Version": "2012-10-17",
		"Statement": []any{tf.Obj{
			"Effect":    "Allow",
			"Principal": tf.Obj{"Service": services},
			"Action":    "sts:AssumeRole",
		}},
	}))
}

// stmt is one IAM policy statement.
type stmt struct {
	sid       string
	actions   []string
	resources []tf.String
}

func statement(actions []string, resources ...tf.String) stmt {
	return stmt{actions: actions, resources: resources}
}

// policy returns an identity policy document allowing each statement.
func policy(stmts ...stmt) tf.String {
	list := make([]any, len(stmts))
	for i, s := range stmts {
		res := make([]any, len(s.resources))
		for j, r := range s.resources {
			res[j] = r
		}
		o := tf.Obj{"Effect": "Allow", "Action": s.actions, "Resource": res}
		if s.sid != "" {
			o["Sid"] = s.sid
		}
		list[i] = o
	}
	return tf.JSONEncode(tf.Raw(tf.Obj{"Version": "2012-10-17", "Statement": list}))
}

// drAutomation declares the role DR automation (paydr dr, or an SSM
// Automation runbook) assumes, in either region: IAM is global, so one role
// serves both. It may do exactly what switchover and failover need, on the
// stack's own ARNs: drive the global cluster, fence a region's processor
// (reserved concurrency 0), read health, records, metrics and the DR
// parameters.
func (b *builder) drAutomation() {
	p, s := b.primary, b.secondary
	name := b.name("payment-dr-automation")
	b.drRole = aws.NewIAMRole(p.scope, "dr_automation", aws.IAMRoleArgs{
		Name:        tf.S(name),
		Description: tf.S("paydr DR automation: switchover, failover, failback, drills"),
		AssumeRolePolicy: tf.JSONEncode(tf.Raw(tf.Obj{
			"Version": "2012-10-17",
			"Statement": []any{
				tf.Obj{
					"Effect":    "Allow",
					"Principal": tf.Obj{"AWS": tf.Sprintf("arn:%s:iam::%s:root", b.partition.Partition(), b.caller.AccountID())},
					"Action":    "sts:AssumeRole",
				},
				tf.Obj{
					"Effect":    "Allow",
					"Principal": tf.Obj{"Service": []string{"ssm.amazonaws.com"}},
					"Action":    "sts:AssumeRole",
				},
			},
		})),
		MaxSessionDuration: tf.N(3600),
		Tags:               b.tags(name),
	})
	paramARNs := []tf.String{}
	for _, r := range b.regions() {
		paramARNs = append(paramARNs, b.arn("ssm", r.name, "parameter"+b.paramPrefix()+"/*"))
	}
	aws.NewIAMRolePolicy(p.scope, "dr_automation", aws.IAMRolePolicyArgs{
		Name: tf.S("dr-operations"),
		Role: b.drRole.ID(),
		Policy: policy(
			stmt{sid: "GlobalDatabase", actions: []string{
				"rds:DescribeGlobalClusters", "rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster",
			}, resources: []tf.String{b.global.ARN(), p.cluster.ARN(), s.cluster.ARN()}},
			stmt{sid: "Clusters", actions: []string{"rds:DescribeDBClusters", "rds:DescribeDBInstances", "rds:CreateDBClusterSnapshot"},
				resources: []tf.String{
					p.cluster.ARN(), s.cluster.ARN(),
					b.arn("rds", p.name, "db:"+p.clusterIdentifier+"-*"),
					b.arn("rds", s.name, "db:"+s.clusterIdentifier+"-*"),
					// The final snapshot paydr dr failover keeps of the old writer
					// (paydr/internal/dr/awsdr.SnapshotID).
					b.arn("rds", p.name, "cluster-snapshot:paydr-final-"+p.clusterIdentifier+"-*"),
					b.arn("rds", s.name, "cluster-snapshot:paydr-final-"+s.clusterIdentifier+"-*"),
				}},
			stmt{sid: "Fence", actions: []string{"lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency", "lambda:GetFunctionConcurrency", "lambda:GetFunction"},
				resources: []tf.String{p.function.ARN(), s.function.ARN()}},
			stmt{sid: "Traffic", actions: []string{"route53:GetHealthCheckStatus", "route53:GetHealthCheck", "route53:UpdateHealthCheck"},
				resources: []tf.String{
					tf.Sprintf("arn:%s:route53:::healthcheck/%s", b.partition.Partition(), p.healthCheck.ID()),
					tf.Sprintf("arn:%s:route53:::healthcheck/%s", b.partition.Partition(), s.healthCheck.ID()),
				}},
			stmt{sid: "Records", actions: []string{"route53:ListResourceRecordSets", "route53:GetHostedZone"},
				resources: []tf.String{b.zone.ARN()}},
			// DescribeTable for replica state; the item calls are the DR lock,
			// a conditional write in the acting region (paydr/internal/dr/awsdr).
			stmt{sid: "SessionsAndLock", actions: []string{"dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"},
				resources: []tf.String{p.tableARN, s.tableARN}},
			stmt{sid: "Parameters", actions: []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"},
				resources: paramARNs},
			// GetMetricData and DescribeAlarms have no resource-level permissions.
			stmt{sid: "Metrics", actions: []string{"cloudwatch:GetMetricData", "cloudwatch:DescribeAlarms"},
				resources: []tf.String{tf.S("*")}},
		),
	})
}
