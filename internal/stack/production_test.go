package stack

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// The tests below are issue 12's "production-grade on AWS" defects that
// live in the stack, one test each.

// TestDMSVPCRoleIsOptIn: dms-vpc-role is one per account, so a stack that
// creates it by default fails with EntityAlreadyExists in every account
// that has it (another environment's, or the console's).
func TestDMSVPCRoleIsOptIn(t *testing.T) {
	st, err := Build(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Synth()
	if err != nil {
		t.Fatal(err)
	}
	d := parse(t, b)
	for name, r := range d.all("aws_iam_role") {
		if r.(map[string]any)["name"] == "dms-vpc-role" {
			t.Errorf("aws_iam_role.%s creates dms-vpc-role by default; it exists once per account", name)
		}
	}
	if !slices.ContainsFunc(st.Notes, func(n string) bool { return strings.Contains(n, "dms-vpc-role") }) {
		t.Errorf("notes = %q, want one saying DMS needs the account's dms-vpc-role and how to create it", st.Notes)
	}

	c := Defaults()
	c.DMSCreateVPCRole = true
	on := parse(t, synth(t, c))
	eq(t, "opted-in role", on.res(t, "aws_iam_role", "dms_vpc")["name"], "dms-vpc-role")
	eq(t, "subnet group waits for the role's policy", on.res(t, "aws_dms_replication_subnet_group", "main")["depends_on"], []any{"aws_iam_role_policy_attachment.dms_vpc"})
}

// TestReplicationAlarmsOnMissingData: a lag alarm that treats missing data
// as fine never fires when replication stops altogether, because then the
// lag is not published at all.
func TestReplicationAlarmsOnMissingData(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for _, id := range []string{"primary", "secondary"} {
		// The writer's region never publishes the Aurora lag metrics: the
		// threshold alarms leave missing data alone ...
		for _, a := range []string{"replication_lag", "rpo_lag"} {
			eq(t, id+" "+a+" missing data", d.res(t, "aws_cloudwatch_metric_alarm", id+"_"+a)["treat_missing_data"], "notBreaching")
		}
		// ... and "replication stopped" is its own alarm: this region's
		// cluster neither receives replication (no lag published) nor holds
		// the writer.
		receives := d.res(t, "aws_cloudwatch_metric_alarm", id+"_no_replication_received")
		eq(t, id+" replication received metric", receives["metric_name"], "AuroraGlobalDBReplicationLag")
		eq(t, id+" no lag published is breaching", receives["treat_missing_data"], "breaching")
		writer := d.res(t, "aws_cloudwatch_metric_alarm", id+"_no_writer")
		eq(t, id+" writer dimension", writer["dimensions"], map[string]any{"DBClusterIdentifier": "payment-cluster-" + id + "-dev", "Role": "WRITER"})
		eq(t, id+" no writer is breaching", writer["treat_missing_data"], "breaching")
		for _, a := range []map[string]any{receives, writer} {
			if a["alarm_actions"] != nil {
				t.Errorf("%s component alarm %s notifies on its own; only the composite should", id, a["alarm_name"])
			}
		}
		stopped := d.res(t, "aws_cloudwatch_composite_alarm", id+"_replication_stopped")
		eq(t, id+" stopped rule", stopped["alarm_rule"], `ALARM("${aws_cloudwatch_metric_alarm.`+id+`_no_replication_received.alarm_name}") AND ALARM("${aws_cloudwatch_metric_alarm.`+id+`_no_writer.alarm_name}")`)
		eq(t, id+" stopped notifies", stopped["alarm_actions"], []any{"${aws_sns_topic." + id + "_alarms.arn}"})
		// DynamoDB publishes replication latency only while items
		// replicate: an idle table publishes nothing.
		eq(t, id+" table replication missing data", d.res(t, "aws_cloudwatch_metric_alarm", id+"_table_replication")["treat_missing_data"], "notBreaching")
	}
	// moto 5.2 has no composite alarms: the local target leaves the set out.
	local := parse(t, synth(t, localConfig()))
	if n := len(local.all("aws_cloudwatch_composite_alarm")); n != 0 {
		t.Errorf("local target declares %d composite alarms; moto does not implement PutCompositeAlarm", n)
	}
	if _, ok := local.all("aws_cloudwatch_metric_alarm")["primary_no_replication_received"]; ok {
		t.Error("local target declares the replication-stopped components without their composite")
	}
}

// TestHealthAlarmWhenNoRegionIsHealthy: /health is 503 on the standby by
// design, so a per-region health alarm is in ALARM in steady state. The
// alarm that means something is "no region answers healthy".
func TestHealthAlarmWhenNoRegionIsHealthy(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	for name, a := range d.all("aws_cloudwatch_metric_alarm") {
		if a.(map[string]any)["metric_name"] == "HealthCheckStatus" {
			t.Errorf("aws_cloudwatch_metric_alarm.%s alarms on one region's health check; the standby's is unhealthy by design", name)
		}
	}
	a := d.res(t, "aws_cloudwatch_metric_alarm", "no_healthy_region")
	eq(t, "no-healthy-region alarm in us-east-1, where Route 53 publishes", a["provider"], "aws")
	eq(t, "threshold", []any{a["comparison_operator"], a["threshold"], a["treat_missing_data"]}, []any{"LessThanThreshold", float64(1), "breaching"})
	queries := a["metric_query"].([]any)
	ids := map[string]string{}
	for _, q := range queries {
		qm := q.(map[string]any)
		if m, ok := qm["metric"].([]any); ok {
			ids[qm["id"].(string)] = m[0].(map[string]any)["dimensions"].(map[string]any)["HealthCheckId"].(string)
		} else {
			eq(t, "expression", qm["expression"], "MAX([primary, secondary])")
			eq(t, "expression returns", qm["return_data"], true)
		}
	}
	eq(t, "health checks", ids, map[string]string{"primary": "${aws_route53_health_check.primary.id}", "secondary": "${aws_route53_health_check.secondary.id}"})
}

// TestLogGroupsEncrypted: every log group is encrypted with its region's
// key, whose policy lets that region's CloudWatch Logs use it for this
// account's log groups only.
func TestLogGroupsEncrypted(t *testing.T) {
	for name, c := range map[string]Config{"defaults": Defaults(), "local": localConfig()} {
		t.Run(name, func(t *testing.T) {
			d := parse(t, synth(t, c))
			keyOf := map[string]string{"aws": "${aws_kms_key.primary.arn}", "aws.secondary": "${aws_kms_replica_key.secondary.arn}"}
			if c.Target == TargetLocal {
				keyOf["aws.secondary"] = "${aws_kms_key.secondary.arn}"
			}
			for lg, r := range d.all("aws_cloudwatch_log_group") {
				rm := r.(map[string]any)
				p := rm["provider"].(string)
				eq(t, "aws_cloudwatch_log_group."+lg+" kms_key_id", rm["kms_key_id"], keyOf[p])
			}
			keys := map[string]string{"us-east-1": "primary", "us-west-2": "secondary"}
			for region, id := range keys {
				typ := "aws_kms_key"
				if id == "secondary" && c.Target != TargetLocal {
					typ = "aws_kms_replica_key"
				}
				found := false
				for _, s := range statements(t, document(t, d.res(t, typ, id)["policy"])) {
					svc, _ := s["Principal"].(map[string]any)["Service"].(string)
					if svc != "logs."+region+".amazonaws.com" {
						continue
					}
					found = true
					eq(t, id+" logs condition", s["Condition"], map[string]any{"ArnLike": map[string]any{
						"kms:EncryptionContext:aws:logs:arn": "arn:${data.aws_partition.current.partition}:logs:" + region + ":${data.aws_caller_identity.current.account_id}:log-group:*",
					}})
				}
				if !found {
					t.Errorf("%s.%s policy does not let logs.%s.amazonaws.com use the key", typ, id, region)
				}
			}
		})
	}
}

// TestServiceRoleTrustIsScopedToTheAccount: a role a service assumes on the
// account's behalf names the account (aws:SourceAccount), and the source
// resources where they are known, against the confused deputy.
func TestServiceRoleTrustIsScopedToTheAccount(t *testing.T) {
	c := Defaults()
	c.DMSCreateVPCRole = true
	d := parse(t, synth(t, c))
	const account = "${data.aws_caller_identity.current.account_id}"
	wantSourceARN := map[string]any{
		"events_forward_primary":   "${aws_cloudwatch_event_rule.forward_primary.arn}",
		"events_forward_secondary": "${aws_cloudwatch_event_rule.forward_secondary.arn}",
		"primary_flow_logs":        "arn:${data.aws_partition.current.partition}:ec2:us-east-1:" + account + ":vpc-flow-log/*",
		"secondary_flow_logs":      "arn:${data.aws_partition.current.partition}:ec2:us-west-2:" + account + ":vpc-flow-log/*",
		"dr_automation":            "arn:${data.aws_partition.current.partition}:ssm:*:" + account + ":automation-execution/*",
	}
	services := 0
	for name, r := range d.all("aws_iam_role") {
		for _, s := range statements(t, document(t, r.(map[string]any)["assume_role_policy"])) {
			if _, ok := s["Principal"].(map[string]any)["Service"]; !ok {
				continue
			}
			services++
			cond, _ := s["Condition"].(map[string]any)
			eq(t, name+" aws:SourceAccount", cond["StringEquals"], map[string]any{"aws:SourceAccount": account})
			if want, ok := wantSourceARN[name]; ok {
				eq(t, name+" aws:SourceArn", cond["ArnLike"], map[string]any{"aws:SourceArn": want})
			}
		}
	}
	if services < 8 {
		t.Errorf("found %d service trust statements, want one per service role (backup, dms, 2 events, 2 flow logs, 2 processors, ssm)", services)
	}
}

// TestEngineVersionNeverPlansADowngrade: with auto minor upgrades on, AWS
// moves the clusters past the pinned version and the next plan tries to go
// back. The version is pinned and upgraded deliberately instead, through
// the global cluster.
func TestEngineVersionNeverPlansADowngrade(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	eq(t, "global cluster pins the version", d.res(t, "aws_rds_global_cluster", "payment")["engine_version"], "15.8")
	for name, inst := range d.all("aws_rds_cluster_instance") {
		eq(t, name+" auto minor upgrade", inst.(map[string]any)["auto_minor_version_upgrade"], false)
	}
	for _, id := range []string{"primary", "secondary"} {
		lc := d.res(t, "aws_rds_cluster", id)["lifecycle"].(map[string]any)
		if !slices.Contains(lc["ignore_changes"].([]any), any("engine_version")) {
			t.Errorf("%s cluster ignore_changes = %v, want engine_version (the global cluster upgrades its members)", id, lc["ignore_changes"])
		}
	}
}

// TestZonePrivateUnderReservedNames: a name under a TLD reserved for
// private use is never delegated, so its zone is private, associated with
// both VPCs; a domain the user owns gets a public zone.
func TestZonePrivateUnderReservedNames(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	z := d.res(t, "aws_route53_zone", "main")
	eq(t, "zone", z["name"], "migration-dev.internal")
	eq(t, "associated with both VPCs", z["vpc"], []any{
		map[string]any{"vpc_id": "${aws_vpc.primary.id}", "vpc_region": "us-east-1"},
		map[string]any{"vpc_id": "${aws_vpc.secondary.id}", "vpc_region": "us-west-2"},
	})
	// Failover records with health checks work in a private zone; the
	// checks reach the public execute-api endpoints.
	for _, id := range []string{"primary", "secondary"} {
		rec := d.res(t, "aws_route53_record", "api_"+id)
		eq(t, id+" record zone", rec["zone_id"], "${aws_route53_zone.main.zone_id}")
		eq(t, id+" record health check", rec["health_check_id"], "${aws_route53_health_check."+id+".id}")
	}

	public := parse(t, synth(t, allVars())).res(t, "aws_route53_zone", "main")
	eq(t, "owned domain", public["name"], "payments.acme-corp.io")
	if public["vpc"] != nil {
		t.Errorf("zone of an owned domain is private: %v", public["vpc"])
	}

	c := Defaults()
	c.Route53Domain = "pay.corp.local"
	eq(t, ".local is private", parse(t, synth(t, c)).res(t, "aws_route53_zone", "main")["vpc"] != nil, true)
}

// TestPublicZoneUnderReservedTLDRefused: asked for a public zone under a
// reserved TLD, Build refuses, naming the settings. Names reserved for
// documentation and testing are refused for any zone (reserved-domain).
func TestPublicZoneUnderReservedTLDRefused(t *testing.T) {
	for _, tt := range []struct{ domain, rule string }{
		{"migration-dev.internal", "public-zone-reserved-name"},
		{"pay.corp.local", "public-zone-reserved-name"},
		{"pay.home.arpa", "public-zone-reserved-name"},
		{"pay.test", "reserved-domain"},
		{"pay.example", "reserved-domain"},
		{"pay.invalid", "reserved-domain"},
		{"pay.localhost", "reserved-domain"},
	} {
		c := Defaults()
		c.Route53Domain = tt.domain
		c.Route53Zone = ZonePublic
		_, err := Build(c)
		var pe PreflightError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "aws_route53_zone.main.name: ["+tt.rule+"]") || !strings.Contains(err.Error(), "ROUTE53_DOMAIN") ||
			tt.rule == "public-zone-reserved-name" && !strings.Contains(err.Error(), "ROUTE53_ZONE") {
			t.Errorf("Build(public %s) = %v, want the %s finding on aws_route53_zone.main.name naming the settings", tt.domain, err, tt.rule)
		}
		// A public zone gets certificates, which no authority issues for such a name.
		for _, id := range []string{"primary", "secondary"} {
			if want := "aws_acm_certificate." + id + ".domain_name: [certificate-reserved-name]"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Build(public %s) = %v, want %s", tt.domain, err, want)
			}
		}
	}
	// The rule on its own: a private zone under .internal passes.
	s := tf.NewStack("Z")
	aws.NewRoute53Zone(s, "private", aws.Route53ZoneArgs{Name: tf.S("a.internal"), VPC: []aws.Route53ZoneVPC{{VPCID: tf.S("vpc-1")}}})
	if err := Preflight(s); err != nil {
		t.Errorf("Preflight(private a.internal) = %v, want nil", err)
	}
}
