package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/payment"
	"paydr/internal/payment/memory"
	"paydr/internal/processor"
)

// authRequests is the authentication table of issue 12, item 1: POST
// /payments needs the API key as Authorization: Bearer, checked before
// anything else; /health stays open.
var authRequests = []badRequest{
	{name: "right-key", body: validBody, status: 201},
	{name: "right-key-lower-case-scheme", headers: map[string]string{"Authorization": "bearer " + testKey}, body: validBody, status: 201},
	{name: "no-key", headers: map[string]string{"Authorization": unset}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "wrong-key", headers: map[string]string{"Authorization": "Bearer wrong-key-0123456789abcdefghijklmnopqrstuvwxyzABC"}, body: validBody,
		status: 401, code: payment.CodeUnauthorized, excludes: []string{"wrong-key"}},
	{name: "key-prefix", headers: map[string]string{"Authorization": "Bearer " + testKey[:len(testKey)-1]}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "key-and-more", headers: map[string]string{"Authorization": "Bearer " + testKey + "x"}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "empty-bearer", headers: map[string]string{"Authorization": "Bearer "}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "basic-scheme", headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, body: validBody,
		status: 401, code: payment.CodeUnauthorized, excludes: []string{"dXNlcjpwYXNz"}},
	{name: "bare-key", headers: map[string]string{"Authorization": testKey}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	// One way in: the key elsewhere than Authorization does not count.
	{name: "x-api-key-only", headers: map[string]string{"Authorization": unset, "X-Api-Key": testKey}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "key-in-query", path: processor.PathPayments + "?api_key=" + testKey, headers: map[string]string{"Authorization": unset}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	// Authentication comes first: an anonymous caller learns nothing about
	// what the API would accept, and no body is read.
	{name: "no-key-malformed-body", headers: map[string]string{"Authorization": unset}, body: `{"payment_id":`,
		status: 401, code: payment.CodeUnauthorized},
	{name: "no-key-wrong-content-type", headers: map[string]string{"Authorization": unset, "Content-Type": "text/plain"}, body: validBody,
		status: 401, code: payment.CodeUnauthorized},
	{name: "huge-authorization", headers: map[string]string{"Authorization": "Bearer " + strings.Repeat("k", 64<<10)}, body: validBody,
		status: 401, code: payment.CodeUnauthorized, excludes: []string{"kkkk"}},
}

// TestAuthentication: each request gets its status with a golden body
// (401s with WWW-Authenticate: Bearer), a refused one records nothing, and
// no log line carries a key, whether sent or expected; the Lambda adapter
// gives API Gateway events the same answers.
func TestAuthentication(t *testing.T) {
	for _, tt := range authRequests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, tt.request())
			checkAnswer(t, tt, w.Code, w.Body.String())
			if rows, _ := e.ledger.Payments(context.Background()); tt.status != 201 && len(rows) != 0 {
				t.Errorf("ledger rows after a %d = %d, want 0", w.Code, len(rows))
			}
			if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", w.Header().Get("WWW-Authenticate"))
			}
			checkLogs(t, e.logs.String())
			checkNoKeyLogged(t, e.logs.String())
			checkGolden(t, "auth-"+tt.name, w.Code, w.Header(), w.Body.Bytes())

			e = newEnv(t, fakeDB{writable: true})
			resp, err := e.h.Invoke(context.Background(), apiGatewayEvent(t, tt))
			if err != nil {
				t.Fatalf("Invoke error = %v", err)
			}
			checkAnswer(t, tt, resp.StatusCode, resp.Body)
			got := http.Header{}
			for k, v := range resp.Headers {
				got.Set(k, v)
			}
			if resp.StatusCode == http.StatusUnauthorized && got.Get("WWW-Authenticate") != w.Header().Get("WWW-Authenticate") {
				t.Errorf("Invoke WWW-Authenticate = %q, want %q as over HTTP", got.Get("WWW-Authenticate"), w.Header().Get("WWW-Authenticate"))
			}
			checkNoKeyLogged(t, e.logs.String())
		})
	}
}

// checkNoKeyLogged fails when the logs hold the test key or a credential
// the tests send.
func checkNoKeyLogged(t *testing.T, logs string) {
	t.Helper()
	for _, s := range []string{testKey, "wrong-key", "kkkkkkkk", "not-the-key", "nope-", "dXNlcjpwYXNz"} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain %q: a key or the Authorization header was logged:\n%.600s", s, logs)
		}
	}
}

