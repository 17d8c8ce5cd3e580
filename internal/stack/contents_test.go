package stack

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"paydr/internal/ledger"
	"paydr/internal/topology"
)

// The tests below assert each part of the stack on the synthesized JSON, one
// test per bullet of the design.

func TestStateBackend(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	s3 := d["terraform"].(map[string]any)["backend"].(map[string]any)["s3"].(map[string]any)
	eq(t, "s3 backend", s3, map[string]any{
		"bucket": "iac-rlhf-tf-states", "key": "tap/dev/terraform.tfstate", "region": "us-east-1",
		"encrypt": true, "use_lockfile": true, "dynamodb_table": "iac-rlhf-tf-state-locks",
	})
	rp := d["terraform"].(map[string]any)["required_providers"].(map[string]any)["aws"]
	eq(t, "aws provider pin", rp, map[string]any{"source": "hashicorp/aws", "version": "5.100.0"})

	all := parse(t, synth(t, allVars()))
	s3 = all["terraform"].(map[string]any)["backend"].(map[string]any)["s3"].(map[string]any)
	eq(t, "bucket from env", s3["bucket"], "acme-tf-states")
	eq(t, "key from env", s3["key"], "tap/prod/terraform.tfstate")
	eq(t, "region from env", s3["region"], "eu-west-1")
}

func TestProviderDefaultTags(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    Config
		want map[string]any
	}{
		{"defaults", Defaults(), map[string]any{"Environment": "dev", "Repository": "unknown", "Author": "unknown", "PRNumber": "unknown", "Team": "unknown"}},
		{"all vars", allVars(), map[string]any{"Environment": "prod", "Repository": "acme/payments", "Author": "sre-bot", "PRNumber": "1234", "Team": "payments-sre", "CreatedAt": "2026-11-25T00:00:00Z"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := parse(t, synth(t, tt.c))
			provs := d["provider"].(map[string]any)["aws"].([]any)
			if len(provs) != 2 {
				t.Fatalf("%d aws provider configurations, want 2", len(provs))
			}
			regions := []any{}
			for _, p := range provs {
				pm := p.(map[string]any)
				regions = append(regions, pm["region"])
				eq(t, "default tags", block(t, pm, "default_tags")["tags"], tt.want)
			}
			eq(t, "provider regions", regions, []any{tt.c.PrimaryRegion, tt.c.SecondaryRegion})
		})
	}
}

func TestNamesCarryTheSuffix(t *testing.T) {
	d := parse(t, synth(t, allVars()))
	eq(t, "table", d.res(t, "aws_dynamodb_table", "sessions")["name"], "payment-sessions-prod")
	eq(t, "primary cluster", d.res(t, "aws_rds_cluster", "primary")["cluster_identifier"], "payment-cluster-primary-prod")
	eq(t, "secondary cluster", d.res(t, "aws_rds_cluster", "secondary")["cluster_identifier"], "payment-cluster-secondary-prod")
	eq(t, "function", d.res(t, "aws_lambda_function", "primary_processor")["function_name"], "payment-processor-prod")
	eq(t, "zone", d.res(t, "aws_route53_zone", "main")["name"], "payments.acme-corp.io")
	// Every literal "name" or "*_name"/"*identifier" argument ends in the suffix.
	for typ, rs := range d["resource"].(map[string]any) {
		for name, body := range rs.(map[string]any) {
			for k, v := range body.(map[string]any) {
				s, ok := v.(string)
				if !ok || strings.Contains(s, "${") || (k != "name" && k != "function_name" && k != "cluster_identifier" && k != "identifier" && k != "alarm_name" && k != "dashboard_name" && k != "global_cluster_identifier") {
					continue
				}
				if typ == "aws_iam_role" && s == "dms-vpc-role" || typ == "aws_route53_zone" || typ == "aws_apigatewayv2_stage" || typ == "aws_iam_role_policy" || typ == "aws_route53_record" {
					continue
				}
				if !strings.Contains(s, "prod") {
					t.Errorf("%s.%s %s = %q lacks the environment suffix", typ, name, k, s)
				}
			}
		}
	}
}

