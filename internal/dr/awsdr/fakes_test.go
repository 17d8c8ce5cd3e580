package awsdr

// The stand-ins the AWS backend's tests deploy: a fake for the
// global-cluster calls moto 5.2 lacks (and for ResetDBClusterParameterGroup,
// emulated on moto's own parameter groups), each region's API endpoint, the
// failover name's DNS, lag metrics, and the world that wires them to moto
// behind a fault proxy.

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	rdstypes "github.com/aws/aws-sdk-go-v2/service/rds/types"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"paydr/internal/apikey"
	"paydr/internal/dr"
	"paydr/internal/local/faultproxy"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/processor/api"
	"paydr/internal/sdkhttp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

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
// the request was signed for. The cluster parameter group calls moto
// serves (ModifyDBClusterParameterGroup, DescribeDBClusterParameters) are
// passed on to moto; ResetDBClusterParameterGroup, which moto 5.2 lacks, is
// emulated on moto's state (resetOnMoto).
//
// A role change is reported as AWS does: FailoverState pending (while the
// global cluster's own Status still says available) for pendingDescribes
// describes, then failing-over or switching-over for one, then done.
type fakeRDS struct {
	// moto is the emulator's endpoint, for the parameter group calls.
	moto     string
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
	// loseAnswers is how many role-change calls are carried out but
	// answered 500, as if the answer were lost: the SDK sends them again.
	loseAnswers int
}

