// Package router is the local stand-in for Route 53 failover routing: one
// address that reverse-proxies every request to the PRIMARY target while its
// health check passes, and to the SECONDARY otherwise.
//
// Health checks follow Route 53's semantics for request_interval and
// failure_threshold: every Interval, each target's HealthPath is fetched
// with HTTP GET; a 2xx or 3xx answer within Timeout passes, anything else
// fails. A healthy target becomes unhealthy after FailureThreshold
// consecutive failures, and an unhealthy one healthy again after
// FailureThreshold consecutive successes. Targets start healthy, so traffic
// flows to the primary from the first request, and Run checks at once.
//
// When both targets are unhealthy the router does what Route 53 does when
// every record in a failover group is unhealthy: it treats them all as
// healthy, so traffic goes to the primary (Status.AllUnhealthy says so).
// Answering 503 instead would turn a health-check outage (both health
// endpoints down, the service itself fine) into a full outage, which Route 53
// avoids and a DR drill must not overstate.
//
// Like DNS failover, the router moves traffic only when a health check
// changes state: requests in between still go to a dead primary and fail,
// which is what clients see in AWS until detection. The router answers as
// truthfully as it knows: 503 with Retry-After (not committed, as the
// processor answers when nothing reached its ledger) when the target could
// not be reached, so nothing was sent; 502 (outcome unknown) when the
// connection failed after the request was sent.
//
// The router reports its state at GET /_router/status (Status as JSON) and
// its health and routing changes at GET /_router/events (Events as JSON),
// each with a timestamp: a drill reads detection time from them. Client
// reads both, with the same types. Responses it proxies carry the header
// X-Paydr-Target naming the target that served them.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Position is a target's place in the failover pair, as a Route 53 failover
// record's type: primary or secondary. It is not a database's role (writer
// or standby): locally the router's primary target is the processor of the
// primary slot whichever database writes. On the wire (status and events)
// it is the field "role".
type Position string

const (
	// Primary receives traffic while it is healthy.
	Primary Position = "primary"
	// Secondary receives traffic while the primary is unhealthy.
	Secondary Position = "secondary"
)

// TargetHeader is the response header naming the target that served a
// proxied request.
const TargetHeader = "X-Paydr-Target"

// Defaults for Config fields left zero. Route 53 allows request intervals of
// 10 or 30 s and thresholds of 1 to 10; locally a drill wants seconds.
const (
	DefaultInterval         = time.Second
	DefaultFailureThreshold = 3
	DefaultTimeout          = 2 * time.Second
	DefaultHealthPath       = "/health"
)

// Target is one backend of the failover pair.
type Target struct {
	// Name identifies the target in status, events and TargetHeader, such as
	// "us-east-1".
	Name string
	// URL is the backend's base URL, such as "http://127.0.0.1:8081".
	URL string
}

// Config configures a Router.
type Config struct {
	// Primary and Secondary are the failover pair. Both are required.
	Primary, Secondary Target
	// Interval is the time between health-check rounds (Route 53
	// request_interval). Default DefaultInterval.
	Interval time.Duration
	// FailureThreshold is the number of consecutive failed (or passed)
	// checks that make a healthy target unhealthy (or an unhealthy one
	// healthy), as Route 53's failure_threshold. Default
	// DefaultFailureThreshold.
	FailureThreshold int
	// Timeout bounds one health-check request. Default DefaultTimeout, or
	// Interval when that is shorter.
	Timeout time.Duration
	// HealthPath is the path checked on each target. Default
	// DefaultHealthPath.
	HealthPath string
	// Now returns the current time for status and events; default time.Now.
	// Tests pass a fake clock.
	Now func() time.Time
	// OnEvent, if set, is called (outside the router's lock) with every
	// event as it is recorded.
	OnEvent func(Event)
}