func TestNetwork(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	var cidrs []netip.Prefix
	for _, id := range []string{"primary", "secondary"} {
		vpc := d.res(t, "aws_vpc", id)
		p := netip.MustParsePrefix(vpc["cidr_block"].(string))
		for _, o := range cidrs {
			if o.Overlaps(p) {
				t.Errorf("VPC CIDRs %s and %s overlap", o, p)
			}
		}
		cidrs = append(cidrs, p)
		for i := range 3 {
			for _, kind := range []string{"public", "private"} {
				sn := d.res(t, "aws_subnet", fmt.Sprintf("%s_%s_%d", id, kind, i))
				eq(t, "subnet az", sn["availability_zone"], fmt.Sprintf("${data.aws_availability_zones.%s.names[%d]}", id, i))
				if !p.Contains(netip.MustParsePrefix(sn["cidr_block"].(string)).Addr()) {
					t.Errorf("subnet %s_%s_%d outside its VPC", id, kind, i)
				}
			}
			d.res(t, "aws_route_table_association", fmt.Sprintf("%s_public_%d", id, i))
			d.res(t, "aws_route_table_association", fmt.Sprintf("%s_private_%d", id, i))
		}
		d.res(t, "aws_internet_gateway", id)
		eq(t, "nat eip", d.res(t, "aws_eip", id+"_nat")["domain"], "vpc")
		eq(t, "nat subnet", d.res(t, "aws_nat_gateway", id)["subnet_id"], "${aws_subnet."+id+"_public_0.id}")
		eq(t, "public route", d.res(t, "aws_route", id+"_public_internet")["destination_cidr_block"], "0.0.0.0/0")
		eq(t, "private route via nat", d.res(t, "aws_route", id+"_private_nat")["nat_gateway_id"], "${aws_nat_gateway."+id+".id}")
		for _, svc := range []string{"dynamodb", "s3"} {
			ep := d.res(t, "aws_vpc_endpoint", id+"_"+svc)
			eq(t, svc+" endpoint type", ep["vpc_endpoint_type"], "Gateway")
		}
		fl := d.res(t, "aws_flow_log", id)
		eq(t, "flow log traffic", fl["traffic_type"], "ALL")
	}
	if n := len(d.all("aws_nat_gateway")); n != 2 {
		t.Errorf("%d NAT gateways, want one per region", n)
	}
	for name, r := range d.all("aws_route") {
		rm := r.(map[string]any)
		if rm["destination_cidr_block"] == nil && rm["destination_ipv6_cidr_block"] == nil && rm["destination_prefix_list_id"] == nil {
			t.Errorf("route %s has no destination", name)
		}
	}
}

func TestSecurityGroups(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	seen := map[string]string{}
	for _, typ := range []string{"aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"} {
		for name, r := range d.all(typ) {
			rm := r.(map[string]any)
			if rm["description"] == nil || rm["description"] == "" {
				t.Errorf("%s.%s has no description", typ, name)
			}
			key := fmt.Sprint(typ, rm["security_group_id"], rm["ip_protocol"], rm["from_port"], rm["to_port"], rm["cidr_ipv4"], rm["referenced_security_group_id"])
			if prev, dup := seen[key]; dup {
				t.Errorf("%s.%s duplicates %s", typ, name, prev)
			}
			seen[key] = name
		}
	}
	for _, id := range []string{"primary", "secondary"} {
		ingress := map[string]bool{}
		for _, r := range d.all("aws_vpc_security_group_ingress_rule") {
			rm := r.(map[string]any)
			if rm["security_group_id"] == "${aws_security_group."+id+"_aurora.id}" {
				eq(t, "aurora port", rm["from_port"], float64(5432))
				if rm["cidr_ipv4"] != nil {
					t.Errorf("Aurora open to a CIDR: %v", rm["cidr_ipv4"])
				}
				ingress[rm["referenced_security_group_id"].(string)] = true
			}
		}
		eq(t, "aurora ingress sources", ingress, map[string]bool{
			"${aws_security_group." + id + "_processor.id}": true,
			"${aws_security_group." + id + "_dms.id}":       true,
		})
	}
}

