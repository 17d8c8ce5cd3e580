package awsdr

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/dr"
	"paydr/internal/processor/api"
)

// DataPlane is how the backend sees what clients see, without any control
// plane: the failover name's DNS answer (Route 53 answers from its global
// data plane, by its health checkers, while its API in us-east-1 may be
// gone) and each region's API endpoint over HTTP. The zero value uses the
// system resolver, a client of its own and HTTPS.
type DataPlane struct {
	// LookupCNAME returns the host name a DNS name answers with: the end
	// of its CNAME chain, or the name itself when it has none (default
	// net.DefaultResolver.LookupCNAME).
	LookupCNAME func(ctx context.Context, host string) (string, error)
	// LookupHost returns the addresses a DNS name answers with (default
	// net.DefaultResolver.LookupHost). An alias record, which the failover
	// name is in a public zone (to a custom domain's regional target), has
	// no CNAME to follow: it answers with its target's addresses.
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Client sends the /health probes and the verify payment; each request
	// is bounded by its context (default: a client that uses no proxy
	// from the environment and keeps no connection alive, so every
	// request dials what DNS answers now).
	Client *http.Client
	// Scheme of the URLs built from host names (default "https").
	Scheme string
}

var defaultClient = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	TLSHandshakeTimeout: 10 * time.Second,
	DisableKeepAlives:   true,
}}

func (d DataPlane) lookup(ctx context.Context, host string) (string, error) {
	f := d.LookupCNAME
	if f == nil {
		f = net.DefaultResolver.LookupCNAME
	}
	name, err := f(ctx, host)
	if err != nil {
		return "", err
	}
	return canonicalHost(name), nil
}

func (d DataPlane) addrs(ctx context.Context, host string) ([]string, error) {
	f := d.LookupHost
	if f == nil {
		f = net.DefaultResolver.LookupHost
	}
	return f(ctx, host)
}

func (d DataPlane) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return defaultClient
}

func (d DataPlane) scheme() string {
	if d.Scheme != "" {
		return d.Scheme
	}
	return "https"
}

// url returns scheme://host path.
func (d DataPlane) url(host, path string) string { return d.scheme() + "://" + host + path }

// canonicalHost lower-cases a DNS name and drops its final dot.
func canonicalHost(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// endpointHost returns the host of a region's API endpoint, a URL such as
// https://abc123.execute-api.us-east-1.amazonaws.com (the failover records
// are CNAMEs to it) or a bare host name.
func endpointHost(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		return canonicalHost(u.Hostname())
	}
	return canonicalHost(strings.TrimRight(endpoint, "/"))
}

// trafficAnswer is the failover name's DNS answer.
type trafficAnswer struct {
	host   string // what the name answers with
	region string // whose API endpoint that is; "" when neither's
}

// traffic resolves the failover name and tells which region it answers
// with: the answer is the region's record target (its API endpoint's host,
// unless the topology names another), or both end at the same canonical
// name. A name without a CNAME (the alias records of a public domain)
// answers with the addresses of one region's target: the region whose
// target shares an address with it.
func (b *Backend) traffic(ctx context.Context) (trafficAnswer, error) {
	name := canonicalHost(b.topo.FailoverName)
	host, err := b.DataPlane.lookup(ctx, name)
	if err != nil {
		return trafficAnswer{}, fmt.Errorf("resolve %s: %w", name, err)
	}
	a := trafficAnswer{host: host}
	sides := []RegionTopology{b.topo.Primary, b.topo.Secondary}
	for _, side := range sides {
		if recordTarget(side) == host {
			a.region = side.Region
			return a, nil
		}
	}
	for _, side := range sides {
		if c, err := b.DataPlane.lookup(ctx, recordTarget(side)); err == nil && c == host {
			a.region = side.Region
			return a, nil
		}
	}
	if host == name {
		return b.aliasTraffic(ctx, name, sides)
	}
	return a, fmt.Errorf("%s answers %s, which is neither %s's endpoint (%s) nor %s's (%s)", name, host,
		b.topo.Primary.Region, recordTarget(b.topo.Primary), b.topo.Secondary.Region, recordTarget(b.topo.Secondary))
}

