package awsdr

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/dr"
	"paydr/internal/local/moto/mototest"
)

const (
	primaryARN   = "arn:aws:rds:us-east-1:123456789012:cluster:payment-cluster-primary-test"
	secondaryARN = "arn:aws:rds:us-west-2:123456789012:cluster:payment-cluster-secondary-test"
)

var templates = template.Must(template.ParseGlob("testdata/*.xml"))

type memberXML struct {
	ARN    string
	Writer bool
}

// fakeRDS answers the RDS Query API for the global-cluster calls moto 5.2
// lacks, with the recorded response shapes in testdata, and records every
// request as "<region> <Action> <sorted params>".
type fakeRDS struct {
	mu       sync.Mutex
	writer   string // ARN of the writer
	status   string
	pending  string // ARN becoming the writer at the next describe
	requests []string
}

func (f *fakeRDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	region := "?"
	if m := regexp.MustCompile(`Credential=[^/]+/[0-9]+/([a-z0-9-]+)/rds/`).FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		region = m[1]
	}
	var params []string
	for k, v := range r.PostForm {
		if k != "Action" && k != "Version" {
			params = append(params, k+"="+v[0])
		}
	}
	sort.Strings(params)
	action := r.PostForm.Get("Action")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, strings.TrimSpace(region+" "+action+" "+strings.Join(params, " ")))
	w.Header().Set("Content-Type", "text/xml")
	var err error
	switch action {
	case "DescribeGlobalClusters":
		if f.pending != "" {
			f.status = "available" // the role change completes by the next poll
			f.writer, f.pending = f.pending, ""
		}
		data := struct {
			Status  string
			Members []memberXML
		}{f.status, []memberXML{{primaryARN, f.writer == primaryARN}, {secondaryARN, f.writer == secondaryARN}}}
		err = templates.ExecuteTemplate(w, "describe_global_clusters.xml", data)
	case "SwitchoverGlobalCluster", "FailoverGlobalCluster":
		from := f.writer
		f.pending, f.status = r.PostForm.Get("TargetDbClusterIdentifier"), "switching-over"
		name := "switchover_global_cluster.xml"
		if action == "FailoverGlobalCluster" {
			name, f.status = "failover_global_cluster.xml", "failing-over"
		}
		err = templates.ExecuteTemplate(w, name, struct{ From, To string }{from, f.pending})
	case "CreateDBClusterSnapshot":
		err = templates.ExecuteTemplate(w, "create_db_cluster_snapshot.xml", struct{ ID, Cluster, Region string }{
			r.PostForm.Get("DBClusterSnapshotIdentifier"), r.PostForm.Get("DBClusterIdentifier"), region})
	default:
		http.Error(w, "fakeRDS: unexpected action "+action, http.StatusBadRequest)
	}
	if err != nil {
		panic(err)
	}
}

func (f *fakeRDS) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// sick makes one health check report failure, as Route 53 does when a
// region is lost; moto reports every check healthy.
type sick struct {
	HealthAPI
	id string
}

func (s sick) GetHealthCheckStatus(ctx context.Context, in *route53.GetHealthCheckStatusInput, opts ...func(*route53.Options)) (*route53.GetHealthCheckStatusOutput, error) {
	if aws.ToString(in.HealthCheckId) == s.id {
		return &route53.GetHealthCheckStatusOutput{HealthCheckObservations: []r53types.HealthCheckObservation{
			{StatusReport: &r53types.StatusReport{Status: aws.String("Failure: Connection timed out.")}}}}, nil
	}
	return s.HealthAPI.GetHealthCheckStatus(ctx, in, opts...)
}

type world struct {
	moto    string
	rds     *fakeRDS
	rdsURL  string
	topo    Topology
	lambdas map[string]*lambda.Client
	ddb     *dynamodb.Client
	route53 *route53.Client
	opts    Options
}