func TestAurora(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	g := d.res(t, "aws_rds_global_cluster", "payment")
	eq(t, "engine", g["engine"], "aurora-postgresql")
	eq(t, "global storage encrypted", g["storage_encrypted"], true)
	eq(t, "dev deletion protection", g["deletion_protection"], false)

	p := d.res(t, "aws_rds_cluster", "primary")
	s := d.res(t, "aws_rds_cluster", "secondary")
	for name, c := range map[string]map[string]any{"primary": p, "secondary": s} {
		eq(t, name+" global member", c["global_cluster_identifier"], "${aws_rds_global_cluster.payment.id}")
		eq(t, name+" backups", c["backup_retention_period"], float64(7))
		eq(t, name+" encrypted", c["storage_encrypted"], true)
		if c["backtrack_window"] != nil {
			t.Errorf("%s sets backtrack_window", name)
		}
		if c["manage_master_user_password"] != nil || c["master_password"] != nil {
			t.Errorf("%s sets a managed or plain master password", name)
		}
		eq(t, name+" ignore_changes", c["lifecycle"].(map[string]any)["ignore_changes"], []any{"global_cluster_identifier", "replication_source_identifier", "engine_version"})
	}
	eq(t, "primary key", p["kms_key_id"], "${aws_kms_key.primary.arn}")
	eq(t, "secondary key", s["kms_key_id"], "${aws_kms_replica_key.secondary.arn}")
	eq(t, "primary password is write-only", p["master_password_wo"], "${ephemeral.aws_secretsmanager_random_password.db_master.random_password}")
	if s["master_password_wo"] != nil || s["master_username"] != nil {
		t.Error("secondary cluster takes credentials; it would be rejected")
	}
	eq(t, "secondary waits for the primary instances", s["depends_on"], []any{"aws_rds_cluster_instance.primary_1", "aws_rds_cluster_instance.primary_2"})
	eq(t, "writer", d.res(t, "aws_rds_cluster_instance", "primary_1")["instance_class"], "db.r5.large")
	eq(t, "reader", d.res(t, "aws_rds_cluster_instance", "primary_2")["cluster_identifier"], "${aws_rds_cluster.primary.id}")
	eq(t, "secondary instance", d.res(t, "aws_rds_cluster_instance", "secondary_1")["cluster_identifier"], "${aws_rds_cluster.secondary.id}")
	if len(d.all("aws_rds_cluster_instance")) != 3 {
		t.Errorf("%d instances, want 2 primary + 1 secondary", len(d.all("aws_rds_cluster_instance")))
	}
	// Server certificates from the CA whose roots the processor's bundle
	// carries (TestGlobalBundle checks them there).
	for _, name := range []string{"primary_1", "primary_2", "secondary_1"} {
		eq(t, name+" certificate authority", d.res(t, "aws_rds_cluster_instance", name)["ca_cert_identifier"], "rds-ca-rsa2048-g1")
	}
	// Locally moto has no RDS CAs (see LocalGaps): left out.
	for name, inst := range parse(t, synth(t, localConfig())).all("aws_rds_cluster_instance") {
		if v := inst.(map[string]any)["ca_cert_identifier"]; v != nil {
			t.Errorf("local %s ca_cert_identifier = %v, want it left out", name, v)
		}
	}
	eq(t, "multi-region key", d.res(t, "aws_kms_key", "primary")["multi_region"], true)
	eq(t, "replica of it", d.res(t, "aws_kms_replica_key", "secondary")["primary_key_arn"], "${aws_kms_key.primary.arn}")

	// One cluster parameter group per cluster: TLS required on both, the
	// bound on loss on the writer's only; its parameters are DR
	// automation's after creation.
	for name, c := range map[string]map[string]any{"primary": p, "secondary": s} {
		eq(t, name+" parameter group", c["db_cluster_parameter_group_name"], "${aws_rds_cluster_parameter_group."+name+".name}")
		g := d.res(t, "aws_rds_cluster_parameter_group", name)
		eq(t, name+" parameter family", g["family"], "aurora-postgresql15")
		eq(t, name+" parameter group lifecycle", g["lifecycle"], map[string]any{"ignore_changes": []any{"parameter"}, "create_before_destroy": true})
		want := []any{map[string]any{"name": "rds.force_ssl", "value": "1", "apply_method": "immediate"}}
		if name == "primary" {
			want = append(want, map[string]any{"name": "rds.global_db_rpo", "value": "300", "apply_method": "immediate"})
		}
		eq(t, name+" parameters", g["parameter"], want)
	}

	all := parse(t, synth(t, allVars()))
	eq(t, "family of the engine's major version", all.res(t, "aws_rds_cluster_parameter_group", "secondary")["family"], "aurora-postgresql16")
	eq(t, "configured bound", all.res(t, "aws_rds_cluster_parameter_group", "primary")["parameter"].([]any)[1], map[string]any{"name": "rds.global_db_rpo", "value": "60", "apply_method": "immediate"})
	eq(t, "configurable class", all.res(t, "aws_rds_cluster_instance", "primary_1")["instance_class"], "db.r6g.xlarge")
	eq(t, "deletion protection outside dev", all.res(t, "aws_rds_cluster", "primary")["deletion_protection"], true)
	eq(t, "final snapshot outside dev", all.res(t, "aws_rds_cluster", "primary")["final_snapshot_identifier"], "payment-cluster-primary-prod-final")
}

func TestNoSecretsInConfiguration(t *testing.T) {
	b := string(synth(t, Defaults()))
	for _, bad := range []string{`"master_password":`, `"secret_string":`, `"value": "`} {
		if strings.Contains(b, bad) && bad != `"value": "` {
			t.Errorf("configuration contains %s", bad)
		}
	}
	d := parse(t, []byte(b))
	v := d.res(t, "aws_secretsmanager_secret_version", "db")
	if v["secret_string"] != nil {
		t.Error("secret version stores its value in state")
	}
	if !strings.Contains(v["secret_string_wo"].(string), "ephemeral.aws_secretsmanager_random_password.db_master") {
		t.Errorf("secret_string_wo = %v, want the ephemeral password", v["secret_string_wo"])
	}
	eq(t, "secret replicated to the standby", block(t, d.res(t, "aws_secretsmanager_secret", "db"), "replica")["region"], "us-west-2")
	for name, p := range d.all("aws_ssm_parameter") {
		pm := p.(map[string]any)
		if pm["type"] == "SecureString" {
			if pm["value"] != nil {
				t.Errorf("SecureString %s has a value in state", name)
			}
			if pm["value_wo"] == nil {
				t.Errorf("SecureString %s has no value_wo", name)
			}
		}
	}
}