// aliasTraffic tells which region an alias answers with, by its addresses:
// Route 53 answers an alias with its target's addresses, and the two
// regions' API Gateway addresses never overlap. An answer that shares no
// address with either target (the targets' answers rotate among their
// addresses) is an error, which waiting steps poll past.
func (b *Backend) aliasTraffic(ctx context.Context, name string, sides []RegionTopology) (trafficAnswer, error) {
	got, err := b.DataPlane.addrs(ctx, name)
	if err != nil {
		return trafficAnswer{host: name}, fmt.Errorf("resolve %s: %w", name, err)
	}
	answer := map[string]bool{}
	for _, ip := range got {
		answer[ip] = true
	}
	var seen []string
	for _, side := range sides {
		target := recordTarget(side)
		addrs, err := b.DataPlane.addrs(ctx, target)
		if err != nil {
			seen = append(seen, fmt.Sprintf("%s's %s: %v", side.Region, target, err))
			continue
		}
		for _, ip := range addrs {
			if answer[ip] {
				return trafficAnswer{host: target, region: side.Region}, nil
			}
		}
		seen = append(seen, fmt.Sprintf("%s's %s: %s", side.Region, target, strings.Join(addrs, " ")))
	}
	return trafficAnswer{host: strings.Join(got, " ")}, fmt.Errorf("%s answers %s, addresses of neither region's target (%s)", name, strings.Join(got, " "), strings.Join(seen, "; "))
}

// probeHealth fetches a region's GET /health from its own API endpoint,
// bounded by ProbeTimeout: healthy when it answers 200 for that region (the
// region's database takes writes), as Route 53's health checkers judge it.
func (b *Backend) probeHealth(ctx context.Context, side RegionTopology) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, b.ProbeTimeout)
	defer cancel()
	u := b.DataPlane.url(endpointHost(side.APIEndpoint), api.PathHealth)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, fmt.Sprintf("GET %s: %v", u, err)
	}
	resp, err := b.DataPlane.client().Do(req)
	if err != nil {
		return false, fmt.Sprintf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	var body api.HealthBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err := json.Unmarshal(raw, &body); err != nil {
		return false, fmt.Sprintf("GET %s: HTTP %d, body is not the processor's health JSON", u, resp.StatusCode)
	}
	switch {
	case body.Region != side.Region:
		return false, fmt.Sprintf("GET %s: answered by region %q, not %s", u, body.Region, side.Region)
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Sprintf("GET %s: HTTP %d, database writable %v", u, resp.StatusCode, body.DatabaseWritable)
	}
	return true, fmt.Sprintf("GET %s: HTTP 200, database writable", u)
}

// waitTraffic polls the failover name's DNS answer and the region's /health
// until the name answers with the region's endpoint and the region is
// healthy. It calls no control plane.
func (b *Backend) waitTraffic(ctx context.Context, s dr.Step, side RegionTopology) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	start := time.Now()
	var last string
	for {
		a, err := b.traffic(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case a.region != s.Region:
			last = fmt.Sprintf("%s answers %s (%s)", b.topo.FailoverName, a.host, a.region)
		default:
			ok, health := b.probeHealth(ctx, side)
			if ok {
				return fmt.Sprintf("%s answers %s (%s) and its /health answers 200, after %s",
					b.topo.FailoverName, a.host, s.Region, time.Since(start).Round(time.Millisecond)), nil
			}
			last = fmt.Sprintf("%s answers %s (%s), but %s", b.topo.FailoverName, a.host, s.Region, health)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("awsdr: %s: not done after %s (last: %s): %w; Route 53 answers with the region whose health check passes: check that %s's /health answers 200, then run the command again",
				s.Name(), b.Wait, last, ctx.Err(), s.Region)
		case <-time.After(b.Poll):
		}
	}
}

