package stack

import (
	"paydr/internal/apikey"
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
	"paydr/internal/topology"
)

// serviceTrust returns the trust policy of a role that service assumes on
// this account's behalf (see serviceTrustStatement).
func (b *builder) serviceTrust(service string, sourceARN tf.String) tf.String {
	return tf.JSONEncode(tf.Raw(tf.Obj{
		"Version":   "2012-10-17",
		"Statement": []any{b.serviceTrustStatement(service, sourceARN)},
	}))
}

// serviceTrustStatement lets service assume a role only on this account's
// behalf (aws:SourceAccount) and, when sourceARN is set, only for the
// resources it matches (aws:SourceArn): without them any account's use of
// the service could act through the role (the confused deputy).
func (b *builder) serviceTrustStatement(service string, sourceARN tf.String) tf.Obj {
	cond := tf.Obj{"StringEquals": tf.Obj{"aws:SourceAccount": b.caller.AccountID()}}
	if sourceARN.IsSet() {
		cond["ArnLike"] = tf.Obj{"aws:SourceArn": sourceARN}
	}
	return tf.Obj{
		"Effect":    "Allow",
		"Principal": tf.Obj{"Service": service},
		"Action":    "sts:AssumeRole",
		"Condition": cond,
	}
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
// (reserved concurrency 0), move the bound on loss (rds.global_db_rpo in
// the clusters' parameter groups), keep the old writer's final snapshot,
// take the DR lock, and read the health checks, the replication lag, the
// topology parameter and the API key (the verify step sends a real
// payment). Every action is one paydr/internal/dr/awsdr calls, or
// one AWS requires beside such a call (TestRolesGrantWhatTheCodeCalls).
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
				// An SSM Automation runbook of this account, in any region.
				b.serviceTrustStatement("ssm.amazonaws.com", b.arn("ssm", "*", "automation-execution/*")),
			},
		})),
		MaxSessionDuration: tf.N(3600),
		Tags:               b.tags(name),
	})
	paramARNs := []tf.String{}
	for _, r := range b.regions() {
		paramARNs = append(paramARNs, b.arn("ssm", r.name, "parameter"+topology.ParameterName(b.cfg.EnvironmentSuffix)))
	}
	keyARNs := []tf.String{}
	for _, r := range b.regions() {
		keyARNs = append(keyARNs, b.arn("ssm", r.name, "parameter"+apikey.ParameterName(b.cfg.EnvironmentSuffix)))
	}
	aws.NewIAMRolePolicy(p.scope, "dr_automation", aws.IAMRolePolicyArgs{
		Name: tf.S("dr-operations"),
		Role: b.drRole.ID(),
		Policy: policy(
			stmt{sid: "GlobalDatabase", actions: []string{
				"rds:DescribeGlobalClusters", "rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster",
			}, resources: []tf.String{b.global.ARN(), p.cluster.ARN(), s.cluster.ARN()}},
			// The final snapshot paydr dr failover keeps of the old writer
			// (paydr/internal/dr/awsdr.SnapshotID). AddTagsToResource is a
			// dependent action of CreateDBClusterSnapshot: the snapshot
			// takes the cluster's tags (copy_tags_to_snapshot).
			stmt{sid: "FinalSnapshot", actions: []string{"rds:CreateDBClusterSnapshot"},
				resources: []tf.String{
					p.cluster.ARN(), s.cluster.ARN(),
					b.arn("rds", p.name, "cluster-snapshot:paydr-final-"+p.clusterIdentifier+"-*"),
					b.arn("rds", s.name, "cluster-snapshot:paydr-final-"+s.clusterIdentifier+"-*"),
				}},
			stmt{sid: "FinalSnapshotTags", actions: []string{"rds:AddTagsToResource"},
				resources: []tf.String{
					b.arn("rds", p.name, "cluster-snapshot:paydr-final-"+p.clusterIdentifier+"-*"),
					b.arn("rds", s.name, "cluster-snapshot:paydr-final-"+s.clusterIdentifier+"-*"),
				}},
			// The bound on loss moves with the writer: rds.global_db_rpo set,
			// reset and read in the clusters' parameter groups.
			stmt{sid: "BoundOnLoss", actions: []string{"rds:ModifyDBClusterParameterGroup", "rds:ResetDBClusterParameterGroup", "rds:DescribeDBClusterParameters"},
				resources: []tf.String{p.clusterParams.ARN(), s.clusterParams.ARN()}},
			stmt{sid: "Fence", actions: []string{"lambda:PutFunctionConcurrency", "lambda:DeleteFunctionConcurrency", "lambda:GetFunctionConcurrency"},
				resources: []tf.String{p.function.ARN(), s.function.ARN()}},
			// Status reads the health checks, best effort (Route 53's control
			// plane is in us-east-1); no step depends on them.
			stmt{sid: "Health", actions: []string{"route53:GetHealthCheckStatus"},
				resources: []tf.String{
					tf.Sprintf("arn:%s:route53:::healthcheck/%s", b.partition.Partition(), p.healthCheck.ID()),
					tf.Sprintf("arn:%s:route53:::healthcheck/%s", b.partition.Partition(), s.healthCheck.ID()),
				}},
			// The DR lock: a conditional write to one item of the session
			// table in the acting region (paydr/internal/dr/awsdr.DynamoLock).
			// The table, and the API key parameter below, are encrypted with
			// paydr's key, which DynamoDB and SSM use with the caller's
			// permission.
			stmt{sid: "Lock", actions: []string{"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"},
				resources: []tf.String{p.tableARN, s.tableARN}},
			stmt{sid: "LockKey", actions: []string{"kms:Decrypt"},
				resources: []tf.String{p.kmsKeyARN, s.kmsKeyARN}},
			// The topology, read in the acting region (a String parameter: no key).
			stmt{sid: "Topology", actions: []string{"ssm:GetParameter"},
				resources: paramARNs},
			// The API key the verify payment carries, read with decryption
			// in the acting region (paydr/internal/apikey/ssmkey.Read).
			stmt{sid: "APIKey", actions: []string{"ssm:GetParameter"},
				resources: keyARNs},
			// GetMetricData has no resource-level permissions.
			stmt{sid: "Metrics", actions: []string{"cloudwatch:GetMetricData"},
				resources: []tf.String{tf.S("*")}},
		),
	})
}