func TestSessionTable(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	tb := d.res(t, "aws_dynamodb_table", "sessions")
	eq(t, "on demand", tb["billing_mode"], "PAY_PER_REQUEST")
	eq(t, "keys", []any{tb["hash_key"], tb["range_key"]}, []any{"pk", "sk"})
	eq(t, "pitr", block(t, tb, "point_in_time_recovery")["enabled"], true)
	eq(t, "sse", block(t, tb, "server_side_encryption"), map[string]any{"enabled": true, "kms_key_arn": "${aws_kms_key.primary.arn}"})
	eq(t, "streams", []any{tb["stream_enabled"], tb["stream_view_type"]}, []any{true, "NEW_AND_OLD_IMAGES"})
	eq(t, "ttl", block(t, tb, "ttl"), map[string]any{"attribute_name": "expires_at", "enabled": true})
	eq(t, "replica", block(t, tb, "replica"), map[string]any{
		"region_name": "us-west-2", "kms_key_arn": "${aws_kms_replica_key.secondary.arn}",
		"point_in_time_recovery": true, "propagate_tags": true,
	})
	all := parse(t, synth(t, allVars()))
	eq(t, "deletion protection outside dev", all.res(t, "aws_dynamodb_table", "sessions")["deletion_protection_enabled"], true)

	local := parse(t, synth(t, localConfig()))
	if local.res(t, "aws_dynamodb_table", "sessions")["replica"] != nil {
		t.Error("local target declares a replica, which hangs on moto")
	}
	eq(t, "local secondary table", local.res(t, "aws_dynamodb_table", "sessions_secondary")["provider"], "aws.secondary")
}

func TestProcessor(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, id := range []string{"primary", "secondary"} {
		f := d.res(t, "aws_lambda_function", id+"_processor")
		eq(t, "runtime", f["runtime"], "provided.al2023")
		eq(t, "arch", f["architectures"], []any{"arm64"})
		eq(t, "memory", f["memory_size"], float64(1024))
		eq(t, "tracing", block(t, f, "tracing_config")["mode"], "Active")
		eq(t, "package", f["filename"], "${path.module}/processor.zip")
		eq(t, "hash follows the package", f["source_code_hash"], `${filebase64sha256("${path.module}/processor.zip")}`)
		// A DR fence is PutFunctionConcurrency(0); an apply that managed
		// the setting would lift it (DeleteFunctionConcurrency).
		if f["reserved_concurrent_executions"] != nil {
			t.Errorf("%s processor sets reserved_concurrent_executions = %v; DR owns it (the fence)", id, f["reserved_concurrent_executions"])
		}
		lc, _ := f["lifecycle"].(map[string]any)
		eq(t, id+" processor ignore_changes", lc["ignore_changes"], []any{"reserved_concurrent_executions"})
		vpc := block(t, f, "vpc_config")
		eq(t, "private subnets", vpc["subnet_ids"], []any{
			"${aws_subnet." + id + "_private_0.id}", "${aws_subnet." + id + "_private_1.id}", "${aws_subnet." + id + "_private_2.id}",
		})
		eq(t, "log group retention", d.res(t, "aws_cloudwatch_log_group", id+"_processor")["retention_in_days"], float64(30))
		env := block(t, f, "environment")["variables"].(map[string]any)
		eq(t, "verifies the database with the bundle in the package", env["PAYDR_DB_CA_FILE"], "/var/task/rds-ca-bundle.pem")
		for _, k := range []string{"PAYDR_REGION", "PAYDR_SESSIONS_TABLE", "PAYDR_EVENT_BUS", "PAYDR_DB_HOST", "PAYDR_DB_SECRET_ARN", "PAYDR_DB_CA_FILE"} {
			if env[k] == nil {
				t.Errorf("%s processor lacks %s", id, k)
			}
		}
		eq(t, "writes through the global writer endpoint", env["PAYDR_DB_HOST"], "${aws_rds_global_cluster.payment.endpoint}")
		pol := jsonString(t, d.res(t, "aws_iam_role_policy", id+"_processor")["policy"])
		if pol != nil {
			t.Fatalf("%s processor policy is literal; it must reference its resources", id)
		}
		// Least privilege: no wildcard resource except for X-Ray.
		src := d.res(t, "aws_iam_role_policy", id+"_processor")["policy"].(string)
		if strings.Count(src, `"Resource" = ["*"]`) != 1 {
			t.Errorf("%s processor policy has %d wildcard resources, want only X-Ray's:\n%s", id, strings.Count(src, `"Resource" = ["*"]`), src)
		}
		for _, want := range []string{"dynamodb:PutItem", "dynamodb:BatchWriteItem", "secretsmanager:GetSecretValue", "events:PutEvents"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s processor policy lacks %s", id, want)
			}
		}
		routes := map[string]bool{}
		for name, r := range d.all("aws_apigatewayv2_route") {
			if strings.HasPrefix(name, id+"_") {
				routes[r.(map[string]any)["route_key"].(string)] = true
			}
		}
		eq(t, "routes", routes, map[string]bool{"POST /payments": true, "GET /health": true})
		eq(t, "api permission", d.res(t, "aws_lambda_permission", id+"_api")["principal"], "apigateway.amazonaws.com")
	}
	sec := d.res(t, "aws_iam_role_policy", "secondary_processor")["policy"].(string)
	if !strings.Contains(sec, `replace(aws_secretsmanager_secret.db_app.arn, ":us-east-1:", ":us-west-2:")`) {
		t.Errorf("secondary processor does not read the application secret's replica in its own region:\n%s", sec)
	}
	// The processors read the application role's secret, never the master
	// user's, and are deployed after the provisioning that makes the role.
	for _, id := range []string{"primary", "secondary"} {
		src := d.res(t, "aws_iam_role_policy", id+"_processor")["policy"].(string)
		if strings.Contains(src, "aws_secretsmanager_secret.db.arn") {
			t.Errorf("%s processor policy grants the master secret:\n%s", id, src)
		}
		f := d.res(t, "aws_lambda_function", id+"_processor")
		env := block(t, f, "environment")["variables"].(map[string]any)
		want := "${aws_secretsmanager_secret.db_app.arn}"
		if id == "secondary" {
			want = `${replace(aws_secretsmanager_secret.db_app.arn, ":us-east-1:", ":us-west-2:")}`
		}
		eq(t, id+" processor's secret", env["PAYDR_DB_SECRET_ARN"], want)
		if env["PAYDR_DB_MASTER_SECRET_ARN"] != nil {
			t.Errorf("%s processor has PAYDR_DB_MASTER_SECRET_ARN", id)
		}
		if !slices.Contains(f["depends_on"].([]any), any("aws_lambda_invocation.provision_ledger")) {
			t.Errorf("%s processor depends_on = %v, want it after aws_lambda_invocation.provision_ledger", id, f["depends_on"])
		}
	}
}

