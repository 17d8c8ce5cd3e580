package processor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/apikey"
	"paydr/internal/golden"
	"paydr/internal/payment"
	"paydr/internal/payment/memory"
	"paydr/internal/processor"
)

// fakeDB is a processor.DatabaseProbe with a fixed answer.
type fakeDB struct {
	writable bool
	err      error
}

func (f fakeDB) Writable(context.Context) (bool, error) { return f.writable, f.err }

// testKey is the API key of the handlers under test: a test value, not a
// secret.
const testKey = "test-key-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

// staticKey is a processor.KeyLoader of a fixed key.
func staticKey(key string) processor.KeyLoader {
	return func(context.Context) (string, error) { return key, nil }
}

// testAPIKey is the credential of the handlers under test.
func testAPIKey() *processor.APIKey {
	return processor.NewAPIKey(staticKey(testKey), processor.APIKeyOptions{Logger: slog.New(slog.DiscardHandler)})
}

type env struct {
	h        *processor.Handler
	ledger   *memory.Ledger
	sessions *memory.Sessions
	events   *memory.Events
	logs     *bytes.Buffer
}

func newEnv(t testing.TB, db fakeDB) *env {
	t.Helper()
	e := &env{ledger: memory.NewLedger(), sessions: memory.NewSessions(), events: &memory.Events{}, logs: &bytes.Buffer{}}
	log := slog.New(processor.NewLogHandler(slog.NewJSONHandler(e.logs, nil)))
	svc := payment.NewService(payment.Deps{
		Ledger: e.ledger, Sessions: e.sessions, Events: e.events, Region: "us-east-1",
		Clock: memory.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 678901234, time.UTC), time.Millisecond), Logger: log,
	})
	e.h = processor.NewHandler(processor.Options{Service: svc, Database: db, Sessions: e.sessions, Region: "us-east-1", Logger: log, APIKey: testAPIKey()})
	return e
}

// recorded is the recorded shape of a response.
type recorded struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
}

// keptHeaders are compared; X-Request-Id is random unless sent.
var keptHeaders = []string{"Content-Type", "Idempotent-Replayed", "Allow", "Retry-After", "WWW-Authenticate", "X-Request-Id"}

func checkGolden(t *testing.T, name string, status int, header http.Header, body []byte) {
	t.Helper()
	g := recorded{Status: status, Headers: map[string]string{}, Body: json.RawMessage(body)}
	for _, k := range keptHeaders {
		if v := header.Get(k); v != "" {
			g.Headers[k] = v
		}
	}
	if !json.Valid(body) {
		t.Fatalf("%s: body is not JSON: %q", name, body)
	}
	got, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden.Check(t, filepath.Join("testdata", "golden", name+".json"), got)
}

func do(t testing.TB, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set(processor.HeaderRequestID, "req-test-1")
	r.Header.Set("Content-Type", "application/json")
	apikey.Set(r.Header, testKey)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestPayments(t *testing.T) {
	const valid = `{"payment_id":"pay_1","amount":"12.5","currency":"USD","session_id":"s-1"}`
	tests := []struct {
		name   string
		setup  func(e *env)
		before []string // bodies posted first
		method string
		path   string
		body   string
		status int
	}{
		{name: "created", body: valid, status: 201},
		{name: "replayed", before: []string{valid}, body: `{"payment_id":"pay_1","amount":12.50,"currency":"USD","session_id":"s-1"}`, status: 201},
		{name: "conflict", before: []string{valid}, body: `{"payment_id":"pay_1","amount":"13","currency":"USD","session_id":"s-1"}`, status: 409},
		{name: "malformed", body: `{"payment_id":`, status: 400},
		{name: "invalid-fields", body: `{"payment_id":"a b","amount":"0","currency":"usd","extra":true}`, status: 422},
		{name: "too-precise-jpy", body: `{"payment_id":"p","amount":"1.5","currency":"JPY"}`, status: 422},
		{name: "ledger-read-only", setup: func(e *env) { e.ledger.Err = payment.ErrUnavailable }, body: valid, status: 503},
		{name: "cached-but-ledger-down", before: []string{valid}, setup: func(e *env) { e.ledger.Err = payment.ErrUnavailable }, body: valid, status: 503},
		{name: "outcome-unknown", setup: func(e *env) {
			e.ledger.Err = fmt.Errorf("read tcp: connection reset by peer: %w", payment.ErrOutcomeUnknown)
		}, body: valid, status: 504},
		{name: "internal-error-hidden", setup: func(e *env) { e.ledger.Err = errors.New("FATAL: password authentication failed for user \"admin\"") }, body: valid, status: 500},
		{name: "wrong-method", method: http.MethodGet, status: 405},
		{name: "not-found", path: "/payment", body: valid, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			for _, b := range tt.before {
				if w := do(t, e.h, http.MethodPost, processor.PathPayments, b); w.Code != 201 {
					t.Fatalf("setup POST %s = %d %s", b, w.Code, w.Body)
				}
			}
			if tt.setup != nil {
				tt.setup(e)
			}
			method, path := or(tt.method, http.MethodPost), or(tt.path, processor.PathPayments)
			w := do(t, e.h, method, path, tt.body)
			if w.Code != tt.status {
				t.Errorf("%s %s = %d, want %d; body %s", method, path, w.Code, tt.status, w.Body)
			}
			checkGolden(t, "http-"+tt.name, w.Code, w.Header(), w.Body.Bytes())
			if w.Code >= 500 && strings.Contains(w.Body.String(), "password") {
				t.Errorf("5xx body leaks internal error text: %s", w.Body)
			}
		})
	}
}