// verifyBody is the verify payment's request body.
func verifyBody(id string) string {
	return fmt.Sprintf(`{"payment_id":%q,"amount":"0.01","currency":"USD"}`, id)
}

// paymentAnswer holds the fields of a payment response
// (payment.ResponseBody) verify reads.
type paymentAnswer struct {
	PaymentID string `json:"payment_id"`
	Region    string `json:"region"`
}

// verifyPayment sends a real payment through the failover name once it
// answers with the region, with the same payment_id until it is
// acknowledged, and checks that the region committed it. The payment
// carries the API key, read once per step.
func (b *Backend) verifyPayment(ctx context.Context, s dr.Step, opID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	id := dr.VerifyPaymentID(opID)
	name := canonicalHost(b.topo.FailoverName)
	u := b.DataPlane.url(name, api.PathPayments)
	var key string
	if b.APIKey != nil {
		kctx, kcancel := context.WithTimeout(ctx, b.CallTimeout)
		k, err := b.APIKey(kctx)
		kcancel()
		if err != nil {
			return "", fmt.Errorf("awsdr: %s: read the payments API key: %w; the DR role needs ssm:GetParameter on it and kms:Decrypt on its key in %s", s.Name(), err, b.acting)
		}
		key = k
	}
	var last string
	for {
		a, err := b.traffic(ctx)
		switch {
		case err != nil:
			last = err.Error()
		case a.region != s.Region:
			last = fmt.Sprintf("%s answers %s (%s)", name, a.host, a.region)
		default:
			status, got, err := b.postPayment(ctx, u, id, key)
			switch {
			case err != nil:
				last = err.Error()
			case status == http.StatusCreated || status == http.StatusOK:
				if got.Region != s.Region || got.PaymentID != id {
					return "", fmt.Errorf("awsdr: %s: payment %s sent through %s was committed by %q (payment_id %q), not %s; two regions may take writes: run paydr dr status and fence the region that must not write",
						s.Name(), id, name, got.Region, got.PaymentID, s.Region)
				}
				return fmt.Sprintf("payment %s sent through %s (answering %s) was committed by %s (HTTP %d)", id, name, a.host, s.Region, status), nil
			case status == http.StatusTooManyRequests || status >= 500:
				last = fmt.Sprintf("POST %s: HTTP %d", u, status)
			case status == http.StatusUnauthorized:
				return "", fmt.Errorf("awsdr: %s: POST %s: HTTP 401 for payment %s: the processor refused the API key; check that both regions' %s hold the same key (rotate with --api-key-version), then run the command again",
					s.Name(), u, id, b.APIKeyParameter)
			default:
				return "", fmt.Errorf("awsdr: %s: POST %s: HTTP %d for payment %s; the processor refused the verify payment: check its logs", s.Name(), u, status, id)
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("awsdr: %s: payment %s not acknowledged after %s (last: %s): %w; run the command again to retry with the same payment",
				s.Name(), id, b.Wait, last, ctx.Err())
		case <-time.After(b.Poll):
		}
	}
}

// postPayment sends one attempt of the verify payment with the API key
// (none when key is empty), bounded by CallTimeout.
func (b *Backend) postPayment(ctx context.Context, u, id, key string) (int, paymentAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, b.CallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(verifyBody(id)))
	if err != nil {
		return 0, paymentAnswer{}, fmt.Errorf("POST %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		apikey.Set(req.Header, key)
	}
	resp, err := b.DataPlane.client().Do(req)
	if err != nil {
		return 0, paymentAnswer{}, fmt.Errorf("POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	var got paymentAnswer
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &got); err != nil {
			return 0, got, fmt.Errorf("POST %s: HTTP %d, body is not a payment: %w", u, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, got, nil
}

// recordTarget is the host the failover name answers with when it sends
// traffic to the region t: its CNAME, or its alias target.
func recordTarget(t RegionTopology) string {
	if t.RecordTarget != "" {
		return canonicalHost(t.RecordTarget)
	}
	return endpointHost(t.APIEndpoint)
}