// TestProvisioning: the application role's secret is written write-only
// from an ephemeral password with its own version, KMS-encrypted and
// replicated like the master's; the provisioning function is the
// processor's package in provisioning mode, reads both secrets and nothing
// else, verifies the writer with the RDS bundle, and is invoked with a
// constant input, again when the password version or the package changes.
func TestProvisioning(t *testing.T) {
	cfg := Defaults()
	cfg.DBAppPasswordVersion = 3
	d := parse(t, synth(t, cfg))
	sec := d.res(t, "aws_secretsmanager_secret", "db_app")
	eq(t, "app secret name", sec["name"], "payment-db-app-dev")
	eq(t, "app secret key", sec["kms_key_id"], "${aws_kms_key.primary.arn}")
	eq(t, "app secret replica", sec["replica"], []any{map[string]any{"region": "us-west-2", "kms_key_id": "${aws_kms_replica_key.secondary.arn}"}})
	v := d.res(t, "aws_secretsmanager_secret_version", "db_app")
	eq(t, "app secret write-only", v["secret_string_wo"], `${jsonencode({"dbname" = "payments", "password" = ephemeral.aws_secretsmanager_random_password.db_app.random_password, "username" = "payment_app"})}`)
	eq(t, "app secret version", v["secret_string_wo_version"], float64(3))
	if v["secret_string"] != nil {
		t.Error("the app secret version sets secret_string: the password would be in state")
	}
	fn := d.res(t, "aws_lambda_function", "provisioner")
	eq(t, "same package", fn["filename"], d.res(t, "aws_lambda_function", "primary_processor")["filename"])
	env := block(t, fn, "environment")["variables"].(map[string]any)
	eq(t, "provisioner env", env, map[string]any{
		"PAYDR_MODE": "provision", "PAYDR_REGION": "us-east-1", "PAYDR_DB_HOST": "${aws_rds_global_cluster.payment.endpoint}",
		"PAYDR_DB_PORT": "5432", "PAYDR_DB_NAME": "payments", "PAYDR_DB_CA_FILE": "/var/task/rds-ca-bundle.pem",
		"PAYDR_DB_MASTER_SECRET_ARN": "${aws_secretsmanager_secret.db.arn}", "PAYDR_DB_SECRET_ARN": "${aws_secretsmanager_secret.db_app.arn}",
	})
	eq(t, "provisioner in the private subnets", block(t, fn, "vpc_config")["security_group_ids"], []any{"${aws_security_group.primary_processor.id}"})
	pol := d.res(t, "aws_iam_role_policy", "provisioner")["policy"].(string)
	for _, want := range []string{`"Resource" = [aws_secretsmanager_secret.db.arn, aws_secretsmanager_secret.db_app.arn]`, `"kms:Decrypt"`} {
		if !strings.Contains(pol, want) {
			t.Errorf("provisioner policy lacks %s:\n%s", want, pol)
		}
	}
	// Least privilege: no wildcard resource except X-Ray's (active
	// tracing; X-Ray has no resource-level permissions).
	if strings.Count(pol, `"*"`) != 1 || !strings.Contains(pol, `{"Action" = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Effect" = "Allow", "Resource" = ["*"]`) {
		t.Errorf("provisioner policy has wildcard resources beyond X-Ray's:\n%s", pol)
	}
	eq(t, "provisioner tracing", block(t, fn, "tracing_config")["mode"], "Active")
	inv := d.res(t, "aws_lambda_invocation", "provision_ledger")
	eq(t, "invocation function", inv["function_name"], "${aws_lambda_function.provisioner.function_name}")
	eq(t, "invocation input", inv["input"], `{"paydr":"provision"}`)
	eq(t, "invocation triggers", inv["triggers"], map[string]any{"app_password_version": "3", "package": fn["source_code_hash"]})
	for _, dep := range []string{"aws_secretsmanager_secret_version.db", "aws_secretsmanager_secret_version.db_app", "aws_rds_cluster_instance.primary_1"} {
		if !slices.Contains(inv["depends_on"].([]any), any(dep)) {
			t.Errorf("invocation depends_on = %v, want %s in it", inv["depends_on"], dep)
		}
	}
	// Locally the function is declared, its invocation left out (moto
	// cannot run it): paydr up provisions instead.
	local := parse(t, synth(t, localConfig()))
	local.res(t, "aws_lambda_function", "provisioner")
	if len(local.all("aws_lambda_invocation")) != 0 {
		t.Error("the local target declares an aws_lambda_invocation, which moto cannot run")
	}
	if !slices.ContainsFunc(LocalGaps(), func(g string) bool { return strings.HasPrefix(g, "lambda invocation:") }) {
		t.Error("LocalGaps does not name the provisioning invocation")
	}
}

