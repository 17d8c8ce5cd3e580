package stack

import (
	"testing"

	"paydr/internal/apikey"
)

// TestAPIKey: the payments API key is one ephemeral random value written
// write-only into a SecureString of each region under that region's key
// (never a value in the configuration or the state); each processor is
// told its name and may read exactly its own region's parameter; the DR
// role may read it in both regions (the verify payment carries it); and
// --api-key-version rotates it.
func TestAPIKey(t *testing.T) {
	cfg := Defaults()
	cfg.APIKeyVersion = 3
	d := parse(t, synth(t, cfg))
	name := apikey.ParameterName(cfg.EnvironmentSuffix)
	kms := map[string]string{"primary": "${aws_kms_key.primary.arn}", "secondary": "${aws_kms_replica_key.secondary.arn}"}
	region := map[string]string{"primary": cfg.PrimaryRegion, "secondary": cfg.SecondaryRegion}
	for _, id := range []string{"primary", "secondary"} {
		p := d.res(t, "aws_ssm_parameter", id+"_api_key")
		eq(t, id+" api key name", p["name"], name)
		eq(t, id+" api key type", p["type"], "SecureString")
		eq(t, id+" api key kms key", p["key_id"], kms[id])
		eq(t, id+" api key value_wo", p["value_wo"], "${ephemeral.aws_secretsmanager_random_password.api_key.random_password}")
		eq(t, id+" api key version", p["value_wo_version"], float64(3))
		if _, ok := p["value"]; ok {
			t.Errorf("%s api key has a value argument: it would be stored in state", id)
		}

		env := d.res(t, "aws_lambda_function", id+"_processor")["environment"].([]any)[0].(map[string]any)["variables"].(map[string]any)
		eq(t, id+" processor PAYDR_API_KEY_PARAM", env["PAYDR_API_KEY_PARAM"], name)

		var got []map[string]any
		for _, s := range statements(t, document(t, d.res(t, "aws_iam_role_policy", id+"_processor")["policy"])) {
			if s["Sid"] == "APIKey" {
				got = append(got, s)
			}
		}
		want := []map[string]any{{"Sid": "APIKey", "Effect": "Allow", "Action": []any{"ssm:GetParameter"},
			"Resource": []any{"arn:${data.aws_partition.current.partition}:ssm:" + region[id] + ":${data.aws_caller_identity.current.account_id}:parameter" + name}}}
		eq(t, id+" processor policy APIKey statement", got, want)
	}
	var got []map[string]any
	for _, s := range statements(t, document(t, d.res(t, "aws_iam_role_policy", "dr_automation")["policy"])) {
		if s["Sid"] == "APIKey" {
			got = append(got, s)
		}
	}
	want := []map[string]any{{"Sid": "APIKey", "Effect": "Allow", "Action": []any{"ssm:GetParameter"}, "Resource": []any{
		"arn:${data.aws_partition.current.partition}:ssm:" + cfg.PrimaryRegion + ":${data.aws_caller_identity.current.account_id}:parameter" + name,
		"arn:${data.aws_partition.current.partition}:ssm:" + cfg.SecondaryRegion + ":${data.aws_caller_identity.current.account_id}:parameter" + name,
	}}}
	eq(t, "dr policy APIKey statement", got, want)

	bad := Defaults()
	bad.APIKeyVersion = 0
	if err := bad.Validate(); err == nil {
		t.Errorf("Validate(APIKeyVersion 0) = nil, want an error naming --api-key-version")
	}
}
