package faultproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/faultproxy"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
)

func TestScope(t *testing.T) {
	tests := []struct {
		name, auth, query   string
		wantRegion, wantSvc string
		wantOK              bool
	}{
		{"sigv4 header", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/rds/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc", "", "us-east-1", "rds", true},
		{"other region and service", "AWS4-HMAC-SHA256 Credential=test/20261231/us-west-2/lambda/aws4_request, SignedHeaders=host, Signature=0", "", "us-west-2", "lambda", true},
		{"presigned url", "", "X-Amz-Credential=test%2F20260101%2Feu-west-1%2Fs3%2Faws4_request", "eu-west-1", "s3", true},
		{"unsigned", "", "", "", "", false},
		{"not sigv4", "Bearer xyz", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1/?"+tt.query, nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			region, svc, ok := faultproxy.Scope(r)
			if region != tt.wantRegion || svc != tt.wantSvc || ok != tt.wantOK {
				t.Errorf("Scope(%q) = %q, %q, %v, want %q, %q, %v", tt.auth+tt.query, region, svc, ok, tt.wantRegion, tt.wantSvc, tt.wantOK)
			}
		})
	}
}

func TestHomeRegion(t *testing.T) {
	tests := []struct{ service, signed, want string }{
		{"route53", "us-west-2", "us-east-1"},
		{"iam", "eu-west-1", "us-east-1"},
		{"sts", "us-west-2", "us-west-2"}, // regional STS endpoints live in their region
		{"rds", "us-west-2", "us-west-2"},
	}
	for _, tt := range tests {
		if got := faultproxy.HomeRegion(tt.service, tt.signed); got != tt.want {
			t.Errorf("HomeRegion(%q, %q) = %q, want %q", tt.service, tt.signed, got, tt.want)
		}
	}
}