func TestReplayIsByteIdentical(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	first := do(t, e.h, http.MethodPost, "/payments", `{"payment_id":"p9","amount":"1","currency":"KWD"}`)
	again := do(t, e.h, http.MethodPost, "/payments", `{"currency":"KWD","amount":"1.000","payment_id":"p9"}`)
	if first.Code != 201 || again.Code != 201 {
		t.Fatalf("statuses = %d, %d; want 201, 201", first.Code, again.Code)
	}
	if !bytes.Equal(first.Body.Bytes(), again.Body.Bytes()) {
		t.Errorf("replay body = %s, want %s", again.Body, first.Body)
	}
	if first.Header().Get(processor.HeaderReplayed) != "" || again.Header().Get(processor.HeaderReplayed) != "true" {
		t.Errorf("Idempotent-Replayed = %q, %q; want \"\", \"true\"", first.Header().Get(processor.HeaderReplayed), again.Header().Get(processor.HeaderReplayed))
	}
}

func TestHealth(t *testing.T) {
	tests := []struct {
		name      string
		db        fakeDB
		dynamoErr error
		status    int
	}{
		{"ok", fakeDB{writable: true}, nil, 200},
		{"database-read-only", fakeDB{writable: false}, nil, 503},
		{"database-unreachable", fakeDB{err: errors.New("dial tcp: refused")}, nil, 503},
		{"dynamodb-unreachable", fakeDB{writable: true}, errors.New("no route"), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.db)
			e.sessions.Err = tt.dynamoErr
			w := do(t, e.h, http.MethodGet, processor.PathHealth, "")
			if w.Code != tt.status {
				t.Errorf("GET /health = %d, want %d", w.Code, tt.status)
			}
			checkGolden(t, "health-"+tt.name, w.Code, w.Header(), w.Body.Bytes())
		})
	}
}

// slowPinger answers Ping only when its context ends, and records the
// context's deadline.
type slowPinger struct{ deadline time.Duration }

func (p *slowPinger) Ping(ctx context.Context) error {
	d, ok := ctx.Deadline()
	if !ok {
		return errors.New("slowPinger: no deadline: the health check would wait as long as DynamoDB does")
	}
	p.deadline = time.Until(d)
	<-ctx.Done()
	return ctx.Err()
}

