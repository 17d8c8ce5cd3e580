package local_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	"github.com/jackc/pgx/v5"

	"paydr/internal/cli"
	"paydr/internal/local"
	"paydr/internal/local/env"
	"paydr/internal/local/faultproxy"
	"paydr/internal/local/router"
	"paydr/internal/needs"
	"paydr/internal/sessions"
)

// envAsPaydr makes this test binary act as the paydr command, so the
// processes paydr up starts (paydr serve, paydr router, paydr fault-proxy)
// run this very build.
const envAsPaydr = local.EnvTestAsPaydr

func TestMain(m *testing.M) {
	if os.Getenv(envAsPaydr) == "1" {
		os.Exit(cli.Main())
	}
	os.Exit(m.Run())
}

// requireTools skips when a tool paydr up needs is missing, or fails when
// CI is set.
func requireTools(t *testing.T) {
	t.Helper()
	exe, _ := os.Executable()
	_, err := local.CheckPrerequisites(exe, true, nil)
	needs.Tool(t, err)
	if testing.Short() {
		t.Skip("skipping the local environment test in -short mode: paydr up takes about 3 minutes")
	}
}

// stateDir returns a temporary state directory that PostgreSQL's
// unprivileged user can traverse when tests run as root.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		root := filepath.Clean(os.TempDir())
		for p := dir; strings.HasPrefix(p, root+string(filepath.Separator)); p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, fi.Mode().Perm()|0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	return filepath.Join(dir, "state")
}

// logWriter sends progress lines to t.Log.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

