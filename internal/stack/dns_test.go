package stack

import (
	"slices"
	"strings"
	"testing"
)

// The failover name's two shapes (dns.go): a private zone with CNAMEs to the
// execute-api hosts, and a public domain served by certificates and custom
// domains in both regions behind failover alias records.

func TestPrivateFailoverName(t *testing.T) {
	st, err := Build(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(st.Notes, func(n string) bool {
		return strings.Contains(n, "only inside the stack's two VPCs") && strings.Contains(n, "fails certificate verification") && strings.Contains(n, "ROUTE53_DOMAIN")
	}) {
		t.Errorf("notes = %q, want one saying who can reach the private name, that HTTPS through it fails verification, and what to set instead", st.Notes)
	}
	d := parse(t, synth(t, Defaults()))
	for _, typ := range []string{"aws_acm_certificate", "aws_acm_certificate_validation", "aws_apigatewayv2_domain_name", "aws_apigatewayv2_api_mapping"} {
		if n := len(d.all(typ)); n != 0 {
			t.Errorf("private shape declares %d %s, want none (no certificate authority issues for a reserved name)", n, typ)
		}
	}
	if vpcs, _ := d.res(t, "aws_route53_zone", "main")["vpc"].([]any); len(vpcs) != 2 {
		t.Errorf("zone vpc = %v, want the two regions' VPCs", vpcs)
	}
	for _, id := range []string{"primary", "secondary"} {
		rec := d.res(t, "aws_route53_record", "api_"+id)
		eq(t, id+" record type", rec["type"], "CNAME")
		eq(t, id+" record target", rec["records"], []any{`${replace(aws_apigatewayv2_api.` + id + `.api_endpoint, "https://", "")}`})
		if rec["alias"] != nil {
			t.Errorf("%s record is an alias in the private shape", id)
		}
		topo := d.res(t, "aws_ssm_parameter", id+"_dr_topology")["value"].(string)
		if strings.Contains(topo, "record_target") {
			t.Errorf("%s topology names a record_target, want none (the record answers the execute-api host): %s", id, topo)
		}
	}
}

func TestPublicFailoverName(t *testing.T) {
	for _, tt := range []struct {
		name   string
		c      Config
		zoneID string // the records' zone_id
	}{
		{"created zone", allVars(), "${aws_route53_zone.main.zone_id}"},
		{"existing zone", existingZoneConfig(), "Z0123456789ABCDEFGHIJ"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := "api." + tt.c.Domain()
			st, err := Build(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			d := parse(t, synth(t, tt.c))
			zones, outs := d.all("aws_route53_zone"), d["output"].(map[string]any)
			if tt.c.Route53ZoneID == "" {
				if zone := d.res(t, "aws_route53_zone", "main"); zone["vpc"] != nil {
					t.Errorf("zone of a public domain is private: %v", zone["vpc"])
				}
				if outs["hosted_zone_name_servers"] == nil || !strings.Contains(outs["hosted_zone_name_servers"].(map[string]any)["description"].(string), "NS records") {
					t.Errorf("output hosted_zone_name_servers = %v, want the name servers to delegate to", outs["hosted_zone_name_servers"])
				}
			} else {
				if len(zones) != 0 {
					t.Errorf("with ROUTE53_ZONE_ID the stack declares zones %v, want none", zones)
				}
				if outs["hosted_zone_name_servers"] != nil {
					t.Error("with ROUTE53_ZONE_ID the stack outputs name servers of a zone it did not create")
				}
			}
			eq(t, "hosted_zone_id output", outs["hosted_zone_id"].(map[string]any)["value"], tt.zoneID)
			if !slices.ContainsFunc(st.Notes, func(n string) bool {
				return strings.Contains(n, "waits") && strings.Contains(n, "certificates are issued")
			}) {
				t.Errorf("notes = %q, want one saying the apply waits for the certificates", st.Notes)
			}

			// One validation record, from the primary's certificate, validates both.
			validation := d.res(t, "aws_route53_record", "certificate_validation")
			eq(t, "validation record zone", validation["zone_id"], tt.zoneID)
			eq(t, "validation record name", validation["name"], "${tolist(aws_acm_certificate.primary.domain_validation_options)[0].resource_record_name}")
			eq(t, "validation record overwrites its identical twin", validation["allow_overwrite"], true)
			eq(t, "records", len(d.all("aws_route53_record")), 3)

			provider := map[string]string{"primary": "aws", "secondary": "aws.secondary"}
			roles := map[string]bool{}
			for _, id := range []string{"primary", "secondary"} {
				cert := d.res(t, "aws_acm_certificate", id)
				eq(t, id+" certificate", []any{cert["domain_name"], cert["validation_method"], cert["provider"]}, []any{name, "DNS", provider[id]})
				eq(t, id+" certificate lifecycle", cert["lifecycle"], map[string]any{"create_before_destroy": true})
				v := d.res(t, "aws_acm_certificate_validation", id)
				eq(t, id+" validation", []any{v["certificate_arn"], v["provider"]}, []any{"${aws_acm_certificate." + id + ".arn}", provider[id]})
				eq(t, id+" validation record", v["validation_record_fqdns"], []any{"${aws_route53_record.certificate_validation.fqdn}"})

				dn := d.res(t, "aws_apigatewayv2_domain_name", id)
				eq(t, id+" custom domain", []any{dn["domain_name"], dn["provider"]}, []any{name, provider[id]})
				eq(t, id+" custom domain configuration", block(t, dn, "domain_name_configuration"), map[string]any{
					"certificate_arn": "${aws_acm_certificate_validation." + id + ".certificate_arn}",
					"endpoint_type":   "REGIONAL", "security_policy": "TLS_1_2", "ip_address_type": "ipv4",
				})
				m := d.res(t, "aws_apigatewayv2_api_mapping", id)
				eq(t, id+" mapping", m, map[string]any{
					"api_id": "${aws_apigatewayv2_api." + id + ".id}", "domain_name": "${aws_apigatewayv2_domain_name." + id + ".id}",
					"stage": "${aws_apigatewayv2_stage." + id + ".id}", "provider": provider[id],
				})

				rec := d.res(t, "aws_route53_record", "api_"+id)
				eq(t, id+" record", []any{rec["name"], rec["type"], rec["zone_id"], rec["set_identifier"]}, []any{name, "A", tt.zoneID, id})
				if rec["records"] != nil || rec["ttl"] != nil {
					t.Errorf("%s record has records %v and ttl %v, want an alias only", id, rec["records"], rec["ttl"])
				}
				eq(t, id+" alias", block(t, rec, "alias"), map[string]any{
					"name":                   "${aws_apigatewayv2_domain_name." + id + ".domain_name_configuration[0].target_domain_name}",
					"zone_id":                "${aws_apigatewayv2_domain_name." + id + ".domain_name_configuration[0].hosted_zone_id}",
					"evaluate_target_health": false,
				})
				eq(t, id+" health check", rec["health_check_id"], "${aws_route53_health_check."+id+".id}")
				roles[block(t, rec, "failover_routing_policy")["type"].(string)] = true
				// The checks still probe the region's own execute-api host.
				eq(t, id+" health check host", d.res(t, "aws_route53_health_check", id)["fqdn"], `${replace(aws_apigatewayv2_api.`+id+`.api_endpoint, "https://", "")}`)

				topo := d.res(t, "aws_ssm_parameter", "primary_dr_topology")["value"].(string)
				if want := `"record_target" = aws_apigatewayv2_domain_name.` + id + `.domain_name_configuration[0].target_domain_name`; !strings.Contains(topo, want) {
					t.Errorf("topology lacks %s:\n%s", want, topo)
				}
			}
			eq(t, "failover roles", roles, map[string]bool{"PRIMARY": true, "SECONDARY": true})
		})
	}
}

// TestFailoverNameResourceCounts pins how many resources each shape adds:
// the public one has, per region, a certificate, its validation, a custom
// domain and its mapping, and one shared validation record; an existing
// zone saves the zone.
func TestFailoverNameResourceCounts(t *testing.T) {
	count := func(c Config) int {
		t.Helper()
		c.EnableDMS = false // the same in every configuration compared
		st, err := Build(c)
		if err != nil {
			t.Fatal(err)
		}
		return st.Resources()
	}
	private := count(Defaults())
	public := Defaults()
	public.Route53Domain = "pay.acme-corp.io"
	existing := public
	existing.Route53ZoneID = "Z0123456789ABCDEFGHIJ"
	eq(t, "public minus private", count(public)-private, 9)
	eq(t, "existing zone minus public", count(existing)-count(public), -1)
}