func TestRoute53(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	eq(t, "zone", d.res(t, "aws_route53_zone", "main")["name"], "migration-dev.internal")
	roles := map[string]bool{}
	for _, id := range []string{"primary", "secondary"} {
		hc := d.res(t, "aws_route53_health_check", id)
		eq(t, "health path", hc["resource_path"], "/health")
		eq(t, "health type", hc["type"], "HTTPS")
		rec := d.res(t, "aws_route53_record", "api_"+id)
		eq(t, "one name", rec["name"], "api.migration-dev.internal")
		eq(t, "ttl", rec["ttl"], float64(60))
		eq(t, "health check", rec["health_check_id"], "${aws_route53_health_check."+id+".id}")
		roles[block(t, rec, "failover_routing_policy")["type"].(string)] = true
	}
	eq(t, "failover roles", roles, map[string]bool{"PRIMARY": true, "SECONDARY": true})
}

func TestEventBridge(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, pair := range [][3]string{{"primary", "secondary", "us-east-1"}, {"secondary", "primary", "us-west-2"}} {
		from, to, region := pair[0], pair[1], pair[2]
		d.res(t, "aws_cloudwatch_event_bus", from)
		rule := d.res(t, "aws_cloudwatch_event_rule", "forward_"+from)
		pattern := jsonString(t, rule["event_pattern"])
		eq(t, "pattern matches only events that originated here", pattern["detail"], map[string]any{"origin_region": []any{region}})
		target := d.res(t, "aws_cloudwatch_event_target", "forward_"+from)
		eq(t, "target is the other bus", target["arn"], "${aws_cloudwatch_event_bus."+to+".arn}")
		eq(t, "through a role", target["role_arn"], "${aws_iam_role.events_forward_"+from+".arn}")
	}
}

func TestOutboxSchedule(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, id := range []string{"primary", "secondary"} {
		rule := d.res(t, "aws_cloudwatch_event_rule", "outbox_"+id)
		eq(t, id+" outbox rule name", rule["name"], "payment-outbox-sweep-"+id+"-dev")
		eq(t, id+" every minute", rule["schedule_expression"], "rate(1 minute)")
		if rule["event_bus_name"] != nil {
			t.Errorf("%s outbox rule is on bus %v; schedules run only on the default bus", id, rule["event_bus_name"])
		}
		target := d.res(t, "aws_cloudwatch_event_target", "outbox_"+id)
		eq(t, id+" target is the processor", target["arn"], "${aws_lambda_function."+id+"_processor.arn}")
		eq(t, id+" target rule", target["rule"], "${aws_cloudwatch_event_rule.outbox_"+id+".name}")
		perm := d.res(t, "aws_lambda_permission", id+"_outbox")
		eq(t, id+" invoked by EventBridge", perm["principal"], "events.amazonaws.com")
		eq(t, id+" only by this rule", perm["source_arn"], "${aws_cloudwatch_event_rule.outbox_"+id+".arn}")
		eq(t, id+" permission's function", perm["function_name"], "${aws_lambda_function."+id+"_processor.function_name}")
	}
}

