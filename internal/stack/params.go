package stack

import (
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// paramPrefix is the SSM path every parameter of the environment lives under.
func (b *builder) paramPrefix() string { return "/paydr/" + b.cfg.EnvironmentSuffix }

// params declares, in both regions, the parameters the processor and DR
// automation read: endpoints, table and bus names, an API key (SecureString,
// generated and written write-only, never a literal), and the DR topology,
// so failover finds everything it needs in the surviving region.
func (b *builder) params() {
	apiKey := aws.NewEphemeralSecretsManagerRandomPassword(b.primary.scope, "api_key", aws.EphemeralSecretsManagerRandomPasswordArgs{
		PasswordLength:     tf.N(48),
		ExcludePunctuation: tf.B(true),
	})
	for _, r := range b.regions() {
		id := string(r.role)
		put := func(key, desc string, value tf.String) {
			name := b.paramPrefix() + "/" + key
			r.params[key] = aws.NewSSMParameter(r.scope, id+"_"+paramID(key), aws.SSMParameterArgs{
				Name:        tf.S(name),
				Description: tf.S(desc),
				Type:        tf.S("String"),
				Value:       value,
				Tags:        b.tags(name),
			})
		}
		put("db/writer-endpoint", "global writer endpoint of the Aurora global database", b.global.Endpoint())
		put("db/reader-endpoint", "reader endpoint of this region's Aurora cluster", r.cluster.ReaderEndpoint())
		put("db/cluster-endpoint", "cluster endpoint of this region's Aurora cluster", r.cluster.Endpoint())
		put("sessions/table-name", "DynamoDB session table", b.table.Name())
		put("events/bus-name", "EventBridge bus of this region", r.bus.Name())
		put("dr/topology", "what DR automation needs, readable in either region", b.topology())
		name := b.paramPrefix() + "/api/key"
		r.params["api/key"] = aws.NewSSMParameter(r.scope, id+"_api_key", aws.SSMParameterArgs{
			Name:           tf.S(name),
			Description:    tf.S("API key of the payments API"),
			Type:           tf.S("SecureString"),
			KeyID:          r.kmsKeyARN,
			ValueWo:        apiKey.RandomPassword(),
			ValueWoVersion: tf.N(b.apiKeyVersion),
			Tags:           b.tags(name),
		})
	}
}

func paramID(key string) string {
	out := []byte(key)
	for i, c := range out {
		if c == '/' || c == '-' {
			out[i] = '_'
		}
	}
	return string(out)
}

// topology is the JSON document DR automation reads from either region's
// dr/topology parameter: no Terraform state, no primary-region endpoint.
func (b *builder) topology() tf.String {
	region := func(r *region) tf.Obj {
		return tf.Obj{
			"region":          r.name,
			"cluster_id":      r.clusterIdentifier,
			"function_name":   r.functionName,
			"health_check_id": r.healthCheck.ID(),
			"api_endpoint":    r.api.APIEndpoint(),
			"event_bus":       r.bus.Name(),
			"alarm_topic_arn": b.arn("sns", r.name, b.name("payment-alarms")),
		}
	}
	return tf.JSONEncode(tf.Raw(tf.Obj{
		"environment":       b.cfg.EnvironmentSuffix,
		"global_cluster_id": b.global.ID(),
		"zone_id":           b.zone.ZoneID(),
		"failover_name":     b.failoverName,
		"sessions_table":    b.table.Name(),
		"dr_role_name":      b.name("payment-dr-automation"),
		"primary":           region(b.primary),
		"secondary":         region(b.secondary),
	}))
}