// TestAuthenticationTwoHeaders: two Authorization headers are refused,
// even when both carry the key.
func TestAuthenticationTwoHeaders(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	r := badRequest{body: validBody}.request()
	r.Header.Add("Authorization", "Bearer "+testKey)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("POST with two Authorization headers = %d %s, want 401", w.Code, w.Body)
	}
}

// TestHealthNeedsNoKey: Route 53's health checkers send no credentials;
// /health answers them, with the region and booleans only.
func TestHealthNeedsNoKey(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	r := httptest.NewRequest(http.MethodGet, processor.PathHealth, nil)
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET /health without a key = %d %s (%v), want 200 with JSON", w.Code, w.Body, err)
	}
	for k, v := range body {
		switch k {
		case "region":
			if v != "us-east-1" {
				t.Errorf("/health region = %v, want us-east-1", v)
			}
		case "database_writable", "dynamodb_reachable":
			if _, ok := v.(bool); !ok {
				t.Errorf("/health %s = %v, want a boolean", k, v)
			}
		default:
			t.Errorf("/health has member %s = %v; it shows only the region and booleans", k, v)
		}
	}
}

// spyLedger is a payment.Ledger that counts every call.
type spyLedger struct {
	*memory.Ledger
	calls atomic.Int32
}

func (s *spyLedger) Insert(ctx context.Context, rec payment.Record) (payment.Record, bool, error) {
	s.calls.Add(1)
	return s.Ledger.Insert(ctx, rec)
}

func (s *spyLedger) Get(ctx context.Context, id string) (payment.Record, bool, error) {
	s.calls.Add(1)
	return s.Ledger.Get(ctx, id)
}

// spyBody fails every read: a request refused before its body is read never
// calls it.
type spyBody struct{ reads atomic.Int32 }

func (b *spyBody) Read([]byte) (int, error) {
	b.reads.Add(1)
	return 0, errors.New("spyBody: the body was read")
}

// TestUnauthenticatedTouchesNothing: a request without the key is refused
// before its body is read and before the ledger is called at all; with the
// key, the same request reaches both.
func TestUnauthenticatedTouchesNothing(t *testing.T) {
	tests := []struct {
		name          string
		authorization string
		status        int
		touches       bool
	}{
		{"no key", "", 401, false},
		{"wrong key", "Bearer not-the-key-0123456789abcdefghijklmnopqrstuvwxyz", 401, false},
		{"right key", "Bearer " + testKey, 400, true}, // the spy body cannot be read: 400, after the key
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &spyLedger{Ledger: memory.NewLedger()}
			svc := payment.NewService(payment.Deps{Ledger: l, Sessions: memory.NewSessions(), Events: &memory.Events{}, Region: "us-east-1",
				Logger: slog.New(slog.DiscardHandler)})
			h := processor.NewHandler(processor.Options{Service: svc, Database: fakeDB{writable: true}, Sessions: memory.NewSessions(),
				Region: "us-east-1", Logger: slog.New(slog.DiscardHandler), APIKey: testAPIKey()})
			body := &spyBody{}
			r := httptest.NewRequest(http.MethodPost, processor.PathPayments, body)
			r.Header.Set("Content-Type", "application/json")
			if tt.authorization != "" {
				r.Header.Set("Authorization", tt.authorization)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Errorf("POST = %d %s, want %d", w.Code, w.Body, tt.status)
			}
			if got := body.reads.Load() > 0; got != tt.touches {
				t.Errorf("body read = %v, want %v", got, tt.touches)
			}
			if n := l.calls.Load(); n != 0 {
				t.Errorf("ledger calls = %d, want 0", n)
			}
		})
	}
	// And with a readable body, the key gets the payment into the ledger.
	l := &spyLedger{Ledger: memory.NewLedger()}
	svc := payment.NewService(payment.Deps{Ledger: l, Sessions: memory.NewSessions(), Events: &memory.Events{}, Region: "us-east-1", Logger: slog.New(slog.DiscardHandler)})
	h := processor.NewHandler(processor.Options{Service: svc, Database: fakeDB{writable: true}, Sessions: memory.NewSessions(),
		Region: "us-east-1", Logger: slog.New(slog.DiscardHandler), APIKey: testAPIKey()})
	if w := do(t, h, http.MethodPost, processor.PathPayments, validBody); w.Code != 201 || l.calls.Load() == 0 {
		t.Errorf("POST with the key = %d, ledger calls %d; want 201 and the ledger called", w.Code, l.calls.Load())
	}
}

