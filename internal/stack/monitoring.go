package stack

import (
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

func (b *builder) regionAlarms(r *region) {
	cluster := map[string]tf.String{"DBClusterIdentifier": tf.S(r.clusterIdentifier)}
	// The lag metrics exist only while this region is the standby: missing
	// data is the writer's normal state.
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
}

// healthAlarms raises an alarm when a region's health check fails. Route 53
// publishes the metric only in us-east-1, so the alarms live there.
func (b *builder) healthAlarms() {
	var in *region
	for _, r := range b.regions() {
		if r.name == route53MetricsRegion {
			in = r
		}
	}
	if in == nil {
		b.note("no region is %s, where Route 53 publishes health-check metrics: health-check alarms are left out", route53MetricsRegion)
		return
	}
	for _, r := range b.regions() {
		b.alarm(in, "health_"+string(r.role), "payment-health-"+string(r.role),
			"the "+string(r.role)+" region's /health fails its Route 53 health check",
			"AWS/Route53", "HealthCheckStatus", "Minimum", map[string]tf.String{"HealthCheckId": r.healthCheck.ID()}, 1, "LessThanThreshold", 1, "breaching")
	}
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