func cfgFor(region string) aws.Config {
	return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

// setUp deploys, in moto, what the stack would: the topology parameter in
// both regions, both functions, health checks and failover records, the
// secondary's lag metrics, and the sessions table; RDS is the fake.
func setUp(t *testing.T) *world {
	t.Helper()
	srv := mototest.Start(t)
	ep := srv.Endpoint()
	ctx := context.Background()
	w := &world{moto: ep, rds: &fakeRDS{writer: primaryARN, status: "available"}, lambdas: map[string]*lambda.Client{}}
	rdsSrv := httptest.NewServer(w.rds)
	t.Cleanup(rdsSrv.Close)
	w.rdsURL = rdsSrv.URL

	r53 := route53.NewFromConfig(cfgFor("us-east-1"), func(o *route53.Options) { o.BaseEndpoint = aws.String(ep) })
	w.route53 = r53
	zone, err := r53.CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("pay.example.test"), CallerReference: aws.String("t")})
	if err != nil {
		t.Fatal(err)
	}
	zoneID := strings.TrimPrefix(aws.ToString(zone.HostedZone.Id), "/hostedzone/")
	hc := map[string]string{}
	for _, r := range []string{"us-east-1", "us-west-2"} {
		out, err := r53.CreateHealthCheck(ctx, &route53.CreateHealthCheckInput{CallerReference: aws.String(r), HealthCheckConfig: &r53types.HealthCheckConfig{
			Type: r53types.HealthCheckTypeHttps, FullyQualifiedDomainName: aws.String(r + ".api.test"), ResourcePath: aws.String("/health"), RequestInterval: aws.Int32(10), FailureThreshold: aws.Int32(3)}})
		if err != nil {
			t.Fatal(err)
		}
		hc[r] = aws.ToString(out.HealthCheck.Id)
	}
	var changes []r53types.Change
	for r, role := range map[string]r53types.ResourceRecordSetFailover{"us-east-1": r53types.ResourceRecordSetFailoverPrimary, "us-west-2": r53types.ResourceRecordSetFailoverSecondary} {
		changes = append(changes, r53types.Change{Action: r53types.ChangeActionCreate, ResourceRecordSet: &r53types.ResourceRecordSet{
			Name: aws.String("api.pay.example.test"), Type: r53types.RRTypeCname, TTL: aws.Int64(60), SetIdentifier: aws.String(r), Failover: role,
			HealthCheckId: aws.String(hc[r]), ResourceRecords: []r53types.ResourceRecord{{Value: aws.String(r + ".api.test")}}}})
	}
	if _, err := r53.ChangeResourceRecordSets(ctx, &route53.ChangeResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), ChangeBatch: &r53types.ChangeBatch{Changes: changes}}); err != nil {
		t.Fatal(err)
	}
	side := func(r, role string) RegionTopology {
		return RegionTopology{Region: r, ClusterID: "payment-cluster-" + role + "-test", FunctionName: "payment-processor-test", HealthCheckID: hc[r]}
	}
	w.topo = Topology{Environment: "test", GlobalClusterID: "payment-global-test", ZoneID: zoneID, FailoverName: "api.pay.example.test",
		SessionsTable: "payment-sessions-test", DRRoleName: "payment-dr-automation-test", Primary: side("us-east-1", "primary"), Secondary: side("us-west-2", "secondary")}
	topoJSON, _ := json.Marshal(w.topo)

	role, err := iam.NewFromConfig(cfgFor("us-east-1"), func(o *iam.Options) { o.BaseEndpoint = aws.String(ep) }).CreateRole(ctx, &iam.CreateRoleInput{
		RoleName: aws.String("fn"), AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	var zbuf bytes.Buffer
	zw := zip.NewWriter(&zbuf)
	f, _ := zw.Create("bootstrap")
	f.Write([]byte("#!/bin/sh\n"))
	zw.Close()
	for _, r := range []string{"us-east-1", "us-west-2"} {
		if _, err := ssm.NewFromConfig(cfgFor(r), func(o *ssm.Options) { o.BaseEndpoint = aws.String(ep) }).PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(ParameterName("test")), Type: "String", Value: aws.String(string(topoJSON))}); err != nil {
			t.Fatal(err)
		}
		lc := lambda.NewFromConfig(cfgFor(r), func(o *lambda.Options) { o.BaseEndpoint = aws.String(ep) })
		w.lambdas[r] = lc
		if _, err := lc.CreateFunction(ctx, &lambda.CreateFunctionInput{FunctionName: aws.String("payment-processor-test"), Role: role.Role.Arn,
			Runtime: lambdatypes.RuntimeProvidedal2023, Handler: aws.String("bootstrap"), Code: &lambdatypes.FunctionCode{ZipFile: zbuf.Bytes()}}); err != nil {
			t.Fatal(err)
		}
	}
	w.ddb = dynamodb.NewFromConfig(cfgFor("us-west-2"), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ep) })
	if _, err := w.ddb.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("payment-sessions-test"), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: "S"}, {AttributeName: aws.String("sk"), AttributeType: "S"}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange}}}); err != nil {
		t.Fatal(err)
	}
	w.opts = Options{Suffix: "test", Region: "us-west-2", Endpoint: ep, RDSEndpoint: w.rdsURL}
	return w
}

func connect(t *testing.T, w *world) (*Backend, *DynamoLock) {
	t.Helper()
	b, lock, err := Connect(context.Background(), w.opts)
	if err != nil {
		t.Fatal(err)
	}
	b.Poll, b.Wait = 5*time.Millisecond, 5*time.Second
	// The CloudWatch client speaks Smithy RPC v2 CBOR, which moto 5.2 does
	// not: the secondary region's lag metrics come from a fake.
	for r, c := range b.regions {
		c.Metrics = &fakeMetrics{t: t, rds: w.rds, replication: 120, rpo: 900}
		b.regions[r] = c
	}
	return b, lock
}