// A DynamoDB that does not answer must not hold /health past the health
// checker's timeout: the ping has a short deadline of its own, and the
// region stays healthy (the table is a cache).
func TestHealthDoesNotWaitForASlowDynamoDB(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	ping := &slowPinger{}
	h := processor.NewHandler(processor.Options{Service: payment.NewService(payment.Deps{
		Ledger: e.ledger, Sessions: e.sessions, Events: e.events, Region: "us-east-1"}),
		Database: fakeDB{writable: true}, Sessions: ping, Region: "us-east-1"})
	w := do(t, h, http.MethodGet, processor.PathHealth, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"dynamodb_reachable":false`) {
		t.Errorf("GET /health with DynamoDB hanging = %d %s, want 200 with dynamodb_reachable false", w.Code, w.Body)
	}
	if ping.deadline <= 0 || ping.deadline > processor.HealthPingTimeout {
		t.Errorf("the ping's deadline was %s away, want within HealthPingTimeout %s", ping.deadline, processor.HealthPingTimeout)
	}
}

func TestLogsCarryRequestAndPaymentID(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	e.ledger.Err = errors.New("secret internal detail")
	do(t, e.h, http.MethodPost, "/payments", `{"payment_id":"pay_log","amount":"1","currency":"USD"}`)
	var line map[string]any
	lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &line); err != nil {
		t.Fatalf("log line %q: %v", lines[len(lines)-1], err)
	}
	want := map[string]any{"request_id": "req-test-1", "payment_id": "pay_log", "status": float64(500), "level": "ERROR"}
	got := map[string]any{}
	for k := range want {
		got[k] = line[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(e.logs.String(), "secret internal detail") {
		t.Errorf("the internal error should be logged; logs: %s", e.logs)
	}
}

func TestConcurrentDuplicatesOverHTTP(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	const n = 20
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(`{"payment_id":"dup","amount":"5","currency":"USD"}`))
			req.Header.Set("Content-Type", "application/json")
			apikey.Set(req.Header, testKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				answers <- answer{status: -1, body: err.Error()}
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	var bodies []string
	for range n {
		a := <-answers
		if a.status != 201 {
			t.Fatalf("POST = %d %s, want 201", a.status, a.body)
		}
		bodies = append(bodies, a.body)
	}
	sort.Strings(bodies)
	if bodies[0] != bodies[n-1] {
		t.Errorf("answers differ: %s vs %s", bodies[0], bodies[n-1])
	}
	if all, _ := e.ledger.Payments(context.Background()); len(all) != 1 {
		t.Errorf("ledger rows = %d, want 1", len(all))
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// stuckService is a processor.Processor whose database never answers: it
// waits for the request's deadline and fails as the ledger does then.
type stuckService struct{ deadline chan time.Time }

func (s stuckService) Process(ctx context.Context, req payment.Request) (payment.Result, error) {
	d, _ := ctx.Deadline()
	s.deadline <- d
	<-ctx.Done()
	return payment.Result{}, fmt.Errorf("ledger: insert %s: %w: %w", req.PaymentID, payment.ErrOutcomeUnknown, ctx.Err())
}

// TestPaymentDeadline: each payment request runs under RequestTimeout (the
// default when unset), and a database that never answers gets a 504 when
// it passes.
func TestPaymentDeadline(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		want    time.Duration
	}{
		{"set", 50 * time.Millisecond, 50 * time.Millisecond},
		{"default", 0, processor.DefaultRequestTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := stuckService{deadline: make(chan time.Time, 1)}
			h := processor.NewHandler(processor.Options{Service: svc, Database: fakeDB{writable: true}, Sessions: memory.NewSessions(),
				Region: "us-east-1", Logger: slog.New(slog.DiscardHandler), RequestTimeout: tt.timeout, APIKey: testAPIKey()})
			r := httptest.NewRequest(http.MethodPost, processor.PathPayments, strings.NewReader(`{"payment_id":"p","amount":"1","currency":"USD"}`))
			r.Header.Set("Content-Type", "application/json")
			apikey.Set(r.Header, testKey)
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			w := httptest.NewRecorder()
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(w, r.WithContext(ctx))
			}()
			deadline := <-svc.deadline
			if got := deadline.Sub(start); got < tt.want-time.Second || got > tt.want+time.Second {
				t.Errorf("Process deadline = start + %s, want start + %s", got, tt.want)
			}
			if tt.timeout == 0 {
				cancel() // no need to wait 10 s: the caller goes away
			}
			<-done
			if tt.timeout > 0 && (w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), payment.CodeOutcomeUnknown)) {
				t.Errorf("POST /payments past the deadline = %d %s, want 504 %s", w.Code, w.Body, payment.CodeOutcomeUnknown)
			}
		})
	}
}
