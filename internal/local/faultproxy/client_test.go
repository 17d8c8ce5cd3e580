package faultproxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/faultproxy"
)

// TestClientRoundTrip: what the control API writes, Client reads back as
// the proxy's own Rules() and Requests(), every field set; what Client
// sends, the proxy holds.
func TestClientRoundTrip(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(upstream.Close)
	e := start(t, upstream.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := faultproxy.Client{URL: e.url, HTTP: &http.Client{Timeout: 5 * time.Second}}

	if got, err := c.Rules(ctx); err != nil || len(got) != 0 {
		t.Errorf("Client.Rules() at start = %v, %v, want none", got, err)
	}
	want := []faultproxy.Rule{
		{Region: "us-east-1", Service: "route53", Fault: faultproxy.Throttle},
		{Region: "us-west-2", Fault: faultproxy.Latency, Delay: 1500 * time.Millisecond},
	}
	got, err := c.SetRules(ctx, want...)
	if err != nil {
		t.Fatalf("Client.SetRules() error = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Client.SetRules() answer mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, e.proxy.Rules()); diff != "" {
		t.Errorf("Proxy.Rules() after Client.SetRules() mismatch (-want +got):\n%s", diff)
	}
	if got, err := c.Rules(ctx); err != nil || !cmp.Equal(e.proxy.Rules(), got) {
		t.Errorf("Client.Rules() = %v, %v, want Proxy.Rules() %v", got, err, e.proxy.Rules())
	}

	// A request signed for us-east-1 lambda passes (no rule matches) and is
	// recorded; one for us-east-1 route53 is throttled.
	for _, svc := range []string{"lambda", "route53"} {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/2015-03-31/functions", nil)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/"+svc+"/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reqs, err := c.Requests(ctx)
	if err != nil {
		t.Fatalf("Client.Requests() error = %v", err)
	}
	if diff := cmp.Diff(e.proxy.Requests(), reqs); diff != "" {
		t.Errorf("Client.Requests() mismatch with Proxy.Requests() (-want +got):\n%s", diff)
	}
	if len(reqs) != 2 || reqs[0].Service != "lambda" || reqs[0].Fault != "" || reqs[1].Fault != faultproxy.Throttle {
		t.Errorf("Client.Requests() = %+v, want lambda passed, then route53 throttled", reqs)
	}

	// A refused rule names the reason and keeps the rules in force.
	_, err = c.SetRules(ctx, faultproxy.Rule{Region: "us-east-1", Fault: "explode"})
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), `fault \"explode\"`) {
		t.Errorf("Client.SetRules(bad fault) error = %v, want HTTP 400 naming the fault", err)
	}
	if len(e.proxy.Rules()) != 2 {
		t.Errorf("a refused SetRules changed the rules to %v", e.proxy.Rules())
	}

	if err := c.ClearRules(ctx); err != nil {
		t.Fatalf("Client.ClearRules() error = %v", err)
	}
	if got, err := c.Rules(ctx); err != nil || len(got) != 0 || len(e.proxy.Rules()) != 0 {
		t.Errorf("Client.Rules() after ClearRules = %v, %v (proxy %v), want none", got, err, e.proxy.Rules())
	}
}

func TestClientErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := (faultproxy.Client{URL: "http://127.0.0.1:1"}).Rules(ctx); err == nil || !strings.HasPrefix(err.Error(), "fault proxy rules: ") {
		t.Errorf("Rules() with nothing listening error = %v, want fault proxy rules: ...", err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	if _, err := (faultproxy.Client{URL: srv.URL}).Requests(ctx); err == nil || err.Error() != "fault proxy requests: HTTP 503 gone" {
		t.Errorf("Requests() from a 503 error = %v, want fault proxy requests: HTTP 503 gone", err)
	}
}
