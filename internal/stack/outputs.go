package stack

import (
	"sort"

	"paydr/internal/tf"
)

// outputs declares what tests and operators read after an apply.
func (b *builder) outputs() {
	out := func(name, desc string, v tf.Value) {
		b.s.Output(name, tf.Output{Value: v, Description: desc})
	}
	out("global_cluster_id", "Aurora global cluster identifier", b.global.ID())
	out("global_writer_endpoint", "Aurora global writer endpoint", b.global.Endpoint())
	out("sessions_table_name", "DynamoDB session table", b.table.Name())
	out("sessions_table_arn", "DynamoDB session table ARN (primary region)", b.table.ARN())
	out("hosted_zone_id", "Route 53 zone id", b.zoneID)
	if b.zone != nil {
		desc := "Route 53 zone name servers"
		if !b.cfg.PrivateZone() {
			desc = "name servers of the public zone: the NS records of the domain at its parent zone or registrar (delegation), without which the certificates are never issued"
		}
		out("hosted_zone_name_servers", desc, b.zone.NameServers())
	}
	out("failover_name", "the name clients call; Route 53 answers with the healthy region", tf.S(b.failoverName))
	out("failover_url", "HTTPS URL of the payments API through the failover name", tf.S("https://"+b.failoverName))
	out("dr_role_arn", "role DR automation assumes", b.drRole.ARN())
	out("backup_plan_id", "AWS Backup plan", b.backupPlan.ID())
	out("db_secret_arn", "Secrets Manager secret with the Aurora master credentials (value never in state)", b.dbSecret.ARN())
	out("db_app_secret_arn", "Secrets Manager secret with the processors' database role credentials (value never in state)", b.dbAppSecret.ARN())
	out("parameter_prefix", "SSM path of the environment's parameters, in both regions", tf.S(b.paramPrefix()))
	for _, r := range b.regions() {
		p := string(r.role) + "_"
		out(p+"region", "region of the "+string(r.role)+" side", tf.S(r.name))
		out(p+"vpc_id", "VPC", r.vpc.ID())
		out(p+"cluster_id", "Aurora cluster identifier", r.cluster.ID())
		out(p+"cluster_endpoint", "Aurora cluster (writer) endpoint", r.cluster.Endpoint())
		out(p+"cluster_reader_endpoint", "Aurora reader endpoint", r.cluster.ReaderEndpoint())
		out(p+"function_name", "payment processor function", r.function.FunctionName())
		out(p+"function_arn", "payment processor function ARN", r.function.ARN())
		out(p+"processor_role_arn", "role the payment processor runs as", r.processorRole.ARN())
		out(p+"api_url", "HTTPS URL of the region's payments API", r.api.APIEndpoint())
		out(p+"health_check_id", "Route 53 health check of /health", r.healthCheck.ID())
		if r.recordTarget.IsSet() {
			out(p+"custom_domain_target", "regional target of the custom domain, which the failover name aliases while this region is healthy", r.recordTarget)
		}
		out(p+"event_bus_name", "EventBridge bus", r.bus.Name())
		out(p+"event_bus_arn", "EventBridge bus ARN", r.bus.ARN())
		out(p+"backup_vault_arn", "AWS Backup vault", r.vault.ARN())
		out(p+"dashboard_name", "CloudWatch dashboard", tf.S(r.dashboardName))
		out(p+"alarm_topic_arn", "SNS topic of alarm actions", r.alarmTopic.ARN())
		names := make([]tf.String, 0, len(r.params))
		for _, k := range sortedParamKeys(r.params) {
			names = append(names, r.params[k].Name())
		}
		out(p+"parameter_names", "SSM parameters", tf.L(names...))
	}
}

func sortedParamKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
