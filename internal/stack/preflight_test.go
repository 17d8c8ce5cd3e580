package stack

import (
	"errors"
	"strings"
	"testing"

	"paydr/internal/tf"
	"paydr/internal/tf/aws"
)

// TestPreflightRules shows each rule firing on the mistake it exists for.
func TestPreflightRules(t *testing.T) {
	cluster := func(s *tf.Stack, name string, args aws.RDSClusterArgs) *aws.RDSCluster {
		args.Engine = tf.S("aurora-postgresql")
		return aws.NewRDSCluster(s, name, args)
	}
	tests := []struct {
		rule  string
		build func(s *tf.Stack)
		want  string // the finding's address
	}{
		{"global-cluster-backtrack", func(s *tf.Stack) {
			cluster(s, "c", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g"), BacktrackWindow: tf.N(3600), MasterUsername: tf.S("u")})
		}, "aws_rds_cluster.c.backtrack_window"},
		{"route-destination", func(s *tf.Stack) {
			aws.NewRoute(s, "r", aws.RouteArgs{RouteTableID: tf.S("rtb-1"), GatewayID: tf.S("igw-1")})
		}, "aws_route.r"},
		{"route-destination", func(s *tf.Stack) {
			aws.NewRouteTable(s, "rt", aws.RouteTableArgs{VPCID: tf.S("vpc-1"), Route: []aws.RouteTableRoute{{GatewayID: tf.S("igw-1")}}})
		}, "aws_route_table.rt.route[0]"},
		{"dms-engine-version", func(s *tf.Stack) {
			aws.NewDMSReplicationInstance(s, "d", aws.DMSReplicationInstanceArgs{
				ReplicationInstanceID: tf.S("d"), ReplicationInstanceClass: tf.S("dms.t3.medium"), EngineVersion: tf.S("3.4.6"),
			})
		}, "aws_dms_replication_instance.d.engine_version"},
		{"reserved-domain", func(s *tf.Stack) {
			aws.NewRoute53Zone(s, "z", aws.Route53ZoneArgs{Name: tf.S("payments.example.com")})
		}, "aws_route53_zone.z.name"},
		{"public-zone-reserved-name", func(s *tf.Stack) {
			aws.NewRoute53Zone(s, "z", aws.Route53ZoneArgs{Name: tf.S("payments.corp.internal")})
		}, "aws_route53_zone.z.name"},
		{"certificate-reserved-name", func(s *tf.Stack) {
			aws.NewACMCertificate(s, "c", aws.ACMCertificateArgs{DomainName: tf.S("api.migration-dev.internal"), ValidationMethod: tf.S("DNS")})
		}, "aws_acm_certificate.c.domain_name"},
		{"duplicate-security-group-rule", func(s *tf.Stack) {
			for _, n := range []string{"a", "b"} {
				aws.NewVPCSecurityGroupIngressRule(s, n, aws.VPCSecurityGroupIngressRuleArgs{
					SecurityGroupID: tf.S("sg-1"), IPProtocol: tf.S("tcp"), FromPort: tf.N(5432), ToPort: tf.N(5432),
					CIDRIPv4: tf.S("10.0.0.0/16"), Description: tf.S(n),
				})
			}
		}, "aws_vpc_security_group_ingress_rule.b"},
		{"duplicate-security-group-rule", func(s *tf.Stack) {
			rule := aws.SecurityGroupIngress{Protocol: tf.S("6"), FromPort: tf.N(443), ToPort: tf.N(443), CIDRBlocks: tf.Strings("0.0.0.0/0"), Description: tf.S("x")}
			alias := rule
			alias.Protocol = tf.S("tcp")
			aws.NewSecurityGroup(s, "sg", aws.SecurityGroupArgs{Name: tf.S("sg"), Ingress: []aws.SecurityGroupIngress{rule, alias}})
		}, "aws_security_group.sg.ingress[1]"},
		{"security-group-rule-description", func(s *tf.Stack) {
			aws.NewVPCSecurityGroupEgressRule(s, "e", aws.VPCSecurityGroupEgressRuleArgs{
				SecurityGroupID: tf.S("sg-1"), IPProtocol: tf.S("-1"), CIDRIPv4: tf.S("0.0.0.0/0"),
			})
		}, "aws_vpc_security_group_egress_rule.e.description"},
		{"managed-password-global-cluster", func(s *tf.Stack) {
			cluster(s, "c", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g"), MasterUsername: tf.S("u"), ManageMasterUserPassword: tf.B(true)})
		}, "aws_rds_cluster.c.manage_master_user_password"},
		{"global-cluster-credentials", func(s *tf.Stack) {
			cluster(s, "a", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g"), MasterUsername: tf.S("u"), MasterPasswordWo: tf.S("p")})
			cluster(s, "b", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g"), MasterUsername: tf.S("u"), MasterPasswordWo: tf.S("p")})
		}, "aws_rds_cluster.b.master_password_wo"},
		{"secondary-waits-for-primary", func(s *tf.Stack) {
			p := cluster(s, "p", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g"), MasterUsername: tf.S("u")})
			aws.NewRDSClusterInstance(s, "p1", aws.RDSClusterInstanceArgs{ClusterIdentifier: p.ID(), InstanceClass: tf.S("db.r5.large"), Engine: tf.S("aurora-postgresql")})
			cluster(s, "s", aws.RDSClusterArgs{GlobalClusterIdentifier: tf.S("g")})
		}, "aws_rds_cluster.s.depends_on"},
		{"plaintext-secret", func(s *tf.Stack) {
			aws.NewSSMParameter(s, "k", aws.SSMParameterArgs{Name: tf.S("/k"), Type: tf.S("SecureString"), Value: tf.S("hunter2")})
		}, "aws_ssm_parameter.k.value"},
		{"plaintext-secret", func(s *tf.Stack) {
			cluster(s, "c", aws.RDSClusterArgs{MasterUsername: tf.S("u"), MasterPassword: tf.S("hunter2")})
		}, "aws_rds_cluster.c.master_password"},
		{"vpc-cidr-overlap", func(s *tf.Stack) {
			aws.NewVPC(s, "a", aws.VPCArgs{CIDRBlock: tf.S("10.0.0.0/16")})
			aws.NewVPC(s, "b", aws.VPCArgs{CIDRBlock: tf.S("10.0.128.0/17")})
		}, "aws_vpc.b.cidr_block"},
		{"replica-in-own-region", func(s *tf.Stack) {
			aws.NewProvider(s, "", aws.ProviderArgs{Region: tf.S("us-east-1")})
			aws.NewDynamoDBTable(s, "t", aws.DynamoDBTableArgs{
				Name: tf.S("t"), HashKey: tf.S("pk"),
				Replica: []aws.DynamoDBTableReplica{{RegionName: tf.S("us-east-1")}},
			})
		}, "aws_dynamodb_table.t.replica[0].region_name"},
		{"alarm-topic-managed-key", func(s *tf.Stack) {
			aws.NewSNSTopic(s, "alarms", aws.SNSTopicArgs{Name: tf.S("alarms"), KMSMasterKeyID: tf.S("alias/aws/sns")})
		}, "aws_sns_topic.alarms.kms_master_key_id"},
	}
	fired := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			s := tf.NewStack("Preflight")
			tt.build(s)
			err := Preflight(s)
			var pe PreflightError
			if !errors.As(err, &pe) {
				t.Fatalf("Preflight() = %v, want a PreflightError from rule %s", err, tt.rule)
			}
			for _, f := range pe.Findings {
				if f.Address == tt.want && strings.Contains(f.Message, "["+tt.rule+"]") {
					fired[tt.rule] = true
					return
				}
			}
			t.Errorf("Preflight() findings:\n%v\nwant one at %s from rule %s", err, tt.want, tt.rule)
		})
	}
	for _, r := range Rules {
		if !fired[r.Name] {
			t.Errorf("rule %s has no test that shows it firing", r.Name)
		}
	}
}

// TestPreflightPassesCorrectStack checks that the neighbours of each mistake
// pass: the stack itself, a zero backtrack window, a known DMS version.
func TestPreflightPassesCorrectStack(t *testing.T) {
	for _, c := range []Config{Defaults(), allVars(), localConfig()} {
		if _, err := Build(c); err != nil {
			t.Errorf("Build(%s) = %v", c.EnvironmentSuffix, err)
		}
	}
	s := tf.NewStack("OK")
	aws.NewRDSCluster(s, "c", aws.RDSClusterArgs{Engine: tf.S("aurora-mysql"), BacktrackWindow: tf.N(0)})
	aws.NewDMSReplicationInstance(s, "d", aws.DMSReplicationInstanceArgs{
		ReplicationInstanceID: tf.S("d"), ReplicationInstanceClass: tf.S("dms.t3.medium"), EngineVersion: tf.S("3.5.4"),
	})
	aws.NewRoute53Zone(s, "z", aws.Route53ZoneArgs{Name: tf.S("notexample.com")})
	if err := Preflight(s); err != nil {
		t.Errorf("Preflight() = %v, want nil", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"suffix", func(c *Config) { c.EnvironmentSuffix = "Dev_1" }, "ENVIRONMENT_SUFFIX (--suffix)"},
		{"bucket", func(c *Config) { c.StateBucket = "Bad_Bucket" }, "TERRAFORM_STATE_BUCKET"},
		{"region", func(c *Config) { c.PrimaryRegion = "useast1" }, "--primary-region"},
		{"same regions", func(c *Config) { c.SecondaryRegion = c.PrimaryRegion }, "--secondary-region"},
		{"domain", func(c *Config) { c.Route53Domain = "not a domain" }, "ROUTE53_DOMAIN (--domain)"},
		{"instance class", func(c *Config) { c.DBInstanceClass = "r5.large" }, "--db-instance-class"},
		{"health interval", func(c *Config) { c.HealthCheckInterval = 5 }, "--health-check-interval"},
		{"rpo bound below Aurora's minimum", func(c *Config) { c.RPOBoundSeconds = 19 }, "--rpo-bound-seconds: Aurora's rds.global_db_rpo takes 20 to 2147483647 seconds, got 19"},
		{"rpo bound unset", func(c *Config) { c.RPOBoundSeconds = 0 }, "--rpo-bound-seconds"},
		{"engine version", func(c *Config) { c.DBEngineVersion = "latest" }, "--db-engine-version"},
		{"zone type", func(c *Config) { c.Route53Zone = "secret" }, "ROUTE53_ZONE"},
		{"zone id lower case", func(c *Config) { c.Route53Domain, c.Route53ZoneID = "pay.acme-corp.io", "z0123456789abc" }, "ROUTE53_ZONE_ID (--zone-id): \"z0123456789abc\" is not a Route 53 hosted zone id"},
		{"zone id with its path", func(c *Config) { c.Route53Domain, c.Route53ZoneID = "pay.acme-corp.io", "/hostedzone/Z0123456789ABC" }, "ROUTE53_ZONE_ID (--zone-id): \"/hostedzone/Z0123456789ABC\" is not"},
		{"zone id too long", func(c *Config) { c.Route53Domain, c.Route53ZoneID = "pay.acme-corp.io", "Z"+strings.Repeat("A", 32) }, "ROUTE53_ZONE_ID (--zone-id)"},
		{"zone id without a domain", func(c *Config) { c.Route53ZoneID = "Z0123456789ABC" }, "ROUTE53_ZONE_ID (--zone-id): an existing zone is used only with the domain it holds: set ROUTE53_DOMAIN"},
		{"zone id under .internal", func(c *Config) { c.Route53Domain, c.Route53ZoneID = "pay.corp.internal", "Z0123456789ABC" }, "ROUTE53_ZONE_ID (--zone-id): \"pay.corp.internal\" is under a reserved name (.internal)"},
		{"zone id under example.com", func(c *Config) { c.Route53Domain, c.Route53ZoneID = "pay.example.com", "Z0123456789ABC" }, "is under a reserved name (.example.com)"},
		{"zone id with a private zone", func(c *Config) {
			c.Route53Domain, c.Route53Zone, c.Route53ZoneID = "pay.acme-corp.io", ZonePrivate, "Z0123456789ABC"
		}, "ROUTE53_ZONE_ID (--zone-id): an existing zone is used only for a public domain, and ROUTE53_ZONE is private"},
		{"local without endpoint", func(c *Config) { c.Target = TargetLocal }, "--endpoint"},
		{"local with a public domain", func(c *Config) {
			c.Target, c.Endpoint, c.Route53Domain = TargetLocal, "http://127.0.0.1:5000", "pay.acme-corp.io"
		}, "ROUTE53_DOMAIN (--domain): the local target takes only a private zone"},
		{"local with an existing zone", func(c *Config) {
			c.Target, c.Endpoint, c.Route53Domain, c.Route53ZoneID = TargetLocal, "http://127.0.0.1:5000", "pay.acme-corp.io", "Z0123456789ABC"
		}, "the local target takes only a private zone"},
		{"target", func(c *Config) { c.Target = "gcp" }, "--target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Defaults()
			tt.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	for _, c := range []Config{Defaults(), existingZoneConfig(), localConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
	if c := FromEnv(func(k string) string { return map[string]string{"ROUTE53_ZONE_ID": "Z0123456789ABC"}[k] }); c.Route53ZoneID != "Z0123456789ABC" {
		t.Errorf("FromEnv(ROUTE53_ZONE_ID=Z0123456789ABC).Route53ZoneID = %q", c.Route53ZoneID)
	}
}

func TestReservedDomainRefusedAtBuild(t *testing.T) {
	c := Defaults()
	c.Route53Domain = "example.com"
	_, err := Build(c)
	if err == nil || !strings.Contains(err.Error(), "[reserved-domain]") || !strings.Contains(err.Error(), "aws_route53_zone.main.name") {
		t.Errorf("Build(example.com) = %v, want the reserved-domain finding on aws_route53_zone.main.name", err)
	}
}
