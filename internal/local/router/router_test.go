package router_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"paydr/internal/local/router"
)

// backend is an httptest server whose /health answers with a settable status
// code and whose other paths answer with its name.
type backend struct {
	name   string
	health atomic.Int32
	srv    *httptest.Server
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.health.Store(http.StatusOK)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(int(b.health.Load()))
			return
		}
		io.WriteString(w, b.name+" "+r.URL.Path)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// fakeClock advances one second per call.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newRouter(t *testing.T, p, s *backend, threshold int) *router.Router {
	t.Helper()
	clock := &fakeClock{t: epoch}
	r, err := router.New(router.Config{
		Primary:          router.Target{Name: "us-east-1", URL: p.srv.URL},
		Secondary:        router.Target{Name: "us-west-2", URL: s.srv.URL},
		FailureThreshold: threshold,
		Timeout:          5 * time.Second,
		Now:              clock.Now,
	})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	return r
}

func TestHealthTransitionsFollowRoute53Semantics(t *testing.T) {
	// Each round sets the backends' /health codes, checks once, and expects
	// where traffic goes and each target's health and counters.
	type round struct {
		primary, secondary int
		wantActive         router.Position
		wantHealthy        [2]bool
		wantFailures       [2]int
		wantSuccesses      [2]int
	}
	tests := []struct {
		name       string
		threshold  int
		rounds     []round
		wantEvents []router.Event
	}{
		{
			name:      "primary fails over after threshold failures and fails back after threshold successes",
			threshold: 3,
			rounds: []round{
				{200, 200, router.Primary, [2]bool{true, true}, [2]int{0, 0}, [2]int{1, 1}},
				{500, 200, router.Primary, [2]bool{true, true}, [2]int{1, 0}, [2]int{0, 2}},
				{500, 200, router.Primary, [2]bool{true, true}, [2]int{2, 0}, [2]int{0, 3}},
				{500, 200, router.Secondary, [2]bool{false, true}, [2]int{3, 0}, [2]int{0, 4}},
				{200, 200, router.Secondary, [2]bool{false, true}, [2]int{0, 0}, [2]int{1, 5}},
				{503, 200, router.Secondary, [2]bool{false, true}, [2]int{1, 0}, [2]int{0, 6}}, // streak broken
				{200, 200, router.Secondary, [2]bool{false, true}, [2]int{0, 0}, [2]int{1, 7}},
				{302, 200, router.Secondary, [2]bool{false, true}, [2]int{0, 0}, [2]int{2, 8}}, // 3xx passes
				{204, 200, router.Primary, [2]bool{true, true}, [2]int{0, 0}, [2]int{3, 9}},
			},
			wantEvents: []router.Event{
				{Time: epoch.Add(4 * time.Second), Kind: router.HealthChange, Position: router.Primary, Target: "us-east-1", Healthy: false},
				{Time: epoch.Add(4 * time.Second), Kind: router.RouteChange, Position: router.Secondary, Target: "us-west-2", From: router.Primary},
				{Time: epoch.Add(9 * time.Second), Kind: router.HealthChange, Position: router.Primary, Target: "us-east-1", Healthy: true},
				{Time: epoch.Add(9 * time.Second), Kind: router.RouteChange, Position: router.Primary, Target: "us-east-1", From: router.Secondary},
			},
		},
		{
			name:      "both unhealthy sends traffic to the primary",
			threshold: 1,
			rounds: []round{
				{500, 200, router.Secondary, [2]bool{false, true}, [2]int{1, 0}, [2]int{0, 1}},
				{500, 500, router.Primary, [2]bool{false, false}, [2]int{2, 1}, [2]int{0, 0}},
				{500, 200, router.Secondary, [2]bool{false, true}, [2]int{3, 0}, [2]int{0, 1}},
			},
			wantEvents: []router.Event{
				{Time: epoch.Add(1 * time.Second), Kind: router.HealthChange, Position: router.Primary, Target: "us-east-1", Healthy: false},
				{Time: epoch.Add(1 * time.Second), Kind: router.RouteChange, Position: router.Secondary, Target: "us-west-2", From: router.Primary},
				{Time: epoch.Add(2 * time.Second), Kind: router.HealthChange, Position: router.Secondary, Target: "us-west-2", Healthy: false},
				{Time: epoch.Add(2 * time.Second), Kind: router.RouteChange, Position: router.Primary, Target: "us-east-1", From: router.Secondary},
				{Time: epoch.Add(3 * time.Second), Kind: router.HealthChange, Position: router.Secondary, Target: "us-west-2", Healthy: true},
				{Time: epoch.Add(3 * time.Second), Kind: router.RouteChange, Position: router.Secondary, Target: "us-west-2", From: router.Primary},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s := newBackend(t, "east"), newBackend(t, "west")
			r := newRouter(t, p, s, tt.threshold)
			ctx := context.Background()
			for i, rd := range tt.rounds {
				p.health.Store(int32(rd.primary))
				s.health.Store(int32(rd.secondary))
				r.CheckNow(ctx)
				st := r.Status()
				got := round{rd.primary, rd.secondary, st.Active,
					[2]bool{st.Targets[0].Healthy, st.Targets[1].Healthy},
					[2]int{st.Targets[0].ConsecutiveFailures, st.Targets[1].ConsecutiveFailures},
					[2]int{st.Targets[0].ConsecutiveSuccesses, st.Targets[1].ConsecutiveSuccesses}}
				if diff := cmp.Diff(rd, got, cmp.AllowUnexported(round{})); diff != "" {
					t.Fatalf("round %d: status mismatch (-want +got):\n%s", i+1, diff)
				}
				if wantAll := !got.wantHealthy[0] && !got.wantHealthy[1]; st.AllUnhealthy != wantAll {
					t.Errorf("round %d: AllUnhealthy = %v, want %v", i+1, st.AllUnhealthy, wantAll)
				}
			}
			if diff := cmp.Diff(tt.wantEvents, r.Events(), cmpopts.IgnoreFields(router.Event{}, "Reason")); diff != "" {
				t.Errorf("Events() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProxyFollowsActiveTarget(t *testing.T) {
	p, s := newBackend(t, "east"), newBackend(t, "west")
	r := newRouter(t, p, s, 1)
	front := httptest.NewServer(r)
	t.Cleanup(front.Close)

	get := func(path string) (code int, body, target string) {
		t.Helper()
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header.Get(router.TargetHeader)
	}
	type answer struct {
		Code         int
		Body, Target string
	}
	steps := []struct {
		name   string
		before func()
		want   answer
	}{
		{"primary healthy", func() {}, answer{200, "east /payments", "us-east-1"}},
		{"primary unhealthy", func() { p.health.Store(500) }, answer{200, "west /payments", "us-west-2"}},
		{"primary back", func() { p.health.Store(200) }, answer{200, "east /payments", "us-east-1"}},
	}
	for _, st := range steps {
		st.before()
		r.CheckNow(context.Background())
		code, body, target := get("/payments")
		if diff := cmp.Diff(st.want, answer{code, body, target}); diff != "" {
			t.Errorf("%s: GET /payments mismatch (-want +got):\n%s", st.name, diff)
		}
	}

	// A dead active target answers 503 with a JSON error until detection:
	// the connection was refused, so nothing was sent.
	p.srv.Close()
	code, body, target := get("/payments")
	if code != http.StatusServiceUnavailable || target != "us-east-1" || !strings.Contains(body, "was not sent") {
		t.Errorf("GET /payments to a dead primary = %d %q target %q, want 503 (not sent) with a JSON error from us-east-1", code, body, target)
	}
	r.CheckNow(context.Background())
	if code, body, _ := get("/payments"); code != 200 || body != "west /payments" {
		t.Errorf("GET /payments after detection = %d %q, want 200 from west", code, body)
	}

	// The status endpoint serves Status().
	resp, err := http.Get(front.URL + "/_router/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got router.Status
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r.Status(), got); diff != "" {
		t.Errorf("GET /_router/status mismatch with Status() (-want +got):\n%s", diff)
	}
	if got.Active != router.Secondary || got.ActiveTarget != "us-west-2" {
		t.Errorf("status active = %s/%s, want secondary/us-west-2", got.Active, got.ActiveTarget)
	}
}

func TestHealthCheckTimeoutFails(t *testing.T) {
	hang := hangingServer(t)
	s := newBackend(t, "west")
	r, err := router.New(router.Config{
		Primary:          router.Target{Name: "us-east-1", URL: hang.URL},
		Secondary:        router.Target{Name: "us-west-2", URL: s.srv.URL},
		FailureThreshold: 1,
		Timeout:          20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.CheckNow(context.Background())
	st := r.Status()
	if st.Targets[0].Healthy || !strings.Contains(st.Targets[0].LastResult, "deadline") || st.Active != router.Secondary {
		t.Errorf("after a hanging health check: primary healthy=%v last=%q active=%s; want unhealthy, deadline error, secondary",
			st.Targets[0].Healthy, st.Targets[0].LastResult, st.Active)
	}
}

func TestListenRunsChecksAndCloseFreesPort(t *testing.T) {
	p, s := newBackend(t, "east"), newBackend(t, "west")
	var mu sync.Mutex
	var seen []router.Event
	srv, err := router.Listen("127.0.0.1:0", router.Config{
		Primary:          router.Target{Name: "us-east-1", URL: p.srv.URL},
		Secondary:        router.Target{Name: "us-west-2", URL: s.srv.URL},
		Interval:         10 * time.Millisecond,
		FailureThreshold: 2,
		OnEvent:          func(e router.Event) { mu.Lock(); seen = append(seen, e); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			srv.Close(context.Background())
		}
	})
	p.health.Store(500)
	deadline := time.Now().Add(10 * time.Second) // generous: detection needs 2 rounds of 10 ms
	for srv.Status().Active != router.Secondary {
		if time.Now().After(deadline) {
			t.Fatalf("traffic still at %s 10s after the primary failed: %+v", srv.Status().Active, srv.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get(srv.URL() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "west /x" {
		t.Errorf("GET /x through the router = %q, want %q", b, "west /x")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
	closed = true
	l, err := net.Listen("tcp", srv.Addr())
	if err != nil {
		t.Fatalf("address %s still bound after Close: %v", srv.Addr(), err)
	}
	l.Close()
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(srv.Events(), seen); diff != "" {
		t.Errorf("OnEvent saw other events than Events() (-want +got):\n%s", diff)
	}
	if len(seen) < 2 || seen[0].Kind != router.HealthChange || seen[1].Kind != router.RouteChange || !seen[0].Time.After(time.Time{}) {
		t.Errorf("events = %+v, want a primary health change then a route change, timestamped", seen)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := router.Config{
		Primary:   router.Target{Name: "us-east-1", URL: "http://127.0.0.1:1"},
		Secondary: router.Target{Name: "us-west-2", URL: "http://127.0.0.1:2"},
	}
	tests := []struct {
		name    string
		mutate  func(*router.Config)
		wantErr string
	}{
		{"valid", func(*router.Config) {}, ""},
		{"no primary name", func(c *router.Config) { c.Primary.Name = "" }, "Primary.Name is required"},
		{"bad secondary url", func(c *router.Config) { c.Secondary.URL = "127.0.0.1:2" }, "Secondary.URL"},
		{"same names", func(c *router.Config) { c.Secondary.Name = "us-east-1" }, "name them apart"},
		{"threshold too high", func(c *router.Config) { c.FailureThreshold = 11 }, "FailureThreshold 11"},
		{"relative health path", func(c *router.Config) { c.HealthPath = "health" }, "must start with /"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) || (err != nil && !strings.HasPrefix(got, "router: config: ")) {
				t.Errorf("Validate() = %q, want error containing %q", got, tt.wantErr)
			}
		})
	}
}

// TestRunChecksTargetsIndependently shows that a target whose checks hang
// until the timeout does not hold back the checks of the other, as with
// Route 53's independent health checkers: the healthy target is checked
// several times before the hanging one's first check even ends.
func TestRunChecksTargetsIndependently(t *testing.T) {
	hang := hangingServer(t)
	s := newBackend(t, "west")
	r, err := router.New(router.Config{
		Primary:          router.Target{Name: "us-east-1", URL: hang.URL},
		Secondary:        router.Target{Name: "us-west-2", URL: s.srv.URL},
		Interval:         10 * time.Millisecond,
		FailureThreshold: 3,
		Timeout:          5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(4 * time.Second)
	for {
		st := r.Status()
		if st.Targets[0].Checks != 0 {
			t.Fatalf("the hanging primary's check ended before the secondary was checked 3 times (secondary checks %d)", st.Targets[1].Checks)
		}
		if st.Targets[1].Checks >= 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("secondary checked %d times in 4s while the primary hangs; want independent checks every 10ms", st.Targets[1].Checks)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hangingServer returns a server that answers nothing until the request is
// cancelled or the test ends: a target frozen mid-request.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	return hang
}

// A target that drops the connection after the request reached it leaves
// the outcome unknown: 502, never the 503 that says nothing was sent.
func TestProxyAnswers502WhenTheConnectionDropsAfterSending(t *testing.T) {
	p, s := newBackend(t, "east"), newBackend(t, "west")
	var reached atomic.Int32
	p.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return
		}
		reached.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack() error = %v", err)
			return
		}
		conn.Close()
	})
	front := httptest.NewServer(newRouter(t, p, s, 1))
	t.Cleanup(front.Close)
	resp, err := http.Post(front.URL+"/payments", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || reached.Load() == 0 {
		t.Errorf("POST /payments to a target that drops the connection = %d (reached %d times), want 502 after reaching it", resp.StatusCode, reached.Load())
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		t.Errorf("Retry-After = %q on an outcome-unknown answer, want none", ra)
	}
}
