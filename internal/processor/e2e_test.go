package processor_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/processor"
	"paydr/internal/processor/processortest"
)

func startRealServer(t testing.TB, log *slog.Logger) (*processor.App, *httptest.Server) {
	t.Helper()
	env := processortest.Env(t)
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	return startServer(t, env, log)
}

// startServer wires the processor from env and serves it over HTTP.
func startServer(t testing.TB, env map[string]string, log *slog.Logger) (*processor.App, *httptest.Server) {
	t.Helper()
	cfg, err := processor.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	app, err := processor.New(context.Background(), cfg, processor.AppOptions{Logger: log, MaxConns: 16})
	if err != nil {
		t.Fatalf("New error = %v", err)
	}
	t.Cleanup(app.Close)
	srv := httptest.NewServer(app.Handler)
	t.Cleanup(srv.Close)
	return app, srv
}

// post sends body to url's POST /payments with processortest's API key.
func post(t testing.TB, c *http.Client, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/payments", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	apikey.Set(req.Header, processortest.APIKey)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestEndToEnd runs the wired processor against real PostgreSQL and moto,
// its API key read from the SSM SecureString in moto.
func TestEndToEnd(t *testing.T) {
	app, srv := startRealServer(t, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	health, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `{"region":"us-east-1","database_writable":true,"dynamodb_reachable":true}`; resp.StatusCode != 200 || string(health) != want {
		t.Errorf("GET /health = %d %s, want 200 %s", resp.StatusCode, health, want)
	}
	body := `{"payment_id":"e2e-1","amount":"10.01","currency":"USD","session_id":"s-e2e"}`
	status, _, first := post(t, http.DefaultClient, srv.URL, body)
	if status != 201 {
		t.Fatalf("POST = %d %s, want 201", status, first)
	}
	status, hdr, again := post(t, http.DefaultClient, srv.URL, body)
	if status != 201 || again != first || hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %d %s (replayed %q), want 201 %s replayed", status, again, hdr.Get("Idempotent-Replayed"), first)
	}
	if status, _, b := post(t, http.DefaultClient, srv.URL, strings.Replace(body, "10.01", "10.02", 1)); status != 409 {
		t.Errorf("conflicting retry = %d %s, want 409", status, b)
	}
	// The key came from the SecureString in moto: anything else is refused.
	for _, auth := range []string{"", "Bearer wrong-key-0123456789abcdefghijklmnopqrstuvwxyz"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"payment_id":"e2e-anon","amount":"1","currency":"USD"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST with Authorization %.12q = %d, want 401", auth, resp.StatusCode)
		}
	}
	totals, err := app.Ledger.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := totals["USD"]; got.Count != 1 || got.AmountMinor != 1001 {
		t.Errorf("ledger USD totals = %+v, want 1 payment of 1001", got)
	}
	// The event went to the emulator's bus at once and was marked in the
	// ledger: the outbox has nothing left to send.
	if n, err := app.Outbox.PublishPending(ctx, time.Nanosecond, 0); err != nil || n != 0 {
		t.Errorf("PublishPending after a published payment = %d, %v; want 0, nil", n, err)
	}
}

// TestEndToEndKeyUnreadable: a processor whose API key parameter cannot be
// read fails closed (503 for a request with a credential, 401 without),
// records nothing, and still answers /health, which needs no key.
func TestEndToEndKeyUnreadable(t *testing.T) {
	env := processortest.Env(t)
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	env[processor.EnvAPIKeyParam] = apikey.ParameterName("no-such-environment")
	app, srv := startServer(t, env, slog.New(slog.DiscardHandler))
	body := `{"payment_id":"e2e-closed","amount":"1.00","currency":"USD"}`
	if status, hdr, b := post(t, http.DefaultClient, srv.URL, body); status != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Errorf("POST with the key unreadable = %d %s (Retry-After %q), want 503 with Retry-After", status, b, hdr.Get("Retry-After"))
	}
	resp, err := http.Post(srv.URL+"/payments", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a key = %d, want 401", resp.StatusCode)
	}
	if totals, err := app.Ledger.Totals(context.Background()); err != nil || totals["USD"].Count != 0 {
		t.Errorf("ledger USD totals = %+v, %v; want none", totals["USD"], err)
	}
	resp, err = http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health = %d, want 200: it needs no key", resp.StatusCode)
	}
}
