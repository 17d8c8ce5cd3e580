package local_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/dr/awsdr"
	"paydr/internal/local/env"
	"paydr/internal/sdkhttp"
)

// The checks of the applied stack through the AWS APIs on the emulator,
// for TestLocalEnvironment.

// awsConfig returns an SDK configuration for region on the emulator, as
// the operator (the emulator enforces IAM).
func awsConfig(m *env.Manifest, region string) aws.Config {
	c := m.OperatorCredentials()
	return aws.Config{
		APIOptions:   sdkhttp.APIOptions(),
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		BaseEndpoint: aws.String(m.Moto.Endpoint),
	}
}

func output(t *testing.T, m *env.Manifest, name string) string {
	t.Helper()
	v := m.OutputString(name)
	if v == "" {
		t.Fatalf("terraform output %s is empty or missing; outputs: %v", name, m.OutputNames())
	}
	return v
}

// checkAWS asserts the applied stack through the AWS APIs on the emulator.
func checkAWS(t *testing.T, m *env.Manifest) {
	ctx := context.Background()
	p, s := m.Regions[env.SlotPrimary], m.Regions[env.SlotSecondary]
	regions := []struct {
		slot   env.Slot
		region string
	}{{env.SlotPrimary, p.Name}, {env.SlotSecondary, s.Name}}

	for _, r := range regions {
		cfg := awsConfig(m, r.region)
		pre := string(r.slot) + "_"
		t.Run(string(r.slot)+"/vpc", func(t *testing.T) {
			id := output(t, m, pre+"vpc_id")
			out, err := ec2.NewFromConfig(cfg).DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: []string{id}})
			if err != nil || len(out.Vpcs) != 1 {
				t.Fatalf("DescribeVpcs(%s) in %s = %v, %v; want 1 VPC", id, r.region, out, err)
			}
		})
		t.Run(string(r.slot)+"/sessions table", func(t *testing.T) {
			name := output(t, m, "sessions_table_name")
			out, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &name})
			if err != nil {
				t.Fatalf("DescribeTable(%s) in %s: %v", name, r.region, err)
			}
			if got := aws.ToString(out.Table.TableName); got != name {
				t.Errorf("table = %q, want %q", got, name)
			}
		})
		t.Run(string(r.slot)+"/processor function", func(t *testing.T) {
			name := output(t, m, pre+"function_name")
			out, err := lambda.NewFromConfig(cfg).GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: &name})
			if err != nil {
				t.Fatalf("GetFunction(%s) in %s: %v", name, r.region, err)
			}
			if got := aws.ToInt32(out.Configuration.MemorySize); got != 1024 {
				t.Errorf("%s MemorySize = %d, want 1024", name, got)
			}
		})
		t.Run(string(r.slot)+"/event bus and rules", func(t *testing.T) {
			name := output(t, m, pre+"event_bus_name")
			eb := eventbridge.NewFromConfig(cfg)
			if _, err := eb.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: &name}); err != nil {
				t.Fatalf("DescribeEventBus(%s) in %s: %v", name, r.region, err)
			}
			rules, err := eb.ListRules(ctx, &eventbridge.ListRulesInput{EventBusName: &name})
			if err != nil || len(rules.Rules) == 0 {
				t.Errorf("ListRules(%s) in %s = %v, %v; want at least one rule", name, r.region, rules, err)
			}
		})
		t.Run(string(r.slot)+"/backup vault", func(t *testing.T) {
			arn := output(t, m, pre+"backup_vault_arn")
			name := arn[strings.LastIndex(arn, ":")+1:]
			if _, err := backup.NewFromConfig(cfg).DescribeBackupVault(ctx, &backup.DescribeBackupVaultInput{BackupVaultName: &name}); err != nil {
				t.Errorf("DescribeBackupVault(%s) in %s: %v", name, r.region, err)
			}
		})
		t.Run(string(r.slot)+"/dashboard", func(t *testing.T) {
			name := output(t, m, pre+"dashboard_name")
			var out struct {
				Body string `xml:"GetDashboardResult>DashboardBody"`
			}
			cloudWatchQuery(t, m, r.region, url.Values{"Action": {"GetDashboard"}, "DashboardName": {name}}, &out)
			if !strings.Contains(out.Body, "widgets") {
				t.Errorf("GetDashboard(%s) in %s body = %q, want widgets", name, r.region, out.Body)
			}
		})
		t.Run(string(r.slot)+"/ssm parameters", func(t *testing.T) {
			var names []string
			if err := m.Output(pre+"parameter_names", &names); err != nil || len(names) == 0 {
				t.Fatalf("output %sparameter_names = %v, %v; want names", pre, names, err)
			}
			out, err := ssm.NewFromConfig(cfg).GetParameters(ctx, &ssm.GetParametersInput{Names: names})
			if err != nil {
				t.Fatalf("GetParameters in %s: %v", r.region, err)
			}
			if len(out.InvalidParameters) > 0 || len(out.Parameters) != len(names) {
				t.Errorf("GetParameters in %s: %d found, invalid %v; want all %d", r.region, len(out.Parameters), out.InvalidParameters, len(names))
			}
		})
		// The topology the stack wrote, parsed as the AWS DR backend reads
		// it (awsdr.Discover, through topology.Parse) in either region.
		t.Run(string(r.slot)+"/dr topology", func(t *testing.T) {
			topo, err := awsdr.Discover(ctx, ssm.NewFromConfig(cfg), m.Suffix)
			if err != nil {
				t.Fatalf("Discover in %s: %v", r.region, err)
			}
			if topo.Primary.Region != p.Name || topo.Secondary.Region != s.Name {
				t.Errorf("topology regions = %s, %s; want %s, %s", topo.Primary.Region, topo.Secondary.Region, p.Name, s.Name)
			}
			if want := "payment-cluster-primary-" + m.Suffix; topo.Primary.ClusterID != want {
				t.Errorf("topology primary cluster = %q, want %q", topo.Primary.ClusterID, want)
			}
			if want := output(t, m, "global_cluster_id"); topo.GlobalClusterID != want {
				t.Errorf("topology global cluster = %q, want the stack's %q", topo.GlobalClusterID, want)
			}
			if topo.Environment != m.Suffix || !strings.HasPrefix(topo.Secondary.FunctionName, "payment-processor") || topo.ZoneID == "" {
				t.Errorf("topology = %+v; want the environment %s, the processor functions and the zone", topo, m.Suffix)
			}
		})
	}

	t.Run("global cluster and members", func(t *testing.T) {
		id := output(t, m, "global_cluster_id")
		out, err := rds.NewFromConfig(awsConfig(m, p.Name)).DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{GlobalClusterIdentifier: &id})
		if err != nil || len(out.GlobalClusters) != 1 {
			t.Fatalf("DescribeGlobalClusters(%s) = %v, %v; want 1", id, out, err)
		}
		members := out.GlobalClusters[0].GlobalClusterMembers
		writers := 0
		for _, mb := range members {
			if aws.ToBool(mb.IsWriter) {
				writers++
			}
		}
		if len(members) != 2 || writers != 1 {
			t.Errorf("global cluster members = %d (writers %d), want 2 (1 writer)", len(members), writers)
		}
		for _, r := range regions {
			cid := output(t, m, string(r.slot)+"_cluster_id")
			if _, err := rds.NewFromConfig(awsConfig(m, r.region)).DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: &cid}); err != nil {
				t.Errorf("DescribeDBClusters(%s) in %s: %v", cid, r.region, err)
			}
		}
	})

	t.Run("failover records and health checks", func(t *testing.T) {
		r53 := route53.NewFromConfig(awsConfig(m, p.Name))
		zone := output(t, m, "hosted_zone_id")
		name := output(t, m, "failover_name")
		recs, err := r53.ListResourceRecordSets(ctx, &route53.ListResourceRecordSetsInput{HostedZoneId: &zone})
		if err != nil {
			t.Fatalf("ListResourceRecordSets(%s): %v", zone, err)
		}
		failover := map[string]string{}
		for _, rr := range recs.ResourceRecordSets {
			if strings.TrimSuffix(aws.ToString(rr.Name), ".") == strings.TrimSuffix(name, ".") && rr.Failover != "" {
				failover[string(rr.Failover)] = aws.ToString(rr.HealthCheckId)
			}
		}
		if len(failover) != 2 || failover["PRIMARY"] == "" {
			t.Fatalf("failover records of %s = %v, want PRIMARY and SECONDARY, the primary with a health check", name, failover)
		}
		for _, slot := range []string{"primary", "secondary"} {
			id := output(t, m, slot+"_health_check_id")
			hc, err := r53.GetHealthCheck(ctx, &route53.GetHealthCheckInput{HealthCheckId: &id})
			if err != nil {
				t.Errorf("GetHealthCheck(%s): %v", id, err)
				continue
			}
			if got := aws.ToString(hc.HealthCheck.HealthCheckConfig.ResourcePath); got != "/health" {
				t.Errorf("%s health check path = %q, want /health", slot, got)
			}
		}
	})

	t.Run("backup plan copy action", func(t *testing.T) {
		id := output(t, m, "backup_plan_id")
		out, err := backup.NewFromConfig(awsConfig(m, p.Name)).GetBackupPlan(ctx, &backup.GetBackupPlanInput{BackupPlanId: &id})
		if err != nil {
			t.Fatalf("GetBackupPlan(%s): %v", id, err)
		}
		copies := 0
		for _, r := range out.BackupPlan.Rules {
			for _, c := range r.CopyActions {
				if strings.Contains(aws.ToString(c.DestinationBackupVaultArn), s.Name) {
					copies++
				}
			}
		}
		if copies == 0 {
			t.Errorf("backup plan %s has no copy action to a vault in %s", id, s.Name)
		}
	})

	t.Run("replication lag alarm at 60s", func(t *testing.T) {
		found := false
		for _, r := range regions {
			var out struct {
				Alarms []struct {
					Name      string  `xml:"AlarmName"`
					Metric    string  `xml:"MetricName"`
					Threshold float64 `xml:"Threshold"`
				} `xml:"DescribeAlarmsResult>MetricAlarms>member"`
			}
			cloudWatchQuery(t, m, r.region, url.Values{"Action": {"DescribeAlarms"}, "MaxRecords": {"100"}}, &out)
			for _, a := range out.Alarms {
				if a.Metric == "AuroraGlobalDBReplicationLag" {
					found = true
					if a.Threshold != 60000 {
						t.Errorf("alarm %s in %s threshold = %v ms, want 60000 (60 s)", a.Name, r.region, a.Threshold)
					}
				}
			}
		}
		if !found {
			t.Errorf("no AuroraGlobalDBReplicationLag alarm in either region")
		}
	})

	t.Run("dr role", func(t *testing.T) {
		arn := output(t, m, "dr_role_arn")
		name := arn[strings.LastIndex(arn, "/")+1:]
		if _, err := iam.NewFromConfig(awsConfig(m, p.Name)).GetRole(ctx, &iam.GetRoleInput{RoleName: &name}); err != nil {
			t.Errorf("GetRole(%s): %v", name, err)
		}
	})
}

// cloudWatchQuery calls a CloudWatch action with the Query protocol and
// decodes its XML answer into out. The SDK's CloudWatch client speaks the
// Smithy RPC v2 CBOR protocol, which moto 5.2 does not; the Terraform
// provider, like this helper, uses the Query protocol.
func cloudWatchQuery(t *testing.T, m *env.Manifest, region string, params url.Values, out any) {
	t.Helper()
	params.Set("Version", "2010-08-01")
	body := params.Encode()
	req, err := http.NewRequest(http.MethodPost, m.Moto.Endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	sum := sha256.Sum256([]byte(body))
	op := m.OperatorCredentials()
	creds := aws.Credentials{AccessKeyID: op.AccessKeyID, SecretAccessKey: op.SecretAccessKey, SessionToken: op.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "monitoring", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("cloudwatch %s in %s: %v", params.Get("Action"), region, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cloudwatch %s in %s = HTTP %d %s", params.Get("Action"), region, resp.StatusCode, b)
	}
	if err := xml.Unmarshal(b, out); err != nil {
		t.Fatalf("cloudwatch %s in %s: decode %s: %v", params.Get("Action"), region, b, err)
	}
}