func TestRuleJSON(t *testing.T) {
	rules := []faultproxy.Rule{
		{Region: "us-east-1", Fault: faultproxy.Blackhole},
		{Region: "us-west-2", Service: "lambda", Fault: faultproxy.Latency, Delay: 250 * time.Millisecond},
	}
	b, err := json.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"region":"us-east-1","fault":"blackhole"},{"region":"us-west-2","service":"lambda","fault":"latency","delay":"250ms"}]`
	if string(b) != want {
		t.Errorf("json.Marshal(rules) = %s, want %s", b, want)
	}
	var back []faultproxy.Rule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rules, back); diff != "" {
		t.Errorf("rules round trip (-want +got):\n%s", diff)
	}
	bad := []struct {
		name string
		rule faultproxy.Rule
	}{
		{"no region", faultproxy.Rule{Fault: faultproxy.Refuse}},
		{"unknown fault", faultproxy.Rule{Region: "us-east-1", Fault: "explode"}},
		{"latency without delay", faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Latency}},
		{"delay on refuse", faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Refuse, Delay: time.Second}},
	}
	for _, tt := range bad {
		if err := tt.rule.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) = nil, want an error", tt.name, tt.rule)
		}
	}
}

func TestStartRefusesNonLoopback(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if p, err := faultproxy.Start(faultproxy.Options{Upstream: "http://127.0.0.1:1", Listen: listen}); err == nil {
			p.Close()
			t.Errorf("Start(Listen %q) = nil error, want a refusal (loopback only)", listen)
		}
	}
	if _, err := faultproxy.Start(faultproxy.Options{Upstream: "127.0.0.1:5000"}); err == nil {
		t.Error("Start(Upstream without scheme) = nil error, want an error")
	}
}

// env is moto behind a fault proxy, with clients of both regions.
type env struct {
	proxy *faultproxy.Proxy
	url   string
}

func start(t *testing.T, upstream string) *env {
	t.Helper()
	p, err := faultproxy.Start(faultproxy.Options{Upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return &env{proxy: p, url: p.URL()}
}

func (e *env) cfg(region string, attempts int) aws.Config {
	return aws.Config{APIOptions: sdkhttp.APIOptions(), Region: region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(e.url), RetryMaxAttempts: attempts}
}

func (e *env) lambda(region string, attempts int) *lambda.Client {
	return lambda.NewFromConfig(e.cfg(region, attempts))
}

func (e *env) set(t *testing.T, rules ...faultproxy.Rule) {
	t.Helper()
	if err := e.proxy.SetRules(rules...); err != nil {
		t.Fatal(err)
	}
}

// errorCode is the AWS error code of err ("" when it has none).
func errorCode(err error) string {
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// httpStatus is the HTTP status of err (0 when it has none).
func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func TestFaultsAgainstMoto(t *testing.T) {
	srv := mototest.Start(t)
	e := start(t, srv.Endpoint())
	ctx := context.Background()
	listFunctions := func(ctx context.Context, region string, attempts int) error {
		_, err := e.lambda(region, attempts).ListFunctions(ctx, &lambda.ListFunctionsInput{})
		return err
	}

	t.Run("no rules: requests go through", func(t *testing.T) {
		e.set(t)
		for _, r := range []string{"us-east-1", "us-west-2"} {
			if err := listFunctions(ctx, r, 1); err != nil {
				t.Errorf("ListFunctions in %s = %v, want success", r, err)
			}
		}
	})

	t.Run("refuse: 503 in the region, other regions unaffected", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Refuse})
		err := listFunctions(ctx, "us-east-1", 1)
		if httpStatus(err) != http.StatusServiceUnavailable || errorCode(err) != "ServiceUnavailable" {
			t.Errorf("ListFunctions in us-east-1 = %v (status %d, code %q), want 503 ServiceUnavailable", err, httpStatus(err), errorCode(err))
		}
		if err := listFunctions(ctx, "us-west-2", 1); err != nil {
			t.Errorf("ListFunctions in us-west-2 = %v, want success (the rule is for us-east-1)", err)
		}
	})

	t.Run("refuse one service only", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Service: "ssm", Fault: faultproxy.Refuse})
		_, err := ssm.NewFromConfig(e.cfg("us-east-1", 1)).DescribeParameters(ctx, &ssm.DescribeParametersInput{})
		if httpStatus(err) != http.StatusServiceUnavailable {
			t.Errorf("ssm in us-east-1 = %v, want 503", err)
		}
		if err := listFunctions(ctx, "us-east-1", 1); err != nil {
			t.Errorf("lambda in us-east-1 = %v, want success (the rule is for ssm)", err)
		}
	})

	t.Run("reset: the connection closes without an answer", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Reset})
		err := listFunctions(ctx, "us-east-1", 1)
		if err == nil || httpStatus(err) != 0 {
			t.Errorf("ListFunctions in us-east-1 = %v (status %d), want a transport error and no HTTP status", err, httpStatus(err))
		}
	})

	t.Run("blackhole: the client's deadline ends the call", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Blackhole})
		const deadline = 300 * time.Millisecond
		cctx, cancel := context.WithTimeout(ctx, deadline)
		defer cancel()
		start := time.Now()
		err := listFunctions(cctx, "us-east-1", 3)
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ListFunctions in a black-holed us-east-1 = %v, want context.DeadlineExceeded", err)
		}
		if took < deadline || took > deadline+time.Second {
			t.Errorf("ListFunctions in a black-holed us-east-1 returned after %s, want right after the %s deadline", took, deadline)
		}
		if err := listFunctions(ctx, "us-west-2", 1); err != nil {
			t.Errorf("ListFunctions in us-west-2 = %v, want success", err)
		}
	})

	t.Run("latency: the call waits, then succeeds", func(t *testing.T) {
		const delay = 400 * time.Millisecond
		e.set(t, faultproxy.Rule{Region: "us-east-1", Service: "lambda", Fault: faultproxy.Latency, Delay: delay})
		start := time.Now()
		if err := listFunctions(ctx, "us-east-1", 1); err != nil {
			t.Fatalf("ListFunctions with latency = %v, want success", err)
		}
		if took := time.Since(start); took < delay {
			t.Errorf("ListFunctions with %s latency took %s", delay, took)
		}
		start = time.Now()
		if err := listFunctions(ctx, "us-west-2", 1); err != nil || time.Since(start) >= delay {
			t.Errorf("ListFunctions in us-west-2 = %v after %s, want success without the latency", err, time.Since(start))
		}
	})

	t.Run("throttle: every protocol's SDK sees a retryable throttle", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Throttle})
		cfg := e.cfg("us-east-1", 2)
		cfg.Retryer = func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 2
				o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return time.Millisecond, nil })
			})
		}
		calls := []struct {
			protocol, service, wantCode string
			call                        func() error
		}{
			{"restJson", "lambda", "ThrottlingException", func() error {
				_, err := lambda.NewFromConfig(cfg).ListFunctions(ctx, &lambda.ListFunctionsInput{})
				return err
			}},
			{"awsJson 1.1", "ssm", "ThrottlingException", func() error {
				_, err := ssm.NewFromConfig(cfg).DescribeParameters(ctx, &ssm.DescribeParametersInput{})
				return err
			}},
			{"awsJson 1.0", "dynamodb", "ThrottlingException", func() error {
				_, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{})
				return err
			}},
			{"query", "rds", "Throttling", func() error {
				_, err := rds.NewFromConfig(cfg).DescribeGlobalClusters(ctx, &rds.DescribeGlobalClustersInput{})
				return err
			}},
			{"query (global)", "iam", "Throttling", func() error {
				_, err := iam.NewFromConfig(cfg).ListRoles(ctx, &iam.ListRolesInput{})
				return err
			}},
			{"restXml", "route53", "Throttling", func() error {
				_, err := route53.NewFromConfig(cfg).ListHostedZones(ctx, &route53.ListHostedZonesInput{})
				return err
			}},
			{"rpc-v2-cbor", "monitoring", "ThrottlingException", func() error {
				_, err := cloudwatch.NewFromConfig(cfg).ListDashboards(ctx, &cloudwatch.ListDashboardsInput{})
				return err
			}},
		}
		throttles := retry.IsErrorThrottles(retry.DefaultThrottles)
		for _, c := range calls {
			before := count(e.proxy.Requests(), c.service)
			err := c.call()
			if errorCode(err) != c.wantCode || throttles.IsErrorThrottle(err) != aws.TrueTernary {
				t.Errorf("%s (%s): err = %v, code %q, want %s, a throttle to the SDK", c.protocol, c.service, err, errorCode(err), c.wantCode)
			}
			if n := count(e.proxy.Requests(), c.service) - before; n != 2 {
				t.Errorf("%s (%s): the proxy saw %d attempts, want 2 (the SDK retries a throttle)", c.protocol, c.service, n)
			}
		}
	})

	t.Run("losing us-east-1 takes global services away", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Refuse})
		for _, region := range []string{"us-east-1", "us-west-2"} {
			_, err := route53.NewFromConfig(e.cfg(region, 1)).ListHostedZones(ctx, &route53.ListHostedZonesInput{})
			if httpStatus(err) != http.StatusServiceUnavailable {
				t.Errorf("route53 (client in %s) = %v, want 503: its control plane is in us-east-1", region, err)
			}
			_, err = iam.NewFromConfig(e.cfg(region, 1)).ListRoles(ctx, &iam.ListRolesInput{})
			if httpStatus(err) != http.StatusServiceUnavailable {
				t.Errorf("iam (client in %s) = %v, want 503: its control plane is in us-east-1", region, err)
			}
		}
		_, err := sts.NewFromConfig(e.cfg("us-west-2", 1)).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Errorf("regional sts in us-west-2 = %v, want success", err)
		}
		// With an emulator endpoint the SDK signs route53 with the client's
		// region; the proxy still counts it as us-east-1's, as AWS does.
		var mapped bool
		for _, r := range e.proxy.Requests() {
			mapped = mapped || (r.Service == "route53" && r.SignedRegion == "us-west-2" && r.Region == "us-east-1" && r.Fault == faultproxy.Refuse)
		}
		if !mapped {
			t.Errorf("requests = %+v, want route53 signed for us-west-2 refused as us-east-1's", e.proxy.Requests())
		}
		e.set(t, faultproxy.Rule{Region: "us-west-2", Fault: faultproxy.Refuse})
		if _, err := route53.NewFromConfig(e.cfg("us-west-2", 1)).ListHostedZones(ctx, &route53.ListHostedZonesInput{}); err != nil {
			t.Errorf("route53 with us-west-2 refused = %v, want success (Route 53 lives in us-east-1)", err)
		}
	})

	t.Run("unsigned requests pass", func(t *testing.T) {
		e.set(t, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Blackhole})
		resp, err := http.Get(e.url + "/moto-api/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /moto-api/ through the proxy = %s, want 200", resp.Status)
		}
	})
}

func count(rs []faultproxy.Request, service string) int {
	n := 0
	for _, r := range rs {
		if r.Service == service {
			n++
		}
	}
	return n
}

func TestControlAPI(t *testing.T) {
	e := start(t, "http://127.0.0.1:1")
	do := func(method, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.url+faultproxy.ControlPath+"rules", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := do(http.MethodGet, ""); code != http.StatusOK || body != "[]" {
		t.Errorf("GET rules at start = %d %s, want 200 []", code, body)
	}
	rules := `[{"region":"us-east-1","service":"route53","fault":"throttle"},{"region":"us-east-1","fault":"latency","delay":"1s"}]`
	if code, body := do(http.MethodPut, rules); code != http.StatusOK || body != rules {
		t.Errorf("PUT rules = %d %s, want 200 and the rules", code, body)
	}
	want := []faultproxy.Rule{{Region: "us-east-1", Service: "route53", Fault: faultproxy.Throttle}, {Region: "us-east-1", Fault: faultproxy.Latency, Delay: time.Second}}
	if diff := cmp.Diff(want, e.proxy.Rules()); diff != "" {
		t.Errorf("Rules() after PUT (-want +got):\n%s", diff)
	}
	if code, body := do(http.MethodGet, ""); code != http.StatusOK || body != rules {
		t.Errorf("GET rules = %d %s, want 200 %s", code, body, rules)
	}
	for _, bad := range []string{`{"region":"us-east-1"}`, `[{"region":"us-east-1","fault":"explode"}]`, `[{"region":"us-east-1","fault":"refuse","extra":1}]`} {
		if code, body := do(http.MethodPut, bad); code != http.StatusBadRequest || !strings.Contains(body, "faultproxy") {
			t.Errorf("PUT %s = %d %s, want 400 with the reason", bad, code, body)
		}
	}
	if len(e.proxy.Rules()) != 2 {
		t.Errorf("a refused PUT changed the rules to %v", e.proxy.Rules())
	}
	if code, body := do(http.MethodDelete, ""); code != http.StatusOK || body != "[]" || len(e.proxy.Rules()) != 0 {
		t.Errorf("DELETE rules = %d %s, rules now %v, want 200 [] and none", code, body, e.proxy.Rules())
	}
	if code, body := do(http.MethodGet, ""); code != http.StatusOK || body != "[]" {
		t.Errorf("GET rules after DELETE = %d %s, want 200 []", code, body)
	}
}

func TestCloseReleasesHeldRequests(t *testing.T) {
	base := runtime.NumGoroutine()
	p, err := faultproxy.Start(faultproxy.Options{Upstream: "http://127.0.0.1:1", Rules: []faultproxy.Rule{
		{Region: "us-east-1", Fault: faultproxy.Blackhole},
		{Region: "us-west-2", Fault: faultproxy.Latency, Delay: time.Hour},
	}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	errs := make(chan error, 2)
	for _, region := range []string{"us-east-1", "us-west-2"} {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, p.URL()+"/", bytes.NewBufferString("Action=X"))
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/"+region+"/rds/aws4_request, SignedHeaders=host, Signature=0")
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				err = errors.New(resp.Status)
			}
			errs <- err
		}()
	}
	waitFor(t, func() bool { return len(p.Requests()) == 2 })
	// A connection that never sends a request (a client's dial left over
	// from a cancelled request) must not hold Close either.
	idle, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close() with held requests took %s, want it prompt", took)
	}
	for range 2 {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a held request was answered, want its connection closed")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a held request was still held 5s after Close")
		}
	}
	client.CloseIdleConnections()
	waitFor(t, func() bool { return runtime.NumGoroutine() <= base })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("condition not met after 5s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