// TestLocalEnvironment brings the local environment up once, with the fault
// proxy (--fault-proxy, no rules), and checks it through the AWS APIs on the
// emulator, the Terraform outputs, a payment end to end (its AWS calls
// through the proxy), a second up, status and down. TestFaultProxyStep
// covers the proxy step on its own, and paydr up without the flag.
func TestLocalEnvironment(t *testing.T) {
	requireTools(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := stateDir(t)
	out := &logWriter{t: t}
	opts := local.UpOptions{
		StateDir:       dir,
		Exe:            exe,
		ExeEnv:         []string{envAsPaydr + "=1"},
		HealthInterval: 500 * time.Millisecond,
		FaultProxy:     true,
		Out:            out,
	}
	// Stop short of go test's own timeout, so a slow bring-up fails cleanly
	// and stops what it started instead of leaving detached processes behind.
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if _, err := local.Down(context.Background(), dir, out); err != nil {
				t.Errorf("Down (cleanup) error = %v", err)
			}
		}
	})
	rep, err := local.Up(ctx, opts)
	if err != nil {
		t.Fatalf("Up error = %v", err)
	}
	m := rep.Manifest
	t.Logf("up in %s", rep.Total)
	for _, s := range rep.Steps {
		t.Logf("  step %-60s %s", s.Name, s.Elapsed.Round(10*time.Millisecond))
	}

	t.Run("manifest", func(t *testing.T) {
		got, err := env.Load(dir)
		if err != nil {
			t.Fatalf("env.Load error = %v", err)
		}
		if w, ok := got.Writer(); !ok || w != env.SlotPrimary {
			t.Errorf("Writer() = %q, %v, want primary, true", w, ok)
		}
		if got.Regions[env.SlotPrimary].Name != "us-east-1" || got.Regions[env.SlotSecondary].Name != "us-west-2" {
			t.Errorf("regions = %s, %s, want us-east-1, us-west-2", got.Regions[env.SlotPrimary].Name, got.Regions[env.SlotSecondary].Name)
		}
		if len(got.Gaps) < 5 {
			t.Errorf("Gaps = %q, want the stack's local gaps and paydr up's workarounds", got.Gaps)
		}
		for _, s := range env.Slots {
			r := got.Regions[s]
			if r.Processor.Env["PAYDR_DB_DSN"] != r.Database.DSN {
				t.Errorf("%s processor PAYDR_DB_DSN = %q, want its slot's database %q", s, r.Processor.Env["PAYDR_DB_DSN"], r.Database.DSN)
			}
		}
		if got.FaultProxy == nil || got.FaultProxy.Upstream != got.Moto.Endpoint {
			t.Fatalf("FaultProxy = %+v, want a proxy in front of moto %s", got.FaultProxy, got.Moto.Endpoint)
		}
		for _, s := range env.Slots {
			if ep := got.Regions[s].Processor.Env["PAYDR_AWS_ENDPOINT"]; ep != got.FaultProxy.URL {
				t.Errorf("%s processor PAYDR_AWS_ENDPOINT = %q, want the fault proxy %q", s, ep, got.FaultProxy.URL)
			}
		}
		if got.Router.FailureThreshold != 3 || time.Duration(got.Router.HealthInterval) != 500*time.Millisecond {
			t.Errorf("router settings = %s/%d, want 500ms/3", time.Duration(got.Router.HealthInterval), got.Router.FailureThreshold)
		}
	})

	t.Run("aws", func(t *testing.T) { checkAWS(t, m) })
	t.Run("payment end to end", func(t *testing.T) { checkPayment(t, m) })
	t.Run("processors reach AWS through the fault proxy", func(t *testing.T) { checkThroughProxy(t, m) })
	t.Run("plan after a switchover moves nothing back", func(t *testing.T) { checkPlanAfterSwitchover(t, ctx, m) })
	t.Run("plan after a fence keeps the processors fenced", func(t *testing.T) { checkPlanAfterFence(t, ctx, m) })

	t.Run("up again adopts everything", func(t *testing.T) {
		start := time.Now()
		again, err := local.Up(ctx, opts)
		if err != nil {
			t.Fatalf("second Up error = %v", err)
		}
		if again.Apply != nil {
			t.Errorf("second Up applied again (%d changes); want apply skipped for an unchanged stack", again.Apply.Done)
		}
		for _, s := range env.Slots {
			if a, b := again.Manifest.Regions[s].Processor.PID, m.Regions[s].Processor.PID; a != b {
				t.Errorf("%s processor pid = %d after second up, want %d (adopted)", s, a, b)
			}
		}
		if a, b := again.Manifest.Router.PID, m.Router.PID; a != b {
			t.Errorf("router pid = %d after second up, want %d (adopted)", a, b)
		}
		if a, b := again.Manifest.FaultProxy.PID, m.FaultProxy.PID; a != b {
			t.Errorf("fault proxy pid = %d after second up, want %d (adopted)", a, b)
		}
		t.Logf("second up in %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("status", func(t *testing.T) {
		st, err := local.GetStatus(ctx, dir)
		if err != nil {
			t.Fatalf("GetStatus error = %v", err)
		}
		var b strings.Builder
		local.PrintStatus(&b, st)
		t.Log("\n" + b.String())
		if !st.Up || st.Writer != env.SlotPrimary || len(st.Components) != 7 {
			t.Errorf("status up=%v writer=%q components=%d, want true primary 7 (with the fault proxy)", st.Up, st.Writer, len(st.Components))
		}
	})

	t.Run("down", func(t *testing.T) {
		var pids []int
		var ports []int
		pids = append(pids, m.Moto.PID, m.Router.PID, m.FaultProxy.PID)
		ports = append(ports, m.Moto.Port, m.Router.Port, m.FaultProxy.Port)
		for _, s := range env.Slots {
			r := m.Regions[s]
			pids = append(pids, r.Processor.PID, r.Database.PID)
			ports = append(ports, r.Processor.Port, r.Database.Port)
		}
		start := time.Now()
		drep, err := local.Down(ctx, dir, out)
		downDone = true
		if err != nil {
			t.Fatalf("Down error = %v", err)
		}
		elapsed := time.Since(start)
		t.Logf("down in %s: %s", elapsed.Round(time.Millisecond), strings.Join(drep.Stopped, ", "))
		if elapsed > 10*time.Second {
			t.Errorf("Down took %s, want under 10s", elapsed)
		}
		if len(drep.Stopped) != 7 {
			t.Errorf("Down stopped %d pieces (%v), want 7", len(drep.Stopped), drep.Stopped)
		}
		for _, pid := range pids {
			if pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) {
				t.Errorf("pid %d still runs after Down", pid)
			}
		}
		for _, p := range ports {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 300*time.Millisecond); err == nil {
				c.Close()
				t.Errorf("port %d still accepts connections after Down", p)
			}
		}
		if _, err := env.Load(dir); err == nil {
			t.Errorf("env.Load after Down = nil error, want ErrNoManifest")
		}
	})
}