// Validate reports the first invalid field of c, after defaults.
func (c Config) Validate() error {
	for _, t := range []struct {
		field string
		t     Target
	}{{"Primary", c.Primary}, {"Secondary", c.Secondary}} {
		if t.t.Name == "" {
			return fmt.Errorf("router: config: %s.Name is required", t.field)
		}
		u, err := url.Parse(t.t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("router: config: %s.URL %q is not an http(s) URL with a host", t.field, t.t.URL)
		}
	}
	if c.Primary.Name == c.Secondary.Name {
		return fmt.Errorf("router: config: Primary.Name and Secondary.Name are both %q; name them apart", c.Primary.Name)
	}
	if c.Interval < 0 || c.Timeout < 0 {
		return errors.New("router: config: Interval and Timeout must not be negative")
	}
	if c.FailureThreshold < 0 || c.FailureThreshold > 10 {
		return fmt.Errorf("router: config: FailureThreshold %d is outside Route 53's 1..10", c.FailureThreshold)
	}
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		return fmt.Errorf("router: config: HealthPath %q must start with /", c.HealthPath)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.FailureThreshold == 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.Timeout == 0 {
		// A check that outlives the interval would delay the next one: a
		// hung target then counts one failure per timeout, not per interval.
		c.Timeout = min(DefaultTimeout, c.Interval)
	}
	if c.HealthPath == "" {
		c.HealthPath = DefaultHealthPath
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// EventKind says what an Event records.
type EventKind string

const (
	// HealthChange records a target becoming healthy or unhealthy.
	HealthChange EventKind = "health"
	// RouteChange records traffic moving from one target to the other.
	RouteChange EventKind = "route"
)

// Event is a timestamped change of a target's health or of where traffic
// goes.
type Event struct {
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	// Position and Target name the target whose health changed, or that
	// traffic moved to.
	Position Position `json:"role"`
	Target   string   `json:"target"`
	// Healthy is the target's new health (HealthChange only).
	Healthy bool `json:"healthy,omitempty"`
	// From is the position traffic moved away from (RouteChange only).
	From Position `json:"from,omitempty"`
	// Reason explains the change, such as the last check's error.
	Reason string `json:"reason"`
}

// TargetStatus is one target's health-check state.
type TargetStatus struct {
	Position             Position  `json:"role"`
	Name                 string    `json:"name"`
	URL                  string    `json:"url"`
	Healthy              bool      `json:"healthy"`
	ConsecutiveFailures  int       `json:"consecutive_failures"`
	ConsecutiveSuccesses int       `json:"consecutive_successes"`
	Checks               int       `json:"checks"`
	LastCheck            time.Time `json:"last_check,omitzero"`
	LastResult           string    `json:"last_result,omitempty"`
	LastChange           time.Time `json:"last_change,omitzero"`
}

// Status is the router's state: each target's health and where traffic goes.
type Status struct {
	// Active is the position that receives traffic now, ActiveTarget its
	// name.
	Active       Position `json:"active"`
	ActiveTarget string   `json:"active_target"`
	// AllUnhealthy is true when both targets are unhealthy and traffic goes
	// to the primary regardless, as Route 53 does.
	AllUnhealthy     bool           `json:"all_unhealthy"`
	Targets          []TargetStatus `json:"targets"`
	IntervalMillis   int64          `json:"interval_ms"`
	FailureThreshold int            `json:"failure_threshold"`
	TimeoutMillis    int64          `json:"timeout_ms"`
}

type target struct {
	pos   Position
	cfg   Target
	url   *url.URL
	proxy *httputil.ReverseProxy
	st    TargetStatus
}

// Router health-checks a failover pair and proxies to the active target. It
// implements http.Handler; its methods are safe for concurrent use.
type Router struct {
	cfg    Config
	client *http.Client

	mu      sync.Mutex
	targets [2]*target // primary, secondary
	active  Position
	events  []Event
}

// New returns a router for cfg. It does not check anything until CheckNow or
// Run is called.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	r := &Router{
		cfg: cfg,
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx passes, as in Route 53
			},
		},
		active: Primary,
	}
	for i, tc := range []struct {
		pos Position
		t   Target
	}{{Primary, cfg.Primary}, {Secondary, cfg.Secondary}} {
		u, _ := url.Parse(tc.t.URL)
		t := &target{pos: tc.pos, cfg: tc.t, url: u,
			st: TargetStatus{Position: tc.pos, Name: tc.t.Name, URL: tc.t.URL, Healthy: true}}
		t.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.SetXForwarded()
			},
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
			ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
				if notSent(err) {
					// Nothing reached the target: certainly not
					// committed, so the processor's own answer for
					// that (503, retry later) is the truth.
					w.Header().Set("Retry-After", "1")
					writeJSON(w, http.StatusServiceUnavailable, map[string]string{
						"error":   "unavailable",
						"message": fmt.Sprintf("router: %s (%s) cannot be reached, the request was not sent: %v", tc.t.Name, tc.pos, err),
						"target":  tc.t.Name,
					})
					return
				}
				writeJSON(w, http.StatusBadGateway, map[string]string{
					"error":  fmt.Sprintf("router: proxy to %s (%s): %v", tc.t.Name, tc.pos, err),
					"target": tc.t.Name,
				})
			},
		}
		r.targets[i] = t
	}
	return r, nil
}