func TestBackup(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, id := range []string{"primary", "secondary"} {
		v := d.res(t, "aws_backup_vault", id)
		if v["kms_key_arn"] == nil {
			t.Errorf("%s vault not KMS-encrypted", id)
		}
	}
	rule := block(t, d.res(t, "aws_backup_plan", "daily"), "rule")
	eq(t, "schedule", rule["schedule"], "cron(0 5 * * ? *)")
	eq(t, "retention", block(t, rule, "lifecycle")["delete_after"], float64(7))
	ca := block(t, rule, "copy_action")
	eq(t, "copy to secondary", ca["destination_vault_arn"], "${aws_backup_vault.secondary.arn}")
	eq(t, "copy retention", block(t, ca, "lifecycle")["delete_after"], float64(7))
	sel := d.res(t, "aws_backup_selection", "ledger")
	eq(t, "selection", sel["resources"], []any{"${aws_rds_cluster.primary.arn}", "${aws_dynamodb_table.sessions.arn}"})
	if _, ok := parse(t, synth(t, localConfig())).all("aws_backup_selection")["ledger"]; ok {
		t.Error("local target declares a backup selection, which moto cannot create")
	}
}

func TestMonitoring(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, id := range []string{"primary", "secondary"} {
		lag := d.res(t, "aws_cloudwatch_metric_alarm", id+"_replication_lag")
		eq(t, "lag metric", lag["metric_name"], "AuroraGlobalDBReplicationLag")
		eq(t, "lag threshold 60 s in ms", lag["threshold"], float64(60000))
		eq(t, "rpo metric", d.res(t, "aws_cloudwatch_metric_alarm", id+"_rpo_lag")["metric_name"], "AuroraGlobalDBRPOLag")
		eq(t, "processor errors", d.res(t, "aws_cloudwatch_metric_alarm", id+"_processor_errors")["metric_name"], "Errors")
		eq(t, "table replication", d.res(t, "aws_cloudwatch_metric_alarm", id+"_table_replication")["metric_name"], "ReplicationLatency")
		eq(t, "alarm action", lag["alarm_actions"], []any{"${aws_sns_topic." + id + "_alarms.arn}"})
		dash := d.res(t, "aws_cloudwatch_dashboard", id)
		body := dash["dashboard_body"].(string)
		for _, want := range []string{"AuroraGlobalDBReplicationLag", "Invocations", "Errors", "Duration", "ReplicationLatency", "ThrottledRequests", "HealthCheckStatus"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s dashboard lacks %s", id, want)
			}
		}
	}
}

func TestDRRoleAndParameters(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	pol := d.res(t, "aws_iam_role_policy", "dr_automation")["policy"].(string)
	for _, want := range []string{"rds:SwitchoverGlobalCluster", "rds:FailoverGlobalCluster", "lambda:PutFunctionConcurrency", "route53:GetHealthCheckStatus", "aws_rds_global_cluster.payment.arn",
		// The bound on loss, moved with the writer, on the two groups only.
		`{"Action" = ["rds:ModifyDBClusterParameterGroup", "rds:ResetDBClusterParameterGroup", "rds:DescribeDBClusterParameters"], "Effect" = "Allow", "Resource" = [aws_rds_cluster_parameter_group.primary.arn, aws_rds_cluster_parameter_group.secondary.arn]`} {
		if !strings.Contains(pol, want) {
			t.Errorf("DR policy lacks %s", want)
		}
	}
	if strings.Count(pol, `"Resource" = ["*"]`) != 1 {
		t.Errorf("DR policy has wildcard resources beyond CloudWatch's:\n%s", pol)
	}
	for _, id := range []string{"primary", "secondary"} {
		for _, key := range []string{"db_writer_endpoint", "db_reader_endpoint", "sessions_table_name", "events_bus_name", "api_key", "dr_topology"} {
			p := d.res(t, "aws_ssm_parameter", id+"_"+key)
			if id == "secondary" {
				eq(t, key+" in the secondary region", p["provider"], "aws.secondary")
			}
		}
		eq(t, "api key type", d.res(t, "aws_ssm_parameter", id+"_api_key")["type"], "SecureString")
		// The name awsdr discovers the topology by, in both regions.
		eq(t, "topology parameter name", d.res(t, "aws_ssm_parameter", id+"_dr_topology")["name"], topology.ParameterName(Defaults().EnvironmentSuffix))
		// What awsdr needs to move the bound on loss.
		v := d.res(t, "aws_ssm_parameter", id+"_dr_topology")["value"].(string)
		for _, want := range []string{`"rpo_bound_seconds" = 300`, `"cluster_parameter_group" = aws_rds_cluster_parameter_group.primary.name`, `"cluster_parameter_group" = aws_rds_cluster_parameter_group.secondary.name`} {
			if !strings.Contains(v, want) {
				t.Errorf("%s topology lacks %s:\n%s", id, want, v)
			}
		}
	}
}

