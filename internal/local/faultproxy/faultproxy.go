// Package faultproxy is a reverse proxy in front of the AWS emulator (moto)
// that takes a region away, or part of one, the way a regional outage does:
// it reads each request's SigV4 credential scope
// (Credential=AKID/20260101/<region>/<service>/aws4_request, in the
// Authorization header or a presigned URL's X-Amz-Credential) and applies
// the first Rule that matches the region and, optionally, the service.
//
// Faults:
//   - refuse: HTTP 503 ServiceUnavailable, in the protocol's error shape;
//   - reset: the connection is closed without an answer;
//   - blackhole: the request is held, unanswered, until the client gives up
//     (its context ends) or the proxy closes; the hardest case, since only a
//     client deadline ends it;
//   - latency: the request waits Rule.Delay, then goes through;
//   - throttle: HTTP 400 with code Throttling (XML protocols) or
//     ThrottlingException (JSON and CBOR protocols), which aws-sdk-go-v2
//     retries as a throttle.
//
// Error bodies follow the request's protocol, told apart by its headers:
// awsJson (Content-Type application/x-amz-json-*), Smithy RPC v2 CBOR
// (Smithy-Protocol: rpc-v2-cbor), query and EC2 query (form-encoded body),
// restXml (route53, s3, cloudfront) and restJson (everything else).
//
// Global services have their control plane in one home region whatever
// region a client names: Route 53, IAM, CloudFront, Organizations and the
// STS global endpoint in us-east-1 (they sign with us-east-1, and the proxy
// maps route53, iam, cloudfront and organizations there even when a client
// signs with another region), so a rule for us-east-1 takes them away too,
// as losing us-east-1 does.
//
// Unsigned requests pass untouched. Requests under ControlPath are the
// control API and never reach the upstream:
//
//	GET    /_faultproxy/rules      the rules, as JSON (a list of Rule)
//	PUT    /_faultproxy/rules      replace the rules (a JSON list of Rule)
//	DELETE /_faultproxy/rules      remove every rule
//	GET    /_faultproxy/requests   the last signed requests seen (Request)
//
// Client drives the control API with these types.
//
// The proxy listens on loopback, or on the bridge address of a network
// namespace fabric (package netns), which only this machine's namespaces
// reach: it is a test and drill tool for the emulator, started by Start (Go) or paydr fault-proxy (CLI), and clients
// reach it by pointing their endpoint (paydr --endpoint) at URL.
package faultproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"paydr/internal/local/netns"
)

// ControlPath prefixes the control API's routes.
const ControlPath = "/_faultproxy/"

// Fault is what the proxy does to a request a rule matches.
type Fault string

// The faults.
const (
	// Refuse answers HTTP 503 ServiceUnavailable.
	Refuse Fault = "refuse"
	// Reset closes the connection without an answer.
	Reset Fault = "reset"
	// Blackhole holds the request until the client gives up or the proxy
	// closes.
	Blackhole Fault = "blackhole"
	// Latency delays the request by Rule.Delay, then forwards it.
	Latency Fault = "latency"
	// Throttle answers HTTP 400 with a throttling error.
	Throttle Fault = "throttle"
)

var faults = []Fault{Refuse, Reset, Blackhole, Latency, Throttle}

// Rule applies Fault to the requests signed for Region and, when Service is
// not empty, for that service (the SigV4 signing name: rds, lambda,
// route53, iam, sts, ssm, dynamodb, monitoring, ...).
type Rule struct {
	Region  string
	Service string
	Fault   Fault
	// Delay is the latency added (Fault Latency only).
	Delay time.Duration
}

// ruleJSON is Rule on the wire: {"region","service","fault","delay":"250ms"}.
type ruleJSON struct {
	Region  string `json:"region"`
	Service string `json:"service,omitempty"`
	Fault   Fault  `json:"fault"`
	Delay   string `json:"delay,omitempty"`
}