// checkThroughProxy asserts that the processors' DynamoDB calls (the
// session written for a payment, the health checks' pings) went through
// the fault proxy, signed for their regions.
func checkThroughProxy(t *testing.T, m *env.Manifest) {
	code, body := get(t, m.FaultProxy.URL+faultproxy.ControlPath+"requests")
	if code != http.StatusOK {
		t.Fatalf("GET %srequests = %d %s, want 200", faultproxy.ControlPath, code, body)
	}
	var seen []faultproxy.Request
	if err := json.Unmarshal(body, &seen); err != nil {
		t.Fatalf("decode the proxy's requests: %v", err)
	}
	for _, s := range env.Slots {
		region, n := m.Regions[s].Name, 0
		for _, r := range seen {
			if r.Service == "dynamodb" && r.SignedRegion == region && r.Fault == "" {
				n++
			}
		}
		if n == 0 {
			t.Errorf("the fault proxy saw no DynamoDB request signed for %s among its last %d; want the %s processor's", region, len(seen), s)
		}
	}
	code, body = get(t, m.FaultProxy.ControlURL)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET %s = %d %s, want 200 [] (no rules at start)", m.FaultProxy.ControlURL, code, body)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// awsConfig returns an SDK configuration for region on the emulator.
func awsConfig(m *env.Manifest, region string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
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
	creds := aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}
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

func post(t *testing.T, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/payments", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s/payments: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// checkPayment sends a payment through the router and follows it into the
// primary ledger, the standby, the session table, and a retry.
func checkPayment(t *testing.T, m *env.Manifest) {
	ctx := context.Background()
	p, s := m.Regions[env.SlotPrimary], m.Regions[env.SlotSecondary]
	id := fmt.Sprintf("local-e2e-%d", time.Now().UnixNano())
	body := fmt.Sprintf(`{"payment_id":%q,"amount":"12.34","currency":"EUR","session_id":"s-local-e2e"}`, id)
	status, hdr, first := post(t, m.Router.URL, body)
	if status != http.StatusCreated {
		t.Fatalf("POST via router = %d %s, want 201", status, first)
	}
	if got := hdr.Get(router.TargetHeader); got != p.Name {
		t.Errorf("served by %q, want the primary region %q", got, p.Name)
	}

	count := func(dsn string) (int, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM payments WHERE payment_id = $1 AND amount_minor = 1234 AND currency = 'EUR'", id).Scan(&n)
		return n, err
	}
	if n, err := count(p.Database.DSN); err != nil || n != 1 {
		t.Errorf("primary ledger rows for %s = %d, %v; want 1", id, n, err)
	}
	start := time.Now()
	for {
		n, err := count(s.Database.DSN)
		if err == nil && n == 1 {
			t.Logf("on the standby after %s", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("standby ledger rows for %s = %d, %v after 10s; want 1 (replication lag)", id, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ddb := dynamodb.NewFromConfig(awsConfig(m, p.Name))
	rec, found, err := sessions.New(ddb, m.OutputString("sessions_table_name"), sessions.Options{}).Lookup(ctx, id)
	if err != nil || !found {
		t.Errorf("session table lookup of %s = found %v, %v; want found", id, found, err)
	} else if !bytes.Equal(rec.Response, first) {
		t.Errorf("session table response = %s, want %s", rec.Response, first)
	}

	status, hdr, again := post(t, m.Router.URL, body)
	if status != http.StatusCreated || !bytes.Equal(again, first) {
		t.Errorf("retry = %d %s, want 201 with the same bytes %s", status, again, first)
	}
	if hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry Idempotent-Replayed = %q, want true", hdr.Get("Idempotent-Replayed"))
	}
	if n, err := count(p.Database.DSN); err != nil || n != 1 {
		t.Errorf("primary ledger rows for %s after retry = %d, %v; want 1", id, n, err)
	}
}
