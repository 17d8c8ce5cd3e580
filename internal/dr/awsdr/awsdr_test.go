package awsdr

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	"paydr/internal/local/faultproxy"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/processor"
)

const (
	primaryARN   = "arn:aws:rds:us-east-1:123456789012:cluster:payment-cluster-primary-test"
	secondaryARN = "arn:aws:rds:us-west-2:123456789012:cluster:payment-cluster-secondary-test"
	failoverName = "api.pay.example.test"
)

var templates = template.Must(template.ParseGlob("testdata/*.xml"))

type memberXML struct {
	ARN    string
	Writer bool
}

// fakeOp is a role change under way, as FailoverState reports it.
type fakeOp struct {
	Status, From, To string
	DataLoss         bool
	// pending is how many more describes report it pending.
	pending int
}

// fakeRDS answers the RDS Query API for the global-cluster calls moto 5.2
// lacks, with the recorded response shapes in testdata, and records every
// request as "<region> <Action> <sorted params>", the region being the one
// the request was signed for.
//
// A role change is reported as AWS does: FailoverState pending (while the
// global cluster's own Status still says available) for pendingDescribes
// describes, then failing-over or switching-over for one, then done.
type fakeRDS struct {
	mu       sync.Mutex
	writer   string // ARN of the writer
	op       *fakeOp
	requests []string
	// pendingDescribes is how many describes a new role change stays
	// pending.
	pendingDescribes int
	// cancelAfterChange, when set, is called at the first describe after
	// a role change: a crash of the operator after the call was accepted.
	cancelAfterChange context.CancelFunc
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
		status := "available"
		switch op := f.op; {
		case op == nil:
		case op.pending > 0:
			op.pending--
		case op.Status == "pending":
			op.Status = "switching-over"
			if op.DataLoss {
				op.Status = "failing-over"
			}
			status = op.Status
		default:
			f.writer, f.op = op.To, nil
		}
		if f.cancelAfterChange != nil && f.op != nil {
			f.cancelAfterChange()
			f.cancelAfterChange = nil
		}
		data := struct {
			Status  string
			Op      *fakeOp
			Members []memberXML
		}{status, f.op, []memberXML{{primaryARN, f.writer == primaryARN}, {secondaryARN, f.writer == secondaryARN}}}
		err = templates.ExecuteTemplate(w, "describe_global_clusters.xml", data)
	case "SwitchoverGlobalCluster", "FailoverGlobalCluster":
		if f.op != nil {
			http.Error(w, "<ErrorResponse><Error><Code>InvalidGlobalClusterStateFault</Code><Message>an operation is under way</Message></Error></ErrorResponse>", http.StatusBadRequest)
			return
		}
		f.op = &fakeOp{Status: "pending", From: f.writer, To: r.PostForm.Get("TargetDbClusterIdentifier"), DataLoss: action == "FailoverGlobalCluster", pending: f.pendingDescribes}
		name := "switchover_global_cluster.xml"
		if action == "FailoverGlobalCluster" {
			name = "failover_global_cluster.xml"
		}
		err = templates.ExecuteTemplate(w, name, struct{ From, To string }{f.op.From, f.op.To})
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

// roleChanges are the requests other than describes; f.mu is held.
func (f *fakeRDS) roleChanges() []string {
	var out []string
	for _, c := range f.requests {
		if !strings.Contains(c, "DescribeGlobalClusters") {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeRDS) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// changes returns the requests other than describes.
func (f *fakeRDS) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.roleChanges()
}

func (f *fakeRDS) isWriter(arn string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writer == arn
}

// Modes of a fake API endpoint.
const (
	apiUp        = ""
	apiDown      = "down"      // 503 to everything: the region's processor cannot reach its database
	apiBlackhole = "blackhole" // holds every request: the region is gone
)

// fakeAPI stands in for a region's API endpoint (API Gateway and its
// processor): GET /health answers 200 while the region's cluster is the
// fake writer, POST /payments commits there (idempotent by payment_id).
type fakeAPI struct {
	region, host, arn string
	rds               *fakeRDS
	srv               *httptest.Server
	quit              chan struct{}

	mu       sync.Mutex
	mode     string
	payments map[string][]byte
}

func (a *fakeAPI) setMode(mode string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mode = mode
}

// healthy is what Route 53's health checkers see.
func (a *fakeAPI) healthy() bool {
	a.mu.Lock()
	mode := a.mode
	a.mu.Unlock()
	return mode == apiUp && a.rds.isWriter(a.arn)
}

func (a *fakeAPI) payment(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.payments[id]
	return ok
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	mode := a.mode
	a.mu.Unlock()
	switch mode {
	case apiBlackhole:
		select {
		case <-r.Context().Done():
		case <-a.quit:
		}
		return
	case apiDown:
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	writable := a.rds.isWriter(a.arn)
	switch r.URL.Path {
	case processor.PathHealth:
		status := http.StatusOK
		if !writable {
			status = http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(processor.HealthBody{Region: a.region, DatabaseWritable: writable, DynamoDBReachable: true})
		w.WriteHeader(status)
		w.Write(b)
	case processor.PathPayments:
		var req struct {
			PaymentID string `json:"payment_id"`
			Amount    string `json:"amount"`
			Currency  string `json:"currency"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.PaymentID == "" || req.Amount != "0.01" || req.Currency != "USD" {
			http.Error(w, `{"error":"malformed"}`, http.StatusBadRequest)
			return
		}
		if !writable {
			http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		a.mu.Lock()
		body, ok := a.payments[req.PaymentID]
		if !ok {
			body = []byte(fmt.Sprintf(`{"payment_id":%q,"status":"succeeded","amount":"0.01","currency":"USD","region":%q,"created_at":"2026-01-02T03:04:05Z"}`, req.PaymentID, a.region))
			a.payments[req.PaymentID] = body
		}
		a.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	default:
		http.NotFound(w, r)
	}
}

type world struct {
	moto    string
	proxy   *faultproxy.Proxy
	rds     *fakeRDS
	api     map[string]*fakeAPI
	topo    Topology
	lambdas map[string]*lambda.Client
	opts    Options
}

func cfgFor(region string) aws.Config {
	return aws.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
}

// setUp deploys, in moto, what the stack would: the topology parameter in
// both regions, both functions, health checks, and the sessions table; RDS
// is the fake, and both sit behind a fault proxy that every backend client
// goes through. Each region's API endpoint is a fakeAPI, and the failover
// name resolves as Route 53's data plane would (lookupCNAME).
func setUp(t *testing.T) *world {
	t.Helper()
	srv := mototest.Start(t)
	ep := srv.Endpoint()
	ctx := context.Background()
	w := &world{moto: ep, rds: &fakeRDS{writer: primaryARN}, lambdas: map[string]*lambda.Client{}, api: map[string]*fakeAPI{}}
	rdsSrv := httptest.NewServer(w.rds)
	t.Cleanup(rdsSrv.Close)
	proxy, err := faultproxy.Start(faultproxy.Options{Upstream: ep, Routes: map[string]string{"rds": rdsSrv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proxy.Close(); err != nil {
			t.Error(err)
		}
	})
	w.proxy = proxy
	for r, arn := range map[string]string{"us-east-1": primaryARN, "us-west-2": secondaryARN} {
		a := &fakeAPI{region: r, host: r + ".api.test", arn: arn, rds: w.rds, quit: make(chan struct{}), payments: map[string][]byte{}}
		a.srv = httptest.NewServer(a)
		t.Cleanup(func() { close(a.quit); a.srv.Close() })
		w.api[r] = a
	}

	r53 := route53.NewFromConfig(cfgFor("us-east-1"), func(o *route53.Options) { o.BaseEndpoint = aws.String(ep) })
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
	side := func(r, role string) RegionTopology {
		return RegionTopology{Region: r, ClusterID: "payment-cluster-" + role + "-test", FunctionName: "payment-processor-test", HealthCheckID: hc[r],
			APIEndpoint: "https://" + r + ".api.test"}
	}
	w.topo = Topology{Environment: "test", GlobalClusterID: "payment-global-test", ZoneID: zoneID, FailoverName: failoverName,
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
	ddb := dynamodb.NewFromConfig(cfgFor("us-west-2"), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(ep) })
	if _, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("payment-sessions-test"), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: "S"}, {AttributeName: aws.String("sk"), AttributeType: "S"}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}, {AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange}}}); err != nil {
		t.Fatal(err)
	}
	w.opts = Options{Suffix: "test", Region: "us-west-2", Endpoint: proxy.URL()}
	return w
}

// lookupCNAME answers as Route 53's data plane does for the failover
// records: the primary's endpoint while its health check passes, else the
// secondary's while its passes, else the primary's. Endpoint hosts have no
// CNAME.
func (w *world) lookupCNAME(_ context.Context, host string) (string, error) {
	switch host = canonicalHost(host); host {
	case failoverName:
		p, s := w.api["us-east-1"], w.api["us-west-2"]
		if !p.healthy() && s.healthy() {
			return s.host + ".", nil
		}
		return p.host + ".", nil
	case w.api["us-east-1"].host, w.api["us-west-2"].host:
		return host + ".", nil
	}
	return "", &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// dataPlane resolves with lookupCNAME and dials the fake API endpoints.
func (w *world) dataPlane() DataPlane {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		name, err := w.lookupCNAME(ctx, host)
		if err != nil {
			return nil, err
		}
		for _, a := range w.api {
			if a.host == canonicalHost(name) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", a.srv.Listener.Addr().String())
			}
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return DataPlane{LookupCNAME: w.lookupCNAME, Scheme: "http",
		Client: &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}}
}

func connect(t *testing.T, w *world) (*Backend, *DynamoLock) {
	t.Helper()
	b, lock, err := Connect(context.Background(), w.opts)
	if err != nil {
		t.Fatal(err)
	}
	b.Poll, b.Wait, b.ProbeTimeout, b.CallTimeout = 5*time.Millisecond, 5*time.Second, 2*time.Second, 2*time.Second
	b.DataPlane = w.dataPlane()
	// The CloudWatch client speaks Smithy RPC v2 CBOR, which moto 5.2 does
	// not: the secondary region's lag metrics come from a fake.
	for r, c := range b.regions {
		c.Metrics = &fakeMetrics{t: t, rds: w.rds, replication: 120, rpo: 900}
		b.regions[r] = c
	}
	return b, lock
}

// watched is a backend that counts the Route 53 control-plane calls made
// while a step runs: a step must never depend on Route 53's API, which
// lives in us-east-1.
type watched struct {
	*Backend
	inStep        atomic.Bool
	route53InStep atomic.Int32
	route53       atomic.Int32
}

func watch(b *Backend) *watched {
	w := &watched{Backend: b}
	b.health = route53Watch{b.health, w}
	return w
}

func (w *watched) Do(ctx context.Context, opID string, s dr.Step) (string, error) {
	w.inStep.Store(true)
	defer w.inStep.Store(false)
	return w.Backend.Do(ctx, opID, s)
}

type route53Watch struct {
	HealthAPI
	w *watched
}

func (r route53Watch) GetHealthCheckStatus(ctx context.Context, in *route53.GetHealthCheckStatusInput, opts ...func(*route53.Options)) (*route53.GetHealthCheckStatusOutput, error) {
	r.w.route53.Add(1)
	if r.w.inStep.Load() {
		r.w.route53InStep.Add(1)
	}
	return r.HealthAPI.GetHealthCheckStatus(ctx, in, opts...)
}

func concurrency(t *testing.T, w *world, region string) *int32 {
	t.Helper()
	out, err := w.lambdas[region].GetFunctionConcurrency(context.Background(), &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("payment-processor-test")})
	if err != nil {
		t.Fatal(err)
	}
	return out.ReservedConcurrentExecutions
}

// regionSummary is what a test compares of a dr.Region.
func regionSummary(r dr.Region) string {
	return fmt.Sprintf("%s %s %s reachable=%v healthy=%v fenced=%v", r.Name, r.Role, r.DatabaseARN, r.Reachable, r.Healthy, r.Fenced)
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
		got = append(got, regionSummary(r))
	}
	want := []string{"us-east-1",
		"us-east-1 writer " + primaryARN + " reachable=true healthy=true fenced=false",
		"us-west-2 standby " + secondaryARN + " reachable=true healthy=false fenced=false"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() regions (-want +got):\n%s", diff)
	}
	if h := st.Regions[1].Health; !strings.Contains(h, "http://us-west-2.api.test/health: HTTP 503") {
		t.Errorf("Status() us-west-2 health = %q, want the 503 of its /health", h)
	}
	wantRep := dr.Replication{Known: true, Streaming: true, State: "connected", LagBytes: -1, ReplayLag: 120 * time.Millisecond, RPOLag: 900 * time.Millisecond}
	if diff := cmp.Diff(wantRep, st.Replication); diff != "" {
		t.Errorf("Status().Replication (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"us-west-2 DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test"}, w.rds.calls()); diff != "" {
		t.Errorf("RDS requests (-want +got):\n%s", diff)
	}
}

func TestStatusStaysFastWhileARegionBlackHoles(t *testing.T) {
	w := setUp(t)
	b, _ := connect(t, w)
	b.ProbeTimeout = 300 * time.Millisecond
	w.api["us-east-1"].setMode(apiBlackhole)
	if err := w.proxy.SetRules(faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Blackhole}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st, err := b.Status(context.Background())
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	// Every probe runs at once: about one ProbeTimeout, two at most
	// (describe, then the lag of the secondary it names).
	if took > 4*b.ProbeTimeout {
		t.Errorf("Status() took %s while us-east-1 black-holes, want about %s (probes run at once, each bounded)", took, b.ProbeTimeout)
	}
	var got []string
	for _, r := range st.Regions {
		got = append(got, regionSummary(r))
	}
	want := []string{
		"us-east-1 writer " + primaryARN + " reachable=false healthy=false fenced=false",
		"us-west-2 standby " + secondaryARN + " reachable=true healthy=false fenced=false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() regions (-want +got):\n%s", diff)
	}
	notes := strings.Join(st.Notes, "\n")
	for _, want := range []string{"us-east-1: get function concurrency", "route53 health check " + w.topo.Primary.HealthCheckID + " not read"} {
		if !strings.Contains(notes, want) {
			t.Errorf("Status().Notes = %q, want a note %q", st.Notes, want)
		}
	}
	// Route 53 answers with the primary while every region fails.
	if st.Traffic != "us-east-1" {
		t.Errorf("Status().Traffic = %q, want us-east-1 (DNS answers the primary when both checks fail)", st.Traffic)
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
	// A switchover is sent to the writer's region (us-east-1), whatever the
	// acting region; the waits describe from the target's.
	want := `dry run: nothing is changed; pass --yes to act
plan: switchover from us-east-1 to us-west-2
 1. fence us-east-1: stop writes in the old writer region so nothing commits that the standby misses
      us-east-1 lambda:PutFunctionConcurrency FunctionName=payment-processor-test ReservedConcurrentExecutions=0
 2. wait-caught-up us-west-2: wait until the standby has applied everything the old writer committed
      us-west-2 cloudwatch:GetMetricData AWS/RDS AuroraGlobalDBReplicationLag,AuroraGlobalDBRPOLag DBClusterIdentifier=payment-cluster-secondary-test (refuse above 1m0s; SwitchoverGlobalCluster itself waits for the secondary to catch up)
 3. promote us-west-2: make the standby the writer (planned switchover: no data loss)
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (no call below while its FailoverState shows an operation toward payment-cluster-secondary-test: wait for it)
      us-east-1 rds:SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=` + secondaryARN + `
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-secondary-test is the writer and FailoverState is empty)
 4. rebuild-standby us-east-1: make the old writer a standby of the new writer
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (every 5ms until payment-cluster-primary-test is a secondary member and FailoverState is empty; Aurora demotes the old writer itself)
 5. unfence us-west-2: let the new writer region's processor take writes
      us-west-2 lambda:DeleteFunctionConcurrency FunctionName=payment-processor-test
 6. wait-traffic us-west-2: wait until the failover name sends traffic to the new writer
      dns CNAME api.pay.example.test (every 5ms until it answers us-west-2.api.test, the endpoint of us-west-2)
      us-west-2 GET http://us-west-2.api.test/health (until 200: its database takes writes)
 7. verify us-west-2: send a real payment through the failover name and find it in the new writer's ledger
      us-west-2 rds:DescribeGlobalClusters GlobalClusterIdentifier=payment-global-test (payment-cluster-secondary-test must be the writer)
      dns CNAME api.pay.example.test (must answer us-west-2.api.test, the endpoint of us-west-2)
      us-west-2 POST http://api.pay.example.test/payments {"payment_id":"dr-verify-<op-id>","amount":"0.01","currency":"USD"} (the same payment until acknowledged; us-west-2 must have committed it)
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

func TestSwitchoverIsSentToTheWritersRegion(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	wb := watch(b)
	j, _ := dr.OpenJournal(t.TempDir())
	o, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Switchover, Owner: "test"}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	// Acting from us-west-2, the switchover still goes to us-east-1, where
	// the writer is, as AWS requires.
	want := []string{"us-east-1 SwitchoverGlobalCluster GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN}
	if diff := cmp.Diff(want, w.rds.changes()); diff != "" {
		t.Errorf("RDS role-change requests (-want +got):\n%s", diff)
	}
	for _, c := range w.rds.calls() {
		if strings.Contains(c, "DescribeGlobalClusters") && !strings.HasPrefix(c, "us-west-2 ") {
			t.Errorf("RDS request %q, want every describe in us-west-2 (the acting region and target)", c)
		}
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
	if c := concurrency(t, w, "us-west-2"); c != nil {
		t.Errorf("us-west-2 reserved concurrency = %d, want none (unfenced)", *c)
	}
	if n := wb.route53InStep.Load(); n != 0 {
		t.Errorf("%d Route 53 API calls during steps, want none", n)
	}
	id := VerifyPaymentID(o.OpID)
	if s, _ := o.Step(dr.ActionVerify, ""); !w.api["us-west-2"].payment(id) || !strings.Contains(s.Result, "committed by us-west-2") {
		t.Errorf("verify result %q; payment %s in us-west-2: %v, want it committed there", s.Result, id, w.api["us-west-2"].payment(id))
	}
}

func TestFailoverUsesFailoverAPIWithDataLoss(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	wb := watch(b)
	// The primary region's processor cannot write: its /health fails and
	// Route 53 answers with the secondary once that one is healthy; its
	// AWS APIs still answer.
	w.api["us-east-1"].setMode(apiDown)
	j, _ := dr.OpenJournal(t.TempDir())
	_, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Failover, Owner: "test"}, &strings.Builder{})
	var ref *dr.Refusal
	if !errors.As(err, &ref) || ref.Loss == nil || ref.Loss.Window != 900*time.Millisecond {
		t.Fatalf("failover without --allow-data-loss = %v, want a refusal estimating 900ms of loss (the rpo lag)", err)
	}
	var out strings.Builder
	o, err := dr.Operate(context.Background(), wb, lock, j, dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}, &out)
	if err != nil {
		t.Fatalf("failover: %v\n%s", err, out.String())
	}
	snap := SnapshotID("payment-cluster-primary-test", o.OpID)
	want := []string{
		"us-east-1 CreateDBClusterSnapshot DBClusterIdentifier=payment-cluster-primary-test DBClusterSnapshotIdentifier=" + snap,
		"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN,
	}
	if diff := cmp.Diff(want, w.rds.changes()); diff != "" {
		t.Errorf("RDS requests other than describe (-want +got):\n%s", diff)
	}
	if s, _ := o.Step(dr.ActionPreserve, ""); !strings.Contains(s.Result, "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:"+snap) {
		t.Errorf("preserve result = %q, want the snapshot ARN", s.Result)
	}
	if c := concurrency(t, w, "us-east-1"); c == nil || *c != 0 {
		t.Errorf("us-east-1 reserved concurrency = %v, want 0 (fenced)", c)
	}
	if n := wb.route53InStep.Load(); n != 0 {
		t.Errorf("%d Route 53 API calls during steps, want none", n)
	}
}

// TestResumeDuringPendingDoesNotCallAgain crashes an operator right after
// FailoverGlobalCluster was accepted; the global cluster then reports the
// failover in FailoverState, pending for a few describes while its own
// Status still says available. Running the operation again resumes at the
// promote step, which must wait for that failover, not start another.
func TestResumeDuringPendingDoesNotCallAgain(t *testing.T) {
	w := setUp(t)
	b, lock := connect(t, w)
	w.api["us-east-1"].setMode(apiDown)
	w.rds.mu.Lock()
	// Pending long enough for the resumed run's observations (every
	// guarded step is checked against a fresh Status) and its promote.
	w.rds.pendingDescribes = 10
	crash, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.rds.cancelAfterChange = cancel
	w.rds.mu.Unlock()
	j, _ := dr.OpenJournal(t.TempDir())
	req := dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "test"}
	var first strings.Builder
	if _, err := dr.Operate(crash, b, lock, j, req, &first); !errors.Is(err, context.Canceled) {
		t.Fatalf("failover interrupted during promote = %v, want context.Canceled\n%s", err, first.String())
	}
	if u, err := j.Unfinished(); err != nil || u == nil {
		t.Fatalf("journal after the crash: unfinished %v, %v; want the failover", u, err)
	}
	var out strings.Builder
	o, err := dr.Operate(context.Background(), b, lock, j, req, &out)
	if err != nil {
		t.Fatalf("resumed failover: %v\n%s", err, out.String())
	}
	var failovers []string
	for _, c := range w.rds.changes() {
		if strings.Contains(c, "FailoverGlobalCluster") {
			failovers = append(failovers, c)
		}
	}
	want := []string{"us-west-2 FailoverGlobalCluster AllowDataLoss=true GlobalClusterIdentifier=payment-global-test TargetDbClusterIdentifier=" + secondaryARN}
	if diff := cmp.Diff(want, failovers); diff != "" {
		t.Errorf("FailoverGlobalCluster requests across the crash (-want +got):\n%s", diff)
	}
	s, _ := o.Step(dr.ActionPromote, "us-west-2")
	if !strings.Contains(s.Result, "(pending) was already under way (not called again)") {
		t.Errorf("resumed promote result = %q, want it to have found the pending failover", s.Result)
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
	secondary := "payment-cluster-secondary-test"
	if f.rds.isWriter(secondaryARN) {
		secondary = "payment-cluster-primary-test"
	}
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
