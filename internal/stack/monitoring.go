package stack

import (
	"fmt"
	"strings"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// Alarm thresholds.
const (
	// replicationLagAlarmMs is the Aurora replication lag that raises an
	// alarm: 60 s, far inside the 5-minute RPO.
	replicationLagAlarmMs = 60000
	// rpoLagAlarmMs is the Aurora RPO lag (AuroraGlobalDBRPOLag) that raises an alarm.
	rpoLagAlarmMs = 60000
	// tableReplicationAlarmMs is the DynamoDB replication latency that raises an alarm.
	tableReplicationAlarmMs = 60000
)

// route53MetricsRegion is the only region Route 53 publishes health-check
// metrics in.
const route53MetricsRegion = "us-east-1"

// monitoring declares, per region, an SNS topic for alarm actions (encrypted
// with paydr's key: CloudWatch cannot publish to a topic under the AWS
// managed aws/sns key), a dashboard, and alarms. The Aurora lag alarms exist
// in both regions because the standby region publishes the lag metrics, and
// which region is the standby changes with a switchover.
func (b *builder) monitoring() {
	for _, r := range b.regions() {
		name := b.name("payment-alarms")
		r.alarmTopic = aws.NewSNSTopic(r.scope, string(r.role)+"_alarms", aws.SNSTopicArgs{
			Name:           tf.S(name),
			KMSMasterKeyID: r.kmsKeyARN,
			Tags:           b.tags(name),
		})
	}
	for _, r := range b.regions() {
		b.regionAlarms(r)
		b.dashboard(r)
	}
	b.healthAlarms()
}

func (b *builder) other(r *region) *region {
	if r.role == primary {
		return b.secondary
	}
	return b.primary
}

// alarm declares one alarm in r that notifies r's topic.
func (b *builder) alarm(r *region, id, name, desc, namespace, metric, stat string, dims map[string]tf.String, threshold int, cmp string, periods int, missing string) *aws.CloudWatchMetricAlarm {
	return aws.NewCloudWatchMetricAlarm(r.scope, string(r.role)+"_"+id, aws.CloudWatchMetricAlarmArgs{
		AlarmName:          tf.S(b.name(name + "-" + r.name)),
		AlarmDescription:   tf.S(desc),
		Namespace:          tf.S(namespace),
		MetricName:         tf.S(metric),
		Statistic:          tf.S(stat),
		Dimensions:         tf.M(dims),
		Period:             tf.N(60),
		EvaluationPeriods:  tf.N(periods),
		Threshold:          tf.N(threshold),
		ComparisonOperator: tf.S(cmp),
		TreatMissingData:   tf.S(missing),
		AlarmActions:       tf.SetOf(r.alarmTopic.ARN()),
		OkActions:          tf.SetOf(r.alarmTopic.ARN()),
		Tags:               b.tags(b.name(name + "-" + r.name)),
	})
}

// regionAlarms declares r's alarms. Each chooses what missing data means:
//
//   - Aurora replication lag and RPO lag: the standby's region publishes
//     them, the writer's never does, and which region is which moves with
//     a switchover. Missing data is the writer's steady state, so the
//     threshold alarms treat it as not breaching; "replication stopped" is
//     a composite alarm of its own (replicationStopped).
//   - Processor errors and DynamoDB throttles: no data means nothing
//     happened.
//   - DynamoDB replication latency: published only while items replicate,
//     so an idle table (or the standby's, which takes no writes) publishes
//     nothing; missing data is normal.
func (b *builder) regionAlarms(r *region) {
	cluster := map[string]tf.String{"DBClusterIdentifier": tf.S(r.clusterIdentifier)}
	b.alarm(r, "replication_lag", "payment-aurora-replication-lag",
		"Aurora global database replication lag into this region is over 60 s",
		"AWS/RDS", "AuroraGlobalDBReplicationLag", "Maximum", cluster, replicationLagAlarmMs, "GreaterThanThreshold", 1, "notBreaching")
	b.alarm(r, "rpo_lag", "payment-aurora-rpo-lag",
		"Aurora global database RPO lag (AuroraGlobalDBRPOLag) in this region is over 60 s",
		"AWS/RDS", "AuroraGlobalDBRPOLag", "Maximum", cluster, rpoLagAlarmMs, "GreaterThanThreshold", 1, "notBreaching")
	b.alarm(r, "processor_errors", "payment-processor-errors",
		"the payment processor reports errors (crashes, timeouts, failed outbox sweeps: events piling up) in 3 consecutive minutes",
		"AWS/Lambda", "Errors", "Sum", map[string]tf.String{"FunctionName": tf.S(r.functionName)}, 0, "GreaterThanThreshold", 3, "notBreaching")
	b.alarm(r, "table_replication", "payment-sessions-replication-latency",
		"DynamoDB replication latency from this region is over 60 s",
		"AWS/DynamoDB", "ReplicationLatency", "Average",
		map[string]tf.String{"TableName": b.table.Name(), "ReceivingRegion": tf.S(b.other(r).name)},
		tableReplicationAlarmMs, "GreaterThanThreshold", 3, "notBreaching")
	b.alarm(r, "table_throttles", "payment-sessions-throttles",
		"DynamoDB throttles requests to the session table",
		"AWS/DynamoDB", "ThrottledRequests", "Sum", map[string]tf.String{"TableName": b.table.Name()}, 0, "GreaterThanThreshold", 3, "notBreaching")
	b.replicationStopped(r)
}

// replicationStoppedMinutes is how long r's cluster may be neither the
// writer nor a replicating standby before the alarm.
const replicationStoppedMinutes = 5

// replicationStopped raises an alarm when r's cluster is neither receiving
// replication (no AuroraGlobalDBReplicationLag published) nor holding the
// writer (no instance in the WRITER role): the standby's cluster has left
// the global database or lost its instances, or the writer is gone. Either
// fact alone is a steady state of one of the two roles, so each is a
// component alarm that treats missing data as breaching and notifies
// nothing, and the composite of both notifies. It needs no knowledge of
// which region holds the writer. The local target leaves it out (see
// [LocalGaps]).
func (b *builder) replicationStopped(r *region) {
	if b.local() {
		if r.role == primary {
			b.note("local: the payment-aurora-replication-stopped composite alarms and their components left out (moto does not implement PutCompositeAlarm)")
		}
		return
	}
	id := string(r.role)
	component := func(suffix, desc, metric string, dims map[string]tf.String) *aws.CloudWatchMetricAlarm {
		name := b.name("payment-aurora-" + suffix + "-" + r.name)
		return aws.NewCloudWatchMetricAlarm(r.scope, id+"_"+strings.ReplaceAll(suffix, "-", "_"), aws.CloudWatchMetricAlarmArgs{
			AlarmName:          tf.S(name),
			AlarmDescription:   tf.S(desc + " (a component of payment-aurora-replication-stopped-" + r.name + "; notifies nothing on its own)"),
			Namespace:          tf.S("AWS/RDS"),
			MetricName:         tf.S(metric),
			Statistic:          tf.S("SampleCount"),
			Dimensions:         tf.M(dims),
			Period:             tf.N(60),
			EvaluationPeriods:  tf.N(replicationStoppedMinutes),
			Threshold:          tf.N(1),
			ComparisonOperator: tf.S("LessThanThreshold"),
			TreatMissingData:   tf.S("breaching"),
			Tags:               b.tags(name),
		})
	}
	received := component("no-replication-received",
		"this region's Aurora cluster publishes no replication lag, as whenever it holds the writer",
		"AuroraGlobalDBReplicationLag", map[string]tf.String{"DBClusterIdentifier": tf.S(r.clusterIdentifier)})
	writer := component("no-writer",
		"this region's Aurora cluster has no instance in the WRITER role, as whenever it is the standby",
		"CPUUtilization", map[string]tf.String{"DBClusterIdentifier": tf.S(r.clusterIdentifier), "Role": tf.S("WRITER")})
	name := b.name("payment-aurora-replication-stopped-" + r.name)
	aws.NewCloudWatchCompositeAlarm(r.scope, id+"_replication_stopped", aws.CloudWatchCompositeAlarmArgs{
		AlarmName:        tf.S(name),
		AlarmDescription: tf.S(fmt.Sprintf("this region's Aurora cluster has for %d minutes been neither the writer nor a standby receiving replication: replication into it stopped, or the writer is gone", replicationStoppedMinutes)),
		AlarmRule:        tf.Sprintf(`ALARM("%s") AND ALARM("%s")`, received.AlarmName(), writer.AlarmName()),
		AlarmActions:     tf.SetOf(r.alarmTopic.ARN()),
		OkActions:        tf.SetOf(r.alarmTopic.ARN()),
		Tags:             b.tags(name),
	})
}

// healthAlarms raises an alarm when no region answers /health: /health is
// 200 only where the database accepts writes, so the standby's health
// check fails by design and a per-region alarm would sit in ALARM in
// steady state. The failover name has somewhere to go while either check
// passes; when neither does, the writer is down and no standby has been
// promoted, which is what DR acts on. Route 53 publishes health-check
// metrics only in us-east-1, so the alarm lives there, on the maximum of
// both checks' status (metric math); missing data is breaching (Route 53
// publishes every minute while a check exists).
func (b *builder) healthAlarms() {
	var in *region
	for _, r := range b.regions() {
		if r.name == route53MetricsRegion {
			in = r
		}
	}
	if in == nil {
		b.note("no region is %s, where Route 53 publishes health-check metrics: the no-healthy-region alarm is left out", route53MetricsRegion)
		return
	}
	queries := []aws.CloudWatchMetricAlarmMetricQuery{}
	for _, r := range b.regions() {
		queries = append(queries, aws.CloudWatchMetricAlarmMetricQuery{
			ID:    tf.S(string(r.role)),
			Label: tf.S(r.name + " /health (1 = healthy)"),
			Metric: &aws.CloudWatchMetricAlarmMetricQueryMetric{
				Namespace:  tf.S("AWS/Route53"),
				MetricName: tf.S("HealthCheckStatus"),
				Dimensions: tf.M(map[string]tf.String{"HealthCheckId": r.healthCheck.ID()}),
				Period:     tf.N(60),
				Stat:       tf.S("Minimum"),
			},
			ReturnData: tf.B(false),
		})
	}
	queries = append(queries, aws.CloudWatchMetricAlarmMetricQuery{
		ID:         tf.S("healthy"),
		Label:      tf.S("a region is healthy"),
		Expression: tf.S("MAX([primary, secondary])"),
		ReturnData: tf.B(true),
	})
	name := b.name("payment-no-healthy-region")
	aws.NewCloudWatchMetricAlarm(in.scope, "no_healthy_region", aws.CloudWatchMetricAlarmArgs{
		AlarmName:          tf.S(name),
		AlarmDescription:   tf.S("no region's /health passes its Route 53 health check: the writer is down and no standby has been promoted (the standby's /health fails by design, so one region's failing check alone is normal)"),
		MetricQuery:        queries,
		EvaluationPeriods:  tf.N(1),
		Threshold:          tf.N(1),
		ComparisonOperator: tf.S("LessThanThreshold"),
		TreatMissingData:   tf.S("breaching"),
		AlarmActions:       tf.SetOf(in.alarmTopic.ARN()),
		OkActions:          tf.SetOf(in.alarmTopic.ARN()),
		Tags:               b.tags(name),
	})
}

// dashboard declares r's dashboard: Aurora replication lag, the processor's
// invocations, errors and duration, DynamoDB replication latency and
// throttles, and both health checks.
func (b *builder) dashboard(r *region) {
	r.dashboardName = b.name("payment-dr-" + r.name)
	metric := func(ns, name string, dims ...any) []any {
		return append([]any{ns, name}, dims...)
	}
	widget := func(x, y int, title string, stat string, metrics ...[]any) tf.Obj {
		ms := make([]any, len(metrics))
		for i, m := range metrics {
			ms[i] = m
		}
		return tf.Obj{
			"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
			"properties": tf.Obj{"title": title, "region": r.name, "stat": stat, "period": 60, "view": "timeSeries", "metrics": ms},
		}
	}
	other := b.other(r)
	body := tf.Obj{"widgets": []any{
		widget(0, 0, "Aurora global replication lag (ms)", "Maximum",
			metric("AWS/RDS", "AuroraGlobalDBReplicationLag", "DBClusterIdentifier", r.clusterIdentifier),
			metric("AWS/RDS", "AuroraGlobalDBRPOLag", "DBClusterIdentifier", r.clusterIdentifier)),
		widget(12, 0, "Processor invocations and errors", "Sum",
			metric("AWS/Lambda", "Invocations", "FunctionName", r.functionName),
			metric("AWS/Lambda", "Errors", "FunctionName", r.functionName),
			metric("AWS/Lambda", "Throttles", "FunctionName", r.functionName)),
		widget(0, 6, "Processor duration (ms)", "p99",
			metric("AWS/Lambda", "Duration", "FunctionName", r.functionName)),
		widget(12, 6, "Session table replication and throttles", "Average",
			metric("AWS/DynamoDB", "ReplicationLatency", "TableName", b.table.Name(), "ReceivingRegion", other.name),
			metric("AWS/DynamoDB", "ThrottledRequests", "TableName", b.table.Name())),
		tf.Obj{
			"type": "metric", "x": 0, "y": 12, "width": 24, "height": 6,
			"properties": tf.Obj{
				"title": "Route 53 health checks (1 = healthy)", "region": route53MetricsRegion, "stat": "Minimum", "period": 60,
				"view": "timeSeries",
				"metrics": []any{
					metric("AWS/Route53", "HealthCheckStatus", "HealthCheckId", b.primary.healthCheck.ID()),
					metric("AWS/Route53", "HealthCheckStatus", "HealthCheckId", b.secondary.healthCheck.ID()),
				},
			},
		},
	}}
	r.dashboard = aws.NewCloudWatchDashboard(r.scope, string(r.role), aws.CloudWatchDashboardArgs{
		DashboardName: tf.S(r.dashboardName),
		DashboardBody: tf.JSONEncode(tf.Raw(body)),
	})
}