func (f *fakeRDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Keep the body as signed: toMoto passes it on byte for byte.
	raw, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ParseForm()
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
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
		if f.loseAnswers > 0 {
			f.loseAnswers--
			http.Error(w, "<ErrorResponse><Error><Code>InternalFailure</Code><Message>the answer was lost</Message></Error></ErrorResponse>", http.StatusInternalServerError)
			return
		}
		err = templates.ExecuteTemplate(w, name, struct{ From, To string }{f.op.From, f.op.To})
	case "ModifyDBClusterParameterGroup", "DescribeDBClusterParameters":
		f.toMoto(w, r)
		return
	case "ResetDBClusterParameterGroup":
		group := r.PostForm.Get("DBClusterParameterGroupName")
		var names []string // Parameters.Parameter.<n>.ParameterName
		for k, v := range r.PostForm {
			if strings.HasPrefix(k, "Parameters.") && strings.HasSuffix(k, ".ParameterName") {
				names = append(names, v[0])
			}
		}
		if rerr := f.resetOnMoto(region, group, names); rerr != nil {
			http.Error(w, "<ErrorResponse><Error><Code>DBParameterGroupNotFound</Code><Message>"+html.EscapeString(rerr.Error())+"</Message></Error></ErrorResponse>", http.StatusNotFound)
			return
		}
		err = templates.ExecuteTemplate(w, "reset_db_cluster_parameter_group.xml", group)
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

// toMoto passes r on to moto as it was signed: the same body, host and
// signature headers (moto checks the signature once it enforces IAM).
func (f *fakeRDS) toMoto(w http.ResponseWriter, r *http.Request) {
	body, _ := r.GetBody()
	raw, _ := io.ReadAll(body)
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, f.moto+"/", bytes.NewReader(raw))
	if err != nil {
		panic(err)
	}
	req.Host = r.Host
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, "fakeRDS: moto: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// resetOnMoto does what ResetDBClusterParameterGroup does to the named
// parameters of group in region, on moto's state: moto 5.2 has no reset and
// no way to unset one parameter, so the group is recreated with its other
// parameters (no cluster uses it in moto: the clusters are fakeRDS's).
func (f *fakeRDS) resetOnMoto(region, group string, names []string) error {
	ctx := context.Background()
	c := rds.NewFromConfig(cfgFor(region), func(o *rds.Options) { o.BaseEndpoint = aws.String(f.moto) })
	gs, err := c.DescribeDBClusterParameterGroups(ctx, &rds.DescribeDBClusterParameterGroupsInput{DBClusterParameterGroupName: aws.String(group)})
	if err != nil || len(gs.DBClusterParameterGroups) != 1 {
		return fmt.Errorf("reset: describe %s in %s: %v", group, region, err)
	}
	g := gs.DBClusterParameterGroups[0]
	ps, err := c.DescribeDBClusterParameters(ctx, &rds.DescribeDBClusterParametersInput{DBClusterParameterGroupName: aws.String(group)})
	if err != nil {
		return err
	}
	var keep []rdstypes.Parameter
	for _, p := range ps.Parameters {
		if !slices.Contains(names, aws.ToString(p.ParameterName)) {
			keep = append(keep, rdstypes.Parameter{ParameterName: p.ParameterName, ParameterValue: p.ParameterValue, ApplyMethod: rdstypes.ApplyMethodImmediate})
		}
	}
	if _, err := c.DeleteDBClusterParameterGroup(ctx, &rds.DeleteDBClusterParameterGroupInput{DBClusterParameterGroupName: aws.String(group)}); err != nil {
		return err
	}
	if _, err := c.CreateDBClusterParameterGroup(ctx, &rds.CreateDBClusterParameterGroupInput{DBClusterParameterGroupName: aws.String(group),
		DBParameterGroupFamily: g.DBParameterGroupFamily, Description: g.Description}); err != nil {
		return err
	}
	if len(keep) > 0 {
		_, err = c.ModifyDBClusterParameterGroup(ctx, &rds.ModifyDBClusterParameterGroupInput{DBClusterParameterGroupName: aws.String(group), Parameters: keep})
	}
	return err
}

// roleChanges are the requests other than describes; f.mu is held.
func (f *fakeRDS) roleChanges() []string {
	var out []string
	for _, c := range f.requests {
		if !strings.Contains(c, " Describe") {
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

// testAPIKey is the payments API key setUp writes in both regions: a test
// value, not a secret.
const testAPIKey = "awsdr-test-key-0123456789abcdefghijklmnopqrstuvwxyz"

// fakeAPI stands in for a region's API endpoint (API Gateway and its
// processor): GET /health answers 200 while the region's cluster is the
// fake writer, POST /payments commits there (idempotent by payment_id)
// when it carries testAPIKey, and answers 401 otherwise.
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
	case api.PathHealth:
		status := http.StatusOK
		if !writable {
			status = http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(api.HealthBody{Region: a.region, DatabaseWritable: writable, DynamoDBReachable: true})
		w.WriteHeader(status)
		w.Write(b)
	case api.PathPayments:
		if key, ok := apikey.Presented(r.Header); !ok || key != testAPIKey {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
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

// adminKeys are the credentials the test world's own clients use (setting
// up, inspecting, and the fakes acting as AWS): moto's default, or an
// administrator's once a test enforces IAM.
var adminKeys = [2]string{"test", "test"}

func cfgFor(region string) aws.Config {
	return aws.Config{APIOptions: sdkhttp.APIOptions(), Region: region, Credentials: credentials.NewStaticCredentialsProvider(adminKeys[0], adminKeys[1], "")}
}

// TestMain stops the emulator the package's tests share: setUp resets it
// for each test (mototest.Shared), which is why no test here is parallel.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := mototest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// setUp deploys, in moto, what the stack would: the topology parameter in
// both regions, both functions, health checks, and the sessions table; RDS
// is the fake, and both sit behind a fault proxy that every backend client
// goes through. Each region's API endpoint is a fakeAPI, and the failover
// name resolves as Route 53's data plane would (lookupCNAME).
func setUp(t *testing.T) *world {
	t.Helper()
	srv := mototest.Shared(t) // reset: each test gets an empty emulator
	ep := srv.Endpoint()
	ctx := context.Background()
	w := &world{moto: ep, rds: &fakeRDS{moto: ep, writer: primaryARN}, lambdas: map[string]*lambda.Client{}, api: map[string]*fakeAPI{}}
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
			APIEndpoint: "https://" + r + ".api.test", ClusterParameterGroup: "payment-cluster-" + role + "-test-1"}
	}
	w.topo = Topology{Environment: "test", GlobalClusterID: "payment-global-test", ZoneID: zoneID, FailoverName: failoverName,
		SessionsTable: "payment-sessions-test", DRRoleName: "payment-dr-automation-test", RPOBoundSeconds: 300,
		Primary: side("us-east-1", "primary"), Secondary: side("us-west-2", "secondary")}
	// The clusters' parameter groups as the stack creates them (in moto):
	// TLS required, and the bound on loss on the writer's.
	for _, s := range []RegionTopology{w.topo.Primary, w.topo.Secondary} {
		c := rds.NewFromConfig(cfgFor(s.Region), func(o *rds.Options) { o.BaseEndpoint = aws.String(ep) })
		if _, err := c.CreateDBClusterParameterGroup(ctx, &rds.CreateDBClusterParameterGroupInput{DBClusterParameterGroupName: aws.String(s.ClusterParameterGroup),
			DBParameterGroupFamily: aws.String("aurora-postgresql15"), Description: aws.String("test")}); err != nil {
			t.Fatal(err)
		}
		params := []rdstypes.Parameter{{ParameterName: aws.String("rds.force_ssl"), ParameterValue: aws.String("1"), ApplyMethod: rdstypes.ApplyMethodImmediate}}
		if s.Region == "us-east-1" {
			params = append(params, rdstypes.Parameter{ParameterName: aws.String(RPOParameter), ParameterValue: aws.String("300"), ApplyMethod: rdstypes.ApplyMethodImmediate})
		}
		if _, err := c.ModifyDBClusterParameterGroup(ctx, &rds.ModifyDBClusterParameterGroupInput{DBClusterParameterGroupName: aws.String(s.ClusterParameterGroup), Parameters: params}); err != nil {
			t.Fatal(err)
		}
	}
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
		params := ssm.NewFromConfig(cfgFor(r), func(o *ssm.Options) { o.BaseEndpoint = aws.String(ep) })
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(ParameterName("test")), Type: "String", Value: aws.String(string(topoJSON))}); err != nil {
			t.Fatal(err)
		}
		// The API key, as the stack writes it: the same in both regions.
		if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{
			Name: aws.String(apikey.ParameterName("test")), Type: "SecureString", Value: aws.String(testAPIKey)}); err != nil {
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

// rpoParameter returns rds.global_db_rpo of region's cluster parameter
// group as moto holds it ("" when unset).
func rpoParameter(t *testing.T, w *world, region string) string {
	t.Helper()
	side, _, _ := side(w.topo, region)
	c := rds.NewFromConfig(cfgFor(region), func(o *rds.Options) { o.BaseEndpoint = aws.String(w.moto) })
	out, err := c.DescribeDBClusterParameters(context.Background(), &rds.DescribeDBClusterParametersInput{DBClusterParameterGroupName: aws.String(side.ClusterParameterGroup)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range out.Parameters {
		if aws.ToString(p.ParameterName) == RPOParameter {
			return aws.ToString(p.ParameterValue)
		}
	}
	return ""
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