func concurrency(t *testing.T, w *world, region string) *int32 {
	t.Helper()
	out, err := w.lambdas[region].GetFunctionConcurrency(context.Background(), &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("payment-processor-test")})
	if err != nil {
		t.Fatal(err)
	}
	return out.ReservedConcurrentExecutions
}

func TestStatusFromSurvivingRegion(t *testing.T) {
	w := setUp(t)
	b, _ := connect(t, w)
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := []string{st.Traffic}
	for _, r := range st.Regions {
		got = append(got, r.Name+" "+string(r.Role)+" "+r.DatabaseARN)
	}
	want := []string{"us-east-1", "us-east-1 writer " + primaryARN, "us-west-2 standby " + secondaryARN}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() regions (-want +got):\n%s", diff)
	}
	wantRep := dr.Replication{Known: true, Streaming: true, State: "connected", LagBytes: -1, ReplayLag: 120 * time.Millisecond, RPOLag: 900 * time.Millisecond}
	if diff := cmp.Diff(wantRep, st.Replication); diff != "" {
		t.Errorf("Status().Replication (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"us-west-2 DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test"}, w.rds.calls()); diff != "" {
		t.Errorf("RDS requests (-want +got):\n%s", diff)
	}
}

func TestDryRunPrintsExactCalls(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	j, _ := dr.OpenJournal(t.TempDir())
	var out strings.Builder
	if _, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Switchover, DryRun: true}, &out); err != nil {
		t.Fatal(err)
	}
	want := `dry run: nothing is changed; pass --yes to act
plan: switchover from us-east-1 to us-west-2
 1. fence us-east-1: stop writes in the old writer region so nothing commits that the standby misses
      us-east-1 lambda:PutFunctionConcurrency FunctionName=payment-processor-test ReservedConcurrentExecutions=0
 2. wait-caught-up us-west-2: wait until the standby has applied everything the old writer committed
      us-west-2 cloudwatch:GetMetricData AWS/RDS AuroraGlobalDBReplicationLag,AuroraGlobalDBRPOLag DBClusterIdentifier=payment-cluster-secondary-test (refuse above 1m0s; SwitchoverGlobalCluster itself waits for the secondary to catch up)
 3. promote us-west-2: make the standby the writer (planned switchover: no data loss)
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test
      us-west-2 rds:SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=` + secondaryARN + `
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-secondary-test is the writer and the status is available)
 4. rebuild-standby us-east-1: make the old writer a standby of the new writer
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-primary-test is a secondary member; Aurora demotes the old writer itself)
 5. unfence us-west-2: let the new writer region's processor take writes
      us-west-2 lambda:DeleteFunctionConcurrency FunctionName=payment-processor-test
 6. wait-traffic us-west-2: wait until the failover name sends traffic to the new writer
      route53:GetHealthCheckStatus HealthCheckId=` + w.topo.Secondary.HealthCheckID + ` (every 5ms until healthy)
      route53:ListResourceRecordSets HostedZoneId=` + w.topo.ZoneID + ` StartRecordName=api.pay.example.test
 7. verify us-west-2: send a real payment through the failover name and find it in the new writer's ledger
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test
      route53:GetHealthCheckStatus HealthCheckId=` + w.topo.Secondary.HealthCheckID + ` (its /health commits a write probe to payment-cluster-secondary-test)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("dry run (-want +got):\n%s", diff)
	}
	if got := w.rds.calls(); len(got) != 1 || !strings.Contains(got[0], "DescribeGlobalClusters") {
		t.Errorf("dry run sent %v, want only one DescribeGlobalClusters", got)
	}
	if c := concurrency(t, w, "us-east-1"); c != nil {
		t.Errorf("dry run fenced us-east-1 (reserved concurrency %d)", *c)
	}
}

func TestSwitchoverUsesSwitchoverAPI(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	b.health = switchable{b.health, w}
	j, _ := dr.OpenJournal(t.TempDir())
	if _, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	var roleChanges []string
	for _, c := range w.rds.calls() {
		if !strings.Contains(c, "DescribeGlobalClusters") {
			roleChanges = append(roleChanges, c)
		}
	}
	want := []string{"us-west-2 SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN}
	if diff := cmp.Diff(want, roleChanges); diff != "" {
		t.Errorf("RDS role-change requests (-want +got):\n%s", diff)
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
	if c := concurrency(t, w, "us-west-2"); c != nil {
		t.Errorf("us-west-2 reserved concurrency = %d, want none (unfenced)", *c)
	}
}

// switchable reports the health check of the region holding the fake
// writer healthy and the other unhealthy, as the processors' /health (a
// write probe) makes Route 53 do.
type switchable struct {
	HealthAPI
	w *world
}

func (s switchable) GetHealthCheckStatus(ctx context.Context, in *route53.GetHealthCheckStatusInput, opts ...func(*route53.Options)) (*route53.GetHealthCheckStatusOutput, error) {
	s.w.rds.mu.Lock()
	writer := s.w.rds.writer
	s.w.rds.mu.Unlock()
	writerHC := s.w.topo.Primary.HealthCheckID
	if writer == secondaryARN {
		writerHC = s.w.topo.Secondary.HealthCheckID
	}
	if aws.ToString(in.HealthCheckId) != writerHC {
		return sick{s.HealthAPI, aws.ToString(in.HealthCheckId)}.GetHealthCheckStatus(ctx, in, opts...)
	}
	return s.HealthAPI.GetHealthCheckStatus(ctx, in, opts...)
}

func TestFailoverUsesFailoverAPIWithDataLoss(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	// The primary region is lost: its health check fails.
	b.health = sick{b.health, w.topo.Primary.HealthCheckID}
	j, _ := dr.OpenJournal(t.TempDir())
	_, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Failover, Owner: "test"}, &strings.Builder{})
	var ref *dr.Refusal
	if !errors.As(err, &ref) || ref.Loss == nil || ref.Loss.Window != 900*time.Millisecond {
		t.Fatalf("failover without --allow-data-loss = %v, want a refusal estimating 900ms of loss (the rpo lag)", err)
	}
	var out strings.Builder
	o, err := dr.Operate(context.Background(), b, lock, j, dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}, &out)
	if err != nil {
		t.Fatalf("failover: %v\n%s", err, out.String())
	}
	var sent []string
	for _, c := range w.rds.calls() {
		if !strings.Contains(c, "DescribeGlobalClusters") {
			sent = append(sent, c)
		}
	}
	snap := SnapshotID("payment-cluster-primary-test", o.OpID)
	want := []string{
		"us-east-1 CreateDBClusterSnapshot DBClusterIdentifier=payment-cluster-primary-test DBClusterSnapshotIdentifier=" + snap,
		"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN,
	}
	if diff := cmp.Diff(want, sent); diff != "" {
		t.Errorf("RDS requests other than describe (-want +got):\n%s", diff)
	}
	if s, _ := o.Step(dr.ActionPreserve, ""); !strings.Contains(s.Result, "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:"+snap) {
		t.Errorf("preserve result = %q, want the snapshot ARN", s.Result)
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
}

func TestDynamoLockContention(t *testing.T) {
	w := setUp(t)
	_, lock := connect(t, w)
	ctx := context.Background()
	unlock, err := lock.Lock(ctx, dr.LockInfo{Owner: "alice", Host: "h1", PID: 1, Op: "failover", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2, Op: "switchover"})
	var le *dr.LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "alice" || le.Holder.Op != "failover" {
		t.Fatalf("second Lock() = %v, want held by alice for failover", err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	unlock, err = lock.Lock(ctx, dr.LockInfo{Owner: "bob", Host: "h2", PID: 2})
	if err != nil {
		t.Fatalf("Lock() after unlock = %v", err)
	}
	unlock(ctx)
	// An expired lock is taken over.
	expired := *lock
	expired.Now = func() time.Time { return time.Now().Add(-3 * time.Hour) }
	if _, err := expired.Lock(ctx, dr.LockInfo{Owner: "crashed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Lock(ctx, dr.LockInfo{Owner: "carol"}); err != nil {
		t.Errorf("Lock() over an expired lock = %v", err)
	}
}

// fakeMetrics answers GetMetricData for one cluster's lag metrics and
// checks the query: the metrics are asked of the secondary cluster only.
type fakeMetrics struct {
	t                *testing.T
	rds              *fakeRDS
	replication, rpo float64
}

func (f *fakeMetrics) GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	out := &cloudwatch.GetMetricDataOutput{}
	f.rds.mu.Lock()
	secondary := "payment-cluster-secondary-test"
	if f.rds.writer == secondaryARN {
		secondary = "payment-cluster-primary-test"
	}
	f.rds.mu.Unlock()
	for _, q := range in.MetricDataQueries {
		m := q.MetricStat.Metric
		if got := aws.ToString(m.Dimensions[0].Value); got != secondary {
			f.t.Errorf("GetMetricData for cluster %s, want %s (the secondary now)", got, secondary)
		}
		v := f.replication
		if aws.ToString(m.MetricName) == MetricRPOLag {
			v = f.rpo
		}
		out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{Id: q.Id, Timestamps: []time.Time{time.Now().Add(-time.Minute)}, Values: []float64{v}})
	}
	return out, nil
}
