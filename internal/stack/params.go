package stack

import (
	"reflect"
	"strings"

	"paydr/internal/apikey"
	"paydr/internal/tf"
	"paydr/internal/tf/aws"
	"paydr/internal/topology"
)

// paramPrefix is the SSM path every parameter of the environment lives under.
func (b *builder) paramPrefix() string { return "/paydr/" + b.cfg.EnvironmentSuffix }

// params declares, in both regions, the parameters the processor and DR
// automation read: endpoints, table and bus names, the payments API key
// (paydr/internal/apikey: a SecureString under the region's KMS key,
// generated and written write-only, never a literal nor in state, the same
// value in both regions; --api-key-version rotates it), and the DR
// topology, so failover finds everything it needs in the surviving region.
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
		name := apikey.ParameterName(b.cfg.EnvironmentSuffix)
		r.params["api/key"] = aws.NewSSMParameter(r.scope, id+"_api_key", aws.SSMParameterArgs{
			Name:           tf.S(name),
			Description:    tf.S("API key of the payments API"),
			Type:           tf.S("SecureString"),
			KeyID:          r.kmsKeyARN,
			ValueWo:        apiKey.RandomPassword(),
			ValueWoVersion: tf.N(b.cfg.APIKeyVersion),
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
// dr/topology parameter (paydr/internal/topology): no Terraform state, no
// primary-region endpoint. It is written from the same type awsdr reads.
func (b *builder) topology() tf.String {
	side := func(r *region) topology.SideOf[tf.String] {
		return topology.SideOf[tf.String]{
			Region:                tf.S(r.name),
			ClusterID:             tf.S(r.clusterIdentifier),
			FunctionName:          tf.S(r.functionName),
			HealthCheckID:         r.healthCheck.ID(),
			APIEndpoint:           r.api.APIEndpoint(),
			RecordTarget:          r.recordTarget,
			ClusterParameterGroup: r.clusterParams.Name(),
			EventBus:              r.bus.Name(),
			AlarmTopicARN:         b.arn("sns", r.name, b.name("payment-alarms")),
		}
	}
	return tf.JSONEncode(tf.Raw(objOf(topology.Of[tf.String]{
		Environment:     tf.S(b.cfg.EnvironmentSuffix),
		GlobalClusterID: b.global.ID(),
		ZoneID:          b.zoneID,
		FailoverName:    tf.S(b.failoverName),
		SessionsTable:   b.table.Name(),
		DRRoleName:      tf.S(b.name("payment-dr-automation")),
		RPOBoundSeconds: b.cfg.RPOBoundSeconds,
		Primary:         side(b.primary),
		Secondary:       side(b.secondary),
	})))
}

// objOf renders a struct whose fields are tf.String or such structs as an
// object keyed by the fields' JSON names, leaving unset strings out.
func objOf(v any) tf.Obj {
	rv := reflect.ValueOf(v)
	out := tf.Obj{}
	for i := range rv.NumField() {
		name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
		switch x := rv.Field(i).Interface().(type) {
		case tf.String:
			if x.IsSet() {
				out[name] = x
			}
		case int:
			if x != 0 {
				out[name] = x
			}
		default:
			out[name] = objOf(x)
		}
	}
	return out
}