// TestFailsClosedWithoutKey: when the key cannot be read, or the handler
// has none, a request with a credential gets 503 (this region cannot check
// it; nothing recorded, retry) and one without gets 401, which needs no
// read: anonymous traffic never reaches SSM.
func TestFailsClosedWithoutKey(t *testing.T) {
	var loads atomic.Int32
	failing := processor.NewAPIKey(func(context.Context) (string, error) {
		loads.Add(1)
		return "", errors.New("apikey: get parameter /paydr/test/api/key: AccessDeniedException: not authorized")
	}, processor.APIKeyOptions{Logger: slog.New(slog.DiscardHandler)})
	tests := []struct {
		name   string
		key    *processor.APIKey
		auth   string
		status int
		code   string
	}{
		{"key unreadable, right key sent", failing, "Bearer " + testKey, 503, payment.CodeUnavailable},
		{"key unreadable, wrong key sent", failing, "Bearer nope-0123456789abcdefghijklmnopqrstuvwxyz", 503, payment.CodeUnavailable},
		{"key unreadable, none sent", failing, unset, 401, payment.CodeUnauthorized},
		{"no key configured, key sent", nil, "Bearer " + testKey, 503, payment.CodeUnavailable},
		{"no key configured, none sent", nil, unset, 401, payment.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			log := slog.New(processor.NewLogHandler(slog.NewJSONHandler(e.logs, nil)))
			svc := payment.NewService(payment.Deps{Ledger: e.ledger, Sessions: e.sessions, Events: e.events, Region: "us-east-1", Logger: log})
			h := processor.NewHandler(processor.Options{Service: svc, Database: fakeDB{writable: true}, Sessions: e.sessions, Region: "us-east-1",
				Logger: log, APIKey: tt.key})
			before := loads.Load()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, badRequest{body: validBody, headers: map[string]string{"Authorization": tt.auth}}.request())
			checkAnswer(t, badRequest{name: tt.name, status: tt.status, code: tt.code}, w.Code, w.Body.String())
			if rows, _ := e.ledger.Payments(context.Background()); len(rows) != 0 {
				t.Errorf("ledger rows = %d, want 0", len(rows))
			}
			if tt.status == 503 && w.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if tt.status == 401 && loads.Load() != before {
				t.Errorf("a request without a credential read the key (%d reads)", loads.Load()-before)
			}
			if strings.Contains(w.Body.String(), "AccessDenied") || strings.Contains(w.Body.String(), "/paydr/") {
				t.Errorf("body %s carries the internal error", w.Body)
			}
			checkNoKeyLogged(t, e.logs.String())
		})
	}
	e := newEnv(t, fakeDB{writable: true})
	h := processor.NewHandler(processor.Options{Service: payment.NewService(payment.Deps{Ledger: e.ledger, Sessions: e.sessions, Events: e.events}),
		Database: fakeDB{writable: true}, Sessions: e.sessions, Region: "us-east-1", Logger: slog.New(slog.DiscardHandler),
		APIKey: processor.NewAPIKey(func(context.Context) (string, error) { return "", errors.New("no") }, processor.APIKeyOptions{Logger: slog.New(slog.DiscardHandler)})})
	w := do(t, h, http.MethodPost, processor.PathPayments, validBody)
	checkGolden(t, "auth-key-unavailable", w.Code, w.Header(), w.Body.Bytes())
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeSSM is a KeyLoader whose key and failure the test sets, counting
// reads.
type fakeSSM struct {
	mu    sync.Mutex
	key   string
	err   error
	reads int
}

func (f *fakeSSM) load(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.key, f.err
}

func (f *fakeSSM) set(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key, f.err = key, err
}