// MarshalJSON writes the rule with its delay as a Go duration string.
func (r Rule) MarshalJSON() ([]byte, error) {
	j := ruleJSON{Region: r.Region, Service: r.Service, Fault: r.Fault}
	if r.Delay != 0 {
		j.Delay = r.Delay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a rule written by MarshalJSON.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var j ruleJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = Rule{Region: j.Region, Service: j.Service, Fault: j.Fault}
	if j.Delay != "" {
		d, err := time.ParseDuration(j.Delay)
		if err != nil {
			return fmt.Errorf("delay: %w", err)
		}
		r.Delay = d
	}
	return nil
}

// Validate names what is wrong with the rule.
func (r Rule) Validate() error {
	switch {
	case r.Region == "":
		return errors.New("region is required")
	case !slices.Contains(faults, r.Fault):
		return fmt.Errorf("fault %q is not one of %s", r.Fault, joinFaults())
	case r.Fault == Latency && r.Delay <= 0:
		return errors.New("a latency fault needs a positive delay")
	case r.Fault != Latency && r.Delay != 0:
		return fmt.Errorf("delay is for latency faults, not %s", r.Fault)
	}
	return nil
}

func joinFaults() string {
	s := make([]string, len(faults))
	for i, f := range faults {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

func (r Rule) matches(region, service string) bool {
	return r.Region == region && (r.Service == "" || r.Service == service)
}

// Request is one signed request the proxy saw.
type Request struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Service and SignedRegion are from the credential scope; Region is
	// where the service's control plane lives: SignedRegion, or the home
	// region of a global service.
	Service      string `json:"service"`
	SignedRegion string `json:"signed_region"`
	Region       string `json:"region"`
	// Fault is the fault applied; empty when the request went through.
	Fault Fault `json:"fault,omitempty"`
}

// homes are the regions of global services' control planes.
var homes = map[string]string{
	"route53":       "us-east-1",
	"iam":           "us-east-1",
	"cloudfront":    "us-east-1",
	"organizations": "us-east-1",
}

// HomeRegion returns the region whose loss takes away a request signed
// for service in region: the global service's home region, else region.
func HomeRegion(service, region string) string {
	if h, ok := homes[service]; ok {
		return h
	}
	return region
}

var credentialRE = regexp.MustCompile(`Credential=[^/,\s]+/[0-9]{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)

// Scope returns the region and service r is signed for; ok is false for
// an unsigned request.
func Scope(r *http.Request) (region, service string, ok bool) {
	src := r.Header.Get("Authorization")
	if src == "" {
		if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
			src = "Credential=" + c
		}
	}
	m := credentialRE.FindStringSubmatch(src)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// Options configure Start.
type Options struct {
	// Upstream is the emulator's URL, such as http://127.0.0.1:5000.
	// Required.
	Upstream string
	// Routes send a service's requests elsewhere than Upstream (service
	// signing name → URL), such as rds to an emulator of the calls moto
	// lacks.
	Routes map[string]string
	// Listen is the loopback (or fabric bridge) address to listen on;
	// default 127.0.0.1:0 (a free port).
	Listen string
	// Rules are the rules to start with.
	Rules []Rule
	// Keep bounds the requests remembered for Requests (default 1024).
	Keep int
}

// Proxy is a running fault proxy.
type Proxy struct {
	ln        net.Listener
	srv       *http.Server
	transport *http.Transport
	upstream  *url.URL
	routes    map[string]*url.URL
	keep      int
	served    chan struct{}
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	mu    sync.Mutex
	rules []Rule
	seen  []Request
	// fresh are the connections that have not sent a request yet.
	fresh map[net.Conn]bool
}

// Start listens on opts.Listen (loopback only) and serves until Close.
func Start(opts Options) (*Proxy, error) {
	up, err := parseUpstream("upstream", opts.Upstream)
	if err != nil {
		return nil, err
	}
	p := &Proxy{upstream: up, routes: map[string]*url.URL{}, keep: opts.Keep, served: make(chan struct{}), closing: make(chan struct{})}
	if p.keep <= 0 {
		p.keep = 1024
	}
	for svc, u := range opts.Routes {
		if p.routes[svc], err = parseUpstream("route "+svc, u); err != nil {
			return nil, err
		}
	}
	if err := p.SetRules(opts.Rules...); err != nil {
		return nil, fmt.Errorf("faultproxy: start: %w", err)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: start: listen address %q: %w; use 127.0.0.1:PORT", listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback() && !netns.BridgeAddress(ip)) {
		return nil, fmt.Errorf("faultproxy: start: listen address %q is neither loopback nor a netns fabric's bridge; the proxy serves only this machine: use 127.0.0.1:PORT", listen)
	}
	p.ln, err = net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: start: %w; choose another port (127.0.0.1:0 picks a free one)", err)
	}
	p.transport = http.DefaultTransport.(*http.Transport).Clone()
	p.transport.Proxy = nil // never an environment proxy: the upstream is local
	p.fresh = map[net.Conn]bool{}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ConnState: p.track}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(p.ln)
	}()
	return p, nil
}

func parseUpstream(what, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: start: %s %q is not an http(s) URL; pass the emulator's endpoint, such as http://127.0.0.1:5000", what, s)
	}
	return u, nil
}

// URL returns the proxy's endpoint, such as http://127.0.0.1:41234: the
// endpoint clients use instead of the upstream's.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetRules replaces the rules; the first rule that matches a request
// applies.
func (p *Proxy) SetRules(rules ...Rule) error {
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("faultproxy: rule %d: %w", i+1, err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = slices.Clone(rules)
	return nil
}

// Rules returns the rules in force.
func (p *Proxy) Rules() []Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.rules)
}

// Requests returns the last signed requests seen, oldest first.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

// track keeps the connections that have not sent a request yet, which
// Shutdown would otherwise wait 5 s for.
func (p *Proxy) track(c net.Conn, st http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st == http.StateNew {
		p.fresh[c] = true
	} else {
		delete(p.fresh, c)
	}
}

// Close releases every held request (blackhole, latency), closes the
// connections that have not sent a request, stops serving and waits until
// the server has stopped; requests being forwarded get at most 5 s to
// finish.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = fmt.Errorf("faultproxy: close: %w", err)
		}
		p.mu.Lock()
		for c := range p.fresh {
			c.Close()
		}
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The listener is closed already: Shutdown's closing it again is
		// no failure.
		if err := p.srv.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
			p.closeErr = errors.Join(fmt.Errorf("faultproxy: close: %w", err), p.srv.Close())
		}
		<-p.served
		p.transport.CloseIdleConnections()
	})
	return p.closeErr
}

// ServeHTTP applies the first matching rule, or forwards the request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, ControlPath) {
		p.control(w, r)
		return
	}
	signed, service, ok := Scope(r)
	if !ok {
		p.forward(w, r, "")
		return
	}
	region := HomeRegion(service, signed)
	var rule *Rule
	p.mu.Lock()
	for i := range p.rules {
		if p.rules[i].matches(region, service) {
			rule = &p.rules[i]
			break
		}
	}
	rec := Request{Time: time.Now().UTC(), Method: r.Method, Path: r.URL.Path, Service: service, SignedRegion: signed, Region: region}
	var fault Fault
	var delay time.Duration
	if rule != nil {
		fault, delay = rule.Fault, rule.Delay
		rec.Fault = fault
	}
	p.seen = append(p.seen, rec)
	if len(p.seen) > p.keep {
		p.seen = slices.Delete(p.seen, 0, len(p.seen)-p.keep)
	}
	p.mu.Unlock()

	switch fault {
	case "":
		p.forward(w, r, service)
	case Refuse:
		writeError(w, r, service, http.StatusServiceUnavailable, "ServiceUnavailable", "ServiceUnavailable",
			fmt.Sprintf("faultproxy: %s is unavailable in %s", service, region))
	case Throttle:
		writeError(w, r, service, http.StatusBadRequest, "Throttling", "ThrottlingException", "Rate exceeded (faultproxy)")
	case Reset:
		abort(w)
	case Blackhole:
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
		abort(w)
	case Latency:
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			p.forward(w, r, service)
		case <-r.Context().Done():
			abort(w)
		case <-p.closing:
			abort(w)
		}
	}
}

// abort closes the client's connection without an answer.
func abort(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// forward sends r to the service's upstream.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, service string) {
	up := p.upstream
	if u, ok := p.routes[service]; ok {
		up = u
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = pr.In.Host // the host the request was signed for
		},
		Transport: p.transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client gave up
			}
			http.Error(w, "faultproxy: upstream "+up.Redacted()+": "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// control serves the control API.
func (p *Proxy) control(w http.ResponseWriter, r *http.Request) {
	switch path := strings.TrimPrefix(r.URL.Path, ControlPath); {
	case path == "rules" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, ruleList(p.Rules()))
	case path == "rules" && r.Method == http.MethodPut:
		var rules []Rule
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		if err := dec.Decode(&rules); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "faultproxy: rules: " + err.Error() + `; send a JSON list such as [{"region":"us-east-1","fault":"blackhole"}]`})
			return
		}
		if err := p.SetRules(rules...); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, ruleList(p.Rules()))
	case path == "rules" && r.Method == http.MethodDelete:
		_ = p.SetRules()
		writeJSON(w, http.StatusOK, []Rule{})
	case path == "requests" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, p.Requests())
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "faultproxy: no route " + r.Method + " " + r.URL.Path + "; use GET, PUT or DELETE " + ControlPath + "rules, or GET " + ControlPath + "requests"})
	}
}

// ruleList is rules, or an empty list for none: the control API answers
// [] rather than null.
func ruleList(rules []Rule) []Rule {
	if rules == nil {
		return []Rule{}
	}
	return rules
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"faultproxy: encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