func TestDMS(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	inst := d.res(t, "aws_dms_replication_instance", "main")
	eq(t, "not public", inst["publicly_accessible"], false)
	eq(t, "minor upgrades", inst["auto_minor_version_upgrade"], true)
	if inst["engine_version"] != nil {
		t.Errorf("engine_version pinned to %v; let AWS choose", inst["engine_version"])
	}
	eq(t, "private subnets", d.res(t, "aws_dms_replication_subnet_group", "main")["subnet_ids"], []any{
		"${aws_subnet.primary_private_0.id}", "${aws_subnet.primary_private_1.id}", "${aws_subnet.primary_private_2.id}",
	})
	off := parse(t, synth(t, allVars()))
	if len(off.all("aws_dms_replication_instance")) != 0 || len(off.all("aws_dms_replication_subnet_group")) != 0 {
		t.Error("DMS declared with EnableDMS false")
	}
}

func TestOutputs(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	outs := d["output"].(map[string]any)
	for _, want := range []string{
		"primary_vpc_id", "secondary_vpc_id", "global_cluster_id", "primary_cluster_endpoint", "secondary_cluster_reader_endpoint",
		"sessions_table_name", "sessions_table_arn", "primary_function_name", "secondary_function_arn", "primary_api_url",
		"hosted_zone_id", "hosted_zone_name_servers", "failover_name", "primary_health_check_id", "secondary_dashboard_name",
		"primary_backup_vault_arn", "secondary_parameter_names", "dr_role_arn",
	} {
		if outs[want] == nil {
			t.Errorf("no output %s", want)
		}
	}
}

func TestLocalTarget(t *testing.T) {
	st, err := Build(localConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Notes) < 3 {
		t.Errorf("local notes = %q, want one per emulator gap", st.Notes)
	}
	d := parse(t, synth(t, localConfig()))
	if _, ok := d["terraform"].(map[string]any)["backend"].(map[string]any)["local"]; !ok {
		t.Error("local target does not use a local backend")
	}
	// The providers reach the emulator through AWS_ENDPOINT_URL, which
	// paydr up sets (tfcli.EmulatorEnv): an endpoints block would cost every
	// provider process seconds of CPU. The root comment says so, with the
	// emulator's URL, and allowed_account_ids holds them to its account.
	for i, p := range d["provider"].(map[string]any)["aws"].([]any) {
		p := p.(map[string]any)
		if p["endpoints"] != nil {
			t.Errorf("provider %d endpoints = %v, want none", i, p["endpoints"])
		}
		eq(t, fmt.Sprintf("provider %d allowed_account_ids", i), fmt.Sprint(p["allowed_account_ids"]), "["+EmulatorAccountID+"]")
	}
	if c, _ := d["//"].(string); !strings.Contains(c, "AWS_ENDPOINT_URL=http://127.0.0.1:5000") {
		t.Errorf("root comment = %q, want how to reach the emulator (AWS_ENDPOINT_URL=http://127.0.0.1:5000)", c)
	}
	if len(d.all("aws_dms_replication_instance")) != 0 {
		t.Error("local target declares a DMS instance")
	}
	if len(d.all("aws_kms_replica_key")) != 0 {
		t.Error("local target declares a KMS replica key, which moto copies shallowly")
	}
	eq(t, "local secondary key", d.res(t, "aws_kms_key", "secondary")["provider"], "aws.secondary")
	eq(t, "local secondary table key", block(t, d.res(t, "aws_dynamodb_table", "sessions_secondary"), "server_side_encryption")["kms_key_arn"], "${aws_kms_key.secondary.arn}")
}

// No security group lets anything out to the internet: the processor and
// DMS reach AWS APIs through the VPC's endpoints (trivy AWS-0104 found the
// 0.0.0.0/0 egress the stack had).
func TestNoEgressToTheInternet(t *testing.T) {
	for name, c := range map[string]Config{"defaults": Defaults(), "local": localConfig()} {
		d := parse(t, synth(t, c))
		rules, _ := d["resource"].(map[string]any)["aws_vpc_security_group_egress_rule"].(map[string]any)
		if len(rules) == 0 {
			t.Fatalf("%s: no egress rules", name)
		}
		for id, v := range rules {
			r := v.(map[string]any)
			if cidr, _ := r["cidr_ipv4"].(string); cidr == "0.0.0.0/0" {
				t.Errorf("%s: aws_vpc_security_group_egress_rule.%s allows egress to 0.0.0.0/0", name, id)
			}
			if cidr, _ := r["cidr_ipv6"].(string); cidr == "::/0" {
				t.Errorf("%s: aws_vpc_security_group_egress_rule.%s allows egress to ::/0", name, id)
			}
		}
		for _, svc := range interfaceEndpoints {
			d.res(t, "aws_vpc_endpoint", "primary_"+svc)
			d.res(t, "aws_vpc_endpoint", "secondary_"+svc)
		}
	}
}

// TestAppUserIsTheLedgers: the role name the stack writes into the
// application secret is the one the ledger provisions and the processor
// connects as.
func TestAppUserIsTheLedgers(t *testing.T) {
	if dbAppUser != ledger.AppUser {
		t.Errorf("stack dbAppUser = %q, ledger.AppUser = %q; want them equal", dbAppUser, ledger.AppUser)
	}
}