// notSent reports whether a proxy error happened before any of the request
// left: the connection to the target could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// CheckNow runs one round of health checks, both targets concurrently, and
// applies the results together. Tests call it to step the router.
func (r *Router) CheckNow(ctx context.Context) {
	results := make([]error, len(r.targets))
	var wg sync.WaitGroup
	for i, t := range r.targets {
		wg.Go(func() { results[i] = r.check(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // a canceled round says nothing about the targets
	}
	r.apply(results)
}

// check runs one health check of t.
func (r *Router) check(ctx context.Context, t *target) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	u := t.url.JoinPath(r.cfg.HealthPath)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: %s", r.cfg.HealthPath, resp.Status)
	}
	return nil
}

// apply records one round's results (nil = passed) and the changes they
// cause.
func (r *Router) apply(results []error) {
	idx := make([]int, len(results))
	for i := range idx {
		idx[i] = i
	}
	r.record(idx, results)
}

// record records the results of checks of the targets at idx (nil =
// passed), and the health and route changes they cause.
func (r *Router) record(idx []int, results []error) {
	r.mu.Lock()
	now := r.cfg.Now()
	var fresh []Event
	for k, i := range idx {
		t := r.targets[i]
		err := results[k]
		st := &t.st
		st.Checks++
		st.LastCheck = now
		if err == nil {
			st.LastResult = "ok"
			st.ConsecutiveSuccesses++
			st.ConsecutiveFailures = 0
		} else {
			st.LastResult = err.Error()
			st.ConsecutiveFailures++
			st.ConsecutiveSuccesses = 0
		}
		switch {
		case st.Healthy && st.ConsecutiveFailures >= r.cfg.FailureThreshold:
			st.Healthy = false
			st.LastChange = now
			fresh = append(fresh, Event{Time: now, Kind: HealthChange, Position: t.pos, Target: t.cfg.Name, Healthy: false,
				Reason: fmt.Sprintf("%d consecutive failed checks, last: %s", st.ConsecutiveFailures, st.LastResult)})
		case !st.Healthy && st.ConsecutiveSuccesses >= r.cfg.FailureThreshold:
			st.Healthy = true
			st.LastChange = now
			fresh = append(fresh, Event{Time: now, Kind: HealthChange, Position: t.pos, Target: t.cfg.Name, Healthy: true,
				Reason: fmt.Sprintf("%d consecutive passed checks", st.ConsecutiveSuccesses)})
		}
	}
	active, reason := r.decide()
	if active != r.active {
		to := r.target(active)
		fresh = append(fresh, Event{Time: now, Kind: RouteChange, Position: active, Target: to.cfg.Name, From: r.active, Reason: reason})
		r.active = active
	}
	r.events = append(r.events, fresh...)
	onEvent := r.cfg.OnEvent
	r.mu.Unlock()
	if onEvent != nil {
		for _, e := range fresh {
			onEvent(e)
		}
	}
}

// decide returns the position that should receive traffic, and why. r.mu
// held.
func (r *Router) decide() (Position, string) {
	p, s := r.targets[0].st.Healthy, r.targets[1].st.Healthy
	switch {
	case p:
		return Primary, "primary is healthy"
	case s:
		return Secondary, "primary is unhealthy, secondary is healthy"
	default:
		return Primary, "both targets are unhealthy; like Route 53, treating both as healthy and answering with the primary"
	}
}

func (r *Router) target(pos Position) *target {
	if pos == Primary {
		return r.targets[0]
	}
	return r.targets[1]
}

// Run checks each target at once and then every Interval, independently,
// until ctx ends; it returns ctx.Err().
func (r *Router) Run(ctx context.Context) error {
	// Each target is checked on its own schedule, as Route 53's health
	// checkers do: a target that hangs until the timeout does not delay the
	// checks, and so the recovery, of the other.
	var wg sync.WaitGroup
	for i, t := range r.targets {
		wg.Go(func() {
			tick := time.NewTicker(r.cfg.Interval)
			defer tick.Stop()
			for {
				err := r.check(ctx, t)
				if ctx.Err() != nil {
					return // a canceled check says nothing about the target
				}
				r.record([]int{i}, []error{err})
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

// Status returns a snapshot of the router's state.
func (r *Router) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{
		Active:           r.active,
		ActiveTarget:     r.target(r.active).cfg.Name,
		AllUnhealthy:     !r.targets[0].st.Healthy && !r.targets[1].st.Healthy,
		IntervalMillis:   r.cfg.Interval.Milliseconds(),
		FailureThreshold: r.cfg.FailureThreshold,
		TimeoutMillis:    r.cfg.Timeout.Milliseconds(),
	}
	for _, t := range r.targets {
		st.Targets = append(st.Targets, t.st)
	}
	return st
}

// Events returns every health and routing change so far, oldest first.
func (r *Router) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// ServeHTTP serves /_router/status and /_router/events, and proxies every
// other request to the active target.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case StatusPath:
		writeJSON(w, http.StatusOK, r.Status())
		return
	case EventsPath:
		writeJSON(w, http.StatusOK, r.Events())
		return
	}
	r.mu.Lock()
	t := r.target(r.active)
	r.mu.Unlock()
	w.Header().Set(TargetHeader, t.cfg.Name)
	t.proxy.ServeHTTP(w, req)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Server is a Router listening on an address with its health checks running.
type Server struct {
	*Router
	ln     net.Listener
	http   *http.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// Listen starts a router for cfg on addr (such as "127.0.0.1:0") and runs its
// health checks in the background until Close.
func Listen(addr string, cfg Config) (*Server, error) {
	r, err := New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("router: listen on %s: %w; stop what listens there or choose another address", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Router: r, ln: ln, cancel: cancel, done: make(chan struct{}),
		http: &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = s.http.Serve(ln) }()
	go func() { _ = r.Run(ctx); close(s.done) }()
	return s, nil
}

// Addr returns the address the router listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the router's base URL, such as "http://127.0.0.1:8080".
func (s *Server) URL() string { return "http://" + s.Addr() }

// Close stops the health checks and the listener, waiting for in-flight
// requests until ctx ends, then closing their connections.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	<-s.done
	if err := s.http.Shutdown(ctx); err != nil {
		_ = s.http.Close()
		return fmt.Errorf("router: close: %w", err)
	}
	return nil
}