func (f *fakeSSM) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// TestAPIKeyRefresh: the key is read once, used for Refresh, then read
// again, so a rotation takes effect within Refresh; a failed refresh keeps
// the key read before; a failed first read refuses (fail closed) and is
// retried after Retry, not by every check.
func TestAPIKeyRefresh(t *testing.T) {
	const (
		key1 = "key-one-0123456789abcdefghijklmnopqrstuvwxyz"
		key2 = "key-two-0123456789abcdefghijklmnopqrstuvwxyz"
	)
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	ssm := &fakeSSM{}
	k := processor.NewAPIKey(ssm.load, processor.APIKeyOptions{Refresh: time.Minute, Retry: 2 * time.Second, Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	ctx := context.Background()
	type check struct {
		presented string
		match     bool
		err       bool
	}
	steps := []struct {
		name    string
		do      func()
		checks  []check
		reads   int // total reads after the step
		comment string
	}{
		{name: "first read fails", do: func() { ssm.set("", errors.New("throttled")) },
			checks: []check{{key1, false, true}, {"", false, true}}, reads: 1},
		{name: "within retry: no read", do: func() { ssm.set(key1, nil); clock.Advance(time.Second) },
			checks: []check{{key1, false, true}}, reads: 1},
		{name: "after retry: read", do: func() { clock.Advance(time.Second) },
			checks: []check{{key1, true, false}, {key2, false, false}}, reads: 2},
		{name: "rotated, not yet read", do: func() { ssm.set(key2, nil); clock.Advance(59 * time.Second) },
			checks: []check{{key1, true, false}, {key2, false, false}}, reads: 2},
		{name: "refresh picks up the rotation", do: func() { clock.Advance(time.Second) },
			checks: []check{{key2, true, false}, {key1, false, false}}, reads: 3},
		{name: "refresh fails: the key read before stays", do: func() { ssm.set("", errors.New("ssm unreachable")); clock.Advance(time.Minute) },
			checks: []check{{key2, true, false}, {key1, false, false}}, reads: 4},
		{name: "failed refresh retried after retry only", do: func() { clock.Advance(time.Second) },
			checks: []check{{key2, true, false}}, reads: 4},
		{name: "retried", do: func() { ssm.set(key1, nil); clock.Advance(time.Second) },
			checks: []check{{key1, true, false}, {key2, false, false}}, reads: 5},
	}
	for _, st := range steps {
		st.do()
		for _, c := range st.checks {
			match, err := k.Matches(ctx, c.presented)
			if match != c.match || (err != nil) != c.err {
				t.Errorf("%s: Matches(%.7s…) = %v, %v; want %v, error %v", st.name, c.presented, match, err, c.match, c.err)
			}
			if err != nil && !errors.Is(err, payment.ErrUnavailable) {
				t.Errorf("%s: Matches error %v does not wrap payment.ErrUnavailable (the 503)", st.name, err)
			}
		}
		if got := ssm.count(); got != st.reads {
			t.Errorf("%s: %d reads of the key so far, want %d", st.name, got, st.reads)
		}
	}
}

// TestAPIKeyOneReadAtATime: concurrent first checks wait for one read; a
// refresh under way does not hold the others, who use the key read before.
func TestAPIKeyOneReadAtATime(t *testing.T) {
	release := make(chan struct{})
	var reads atomic.Int32
	clock := &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	k := processor.NewAPIKey(func(context.Context) (string, error) {
		reads.Add(1)
		<-release // each read hangs until released
		return testKey, nil
	}, processor.APIKeyOptions{Refresh: time.Minute, Now: clock.Now, Timeout: time.Minute, Logger: slog.New(slog.DiscardHandler)})
	const n = 16
	results := make(chan error, n)
	for range n {
		go func() {
			ok, err := k.Matches(context.Background(), testKey)
			if err == nil && !ok {
				err = errors.New("no match")
			}
			results <- err
		}()
	}
	time.Sleep(20 * time.Millisecond)
	release <- struct{}{}
	for range n {
		if err := <-results; err != nil {
			t.Errorf("concurrent first check: %v", err)
		}
	}
	if got := reads.Load(); got != 1 {
		t.Errorf("%d reads for %d concurrent first checks, want 1", got, n)
	}
	// A refresh that hangs: the others go on with the key read before.
	clock.Advance(2 * time.Minute)
	go func() { _, _ = k.Matches(context.Background(), testKey) }()
	for reads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan bool)
	go func() { ok, _ := k.Matches(context.Background(), testKey); done <- ok }()
	select {
	case ok := <-done:
		if !ok {
			t.Errorf("check during a refresh = false, want the key read before to match")
		}
	case <-time.After(5 * time.Second):
		t.Errorf("a check waited for a refresh under way")
	}
	close(release)
}

// ExampleNewAPIKey shows the processor's key as New wires it: read from
// the SSM SecureString named by PAYDR_API_KEY_PARAM, and checked against
// the credential of each request.
func ExampleNewAPIKey() {
	load := func(ctx context.Context) (string, error) {
		// In the processor: ssmkey.Read(ctx, ssmClient, cfg.APIKeyParam).
		return "example-key-0123456789abcdefghijklmnopqrstuvwxyz", nil
	}
	k := processor.NewAPIKey(load, processor.APIKeyOptions{Logger: slog.New(slog.DiscardHandler)})
	h := http.Header{}
	apikey.Set(h, "example-key-0123456789abcdefghijklmnopqrstuvwxyz")
	presented, _ := apikey.Presented(h)
	ok, err := k.Matches(context.Background(), presented)
	fmt.Println(ok, err)
	// Output: true <nil>
}
