package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/dr"
	"paydr/internal/processor/api"
)

// Fault kinds a drill injects.
const (
	// FaultKillDB SIGKILLs the writer's database.
	FaultKillDB = "kill-db"
	// FaultKillProcessor SIGKILLs the writer region's processor.
	FaultKillProcessor = "kill-processor"
	// FaultCutRegion makes the writer region unreachable and pauses
	// replication (AWS FIS "Cross-Region: Connectivity").
	FaultCutRegion = "cut-region"
	// FaultSwitchover is no fault: a planned switchover under traffic.
	FaultSwitchover = "switchover"
)

// Faults lists the drill kinds.
var Faults = []string{FaultKillDB, FaultKillProcessor, FaultCutRegion, FaultPartition, FaultSwitchover}

// Event is a timestamped happening on a drill's timeline.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "fault", "unhealthy", "healthy", "route", "promoted",
	// "recovered", "lifted".
	Kind   string `json:"kind"`
	Region string `json:"region,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Env is what a drill needs from an environment besides a Backend.
type Env interface {
	// FailoverURL is where clients send payments (the failover name).
	FailoverURL() string
	// APIKey returns the payments API key every payment carries
	// (paydr/internal/apikey): the drill's client is one the processors
	// must authenticate like any other.
	APIKey(ctx context.Context) (string, error)
	// InjectFault injects fault kind into region (the writer) and returns
	// how to lift it.
	InjectFault(ctx context.Context, kind, region string) (lift func(context.Context) error, err error)
	// HealthEvents returns health and routing changes so far ("unhealthy",
	// "healthy", "route"), oldest first.
	HealthEvents(ctx context.Context) ([]Event, error)
	// LedgerRows returns the payments whose id starts with prefix in the
	// current writer's ledger.
	LedgerRows(ctx context.Context, prefix string) ([]LedgerRow, error)
	// CutReplication stops replication to region (the standby), as an
	// inter-region link that fails before the region itself does, and
	// returns how to restore it.
	CutReplication(ctx context.Context, region string) (restore func(context.Context) error, err error)
}

// Options configure a drill.
type Options struct {
	Fault string
	// Rate is payments per second (default 5: every local payment also
	// writes to the emulator, which saturates near 20/s and then fails the
	// health checks by itself), Duration the length of traffic (default
	// 30 s; extended to 5 s past the end of the operation, at most by a
	// minute), FaultAfter when the fault is injected (default 5 s).
	Rate       float64
	Duration   time.Duration
	FaultAfter time.Duration
	// RequestTimeout bounds each payment request (default 3 s).
	RequestTimeout time.Duration
	// DetectTimeout bounds the wait for the health checks to notice
	// (default 60 s).
	DetectTimeout time.Duration
	// MaxRTO is the RTO target checked (default 30 s).
	MaxRTO time.Duration
	// CutReplication, when positive, cuts replication to the standby this
	// long before an unplanned fault, so the writer commits and
	// acknowledges payments the standby never receives: the failover must
	// lose them, and the drill checks that the loss stays inside both the
	// replication lag measured at the fault and the estimate the failover
	// printed before it acted. With a switchover the drill expects the
	// switchover to be refused (the standby is not streaming) and the
	// writer to keep serving.
	CutReplication time.Duration
	// Prefix starts every payment id (default "drill-<time>").
	Prefix string
	// Log receives progress lines; nil discards.
	Log io.Writer
}

func (o Options) withDefaults(now time.Time) Options {
	if o.Rate <= 0 {
		o.Rate = 5
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.FaultAfter <= 0 {
		o.FaultAfter = 5 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 3 * time.Second
	}
	if o.DetectTimeout <= 0 {
		o.DetectTimeout = 60 * time.Second
	}
	if o.MaxRTO <= 0 {
		o.MaxRTO = 30 * time.Second
	}
	if o.Prefix == "" {
		o.Prefix = "drill-" + now.UTC().Format("20060102T150405")
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// Validate reports the first invalid option.
func (o Options) Validate() error {
	switch o.Fault {
	case FaultKillDB, FaultKillProcessor, FaultCutRegion, FaultPartition, FaultSwitchover:
	default:
		return fmt.Errorf("drill: fault %q is not one of %v", o.Fault, Faults)
	}
	if o.Rate > 500 {
		return fmt.Errorf("drill: rate %.0f/s is above 500/s; a drill measures recovery, not capacity", o.Rate)
	}
	if o.Duration > 10*time.Minute {
		return fmt.Errorf("drill: duration %s is above 10m", o.Duration)
	}
	if o.FaultAfter >= o.Duration {
		return fmt.Errorf("drill: fault-after %s must be shorter than duration %s", o.FaultAfter, o.Duration)
	}
	if o.CutReplication < 0 {
		return fmt.Errorf("drill: cut-replication %s is negative", o.CutReplication)
	}
	if o.CutReplication > 0 && o.CutReplication >= o.FaultAfter {
		return fmt.Errorf("drill: cut-replication %s must be shorter than fault-after %s: the cut happens under traffic, before the fault", o.CutReplication, o.FaultAfter)
	}
	return nil
}

// checkLoopback refuses a failover URL that is not on loopback: drills send
// traffic only to this machine.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("drill: failover url %q: %w", raw, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("drill: failover url %q is not on loopback; drills send traffic only to this machine", raw)
	}
	return nil
}

// Drill runs a game day against b and env: steady payments through the
// failover name, a fault in the writer region, detection by the health
// checks, a failover through Operate (or, for FaultSwitchover, a planned
// switchover), then the classification of every payment against the new
// writer's ledger. The fault is lifted before it returns; the writer stays
// where the drill moved it (paydr dr failback returns it).
func Run(ctx context.Context, b dr.Backend, env Env, locker dr.Locker, j *dr.Journal, opts Options) (*Report, error) {
	start := time.Now()
	opts = opts.withDefaults(start)
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkLoopback(env.FailoverURL()); err != nil {
		return nil, err
	}
	key, err := env.APIKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: read the payments API key: %w", err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	ws := st.Writers()
	if len(ws) != 1 || !st.Replication.Streaming {
		return nil, &dr.Refusal{Op: "drill", Reason: "the pair is not healthy: a drill needs one writer and a streaming standby",
			Remedy: "run paydr dr status, then paydr dr failback (or switchover) to restore the pair"}
	}
	writer := ws[0]
	standby, _ := st.Other(writer.Name)
	rep := &Report{Backend: st.Backend, Fault: opts.Fault, From: writer.Name, To: standby.Name,
		Rate: opts.Rate, Duration: opts.Duration, Prefix: opts.Prefix, Start: start, MaxRTO: opts.MaxRTO,
		RPOBound: writer.RPOBound, RPOZero: writer.Synchronous}
	fmt.Fprintf(opts.Log, "drill %s: %s writer %s, standby %s; %.0f payments/s for %s through %s\n",
		opts.Prefix, opts.Fault, writer.Name, standby.Name, opts.Rate, opts.Duration, env.FailoverURL())

	trafficCtx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	gen := &generator{url: env.FailoverURL(), key: key, prefix: opts.Prefix, timeout: opts.RequestTimeout}
	trafficDone := make(chan struct{})
	stopAt := make(chan time.Time, 1)
	go func() { gen.run(trafficCtx, opts.Rate, stopAt); close(trafficDone) }()
	inr, err := startInRegion(trafficCtx, env, opts, writer.Name, key) // nil unless a partition drill
	if err != nil {
		return nil, err
	}
	if inr != nil {
		rep.InRegion = &InRegionTraffic{Region: inr.region, URL: inr.url}
	}

	var restoreReplication func(context.Context) error
	defer func() {
		if restoreReplication != nil {
			_ = restoreReplication(context.WithoutCancel(ctx))
		}
	}()
	if opts.CutReplication > 0 {
		select {
		case <-time.After(time.Until(start.Add(opts.FaultAfter - opts.CutReplication))):
		case <-ctx.Done():
			return nil, fmt.Errorf("drill: %w", ctx.Err())
		}
		restore, err := env.CutReplication(ctx, standby.Name)
		if err != nil {
			return nil, fmt.Errorf("drill: cut replication to %s: %w", standby.Name, err)
		}
		restoreReplication = restore
		rep.ReplicationCutAt = time.Now()
		rep.Events = append(rep.Events, Event{Time: rep.ReplicationCutAt, Kind: "cut", Region: standby.Name, Detail: "replication to the standby cut"})
		fmt.Fprintf(opts.Log, "replication to %s cut; %s keeps committing for %s before the fault\n", standby.Name, writer.Name, opts.CutReplication)
	}
	select {
	case <-time.After(time.Until(start.Add(opts.FaultAfter))):
	case <-ctx.Done():
		return nil, fmt.Errorf("drill: %w", ctx.Err())
	}
	if pre, err := b.Status(ctx); err == nil {
		rep.LagAtFault = pre.Replication
	}
	var lift func(context.Context) error
	rep.FaultAt = time.Now()
	var opErr error
	var out dr.Outcome
	if opts.Fault == FaultSwitchover {
		fmt.Fprintf(opts.Log, "switchover from %s to %s under traffic\n", writer.Name, standby.Name)
		out, opErr = dr.Operate(ctx, b, locker, j, dr.Request{Op: dr.Switchover, Owner: "drill " + opts.Prefix}, opts.Log)
	} else {
		fmt.Fprintf(opts.Log, "injecting %s in %s\n", opts.Fault, writer.Name)
		lift, err = env.InjectFault(ctx, opts.Fault, writer.Name)
		if err != nil {
			return nil, fmt.Errorf("drill: inject %s: %w", opts.Fault, err)
		}
		detected, derr := waitDetection(ctx, env, writer.Name, rep.FaultAt, opts.DetectTimeout)
		if derr != nil {
			opErr = derr
		} else {
			rep.DetectedAt = detected
			fmt.Fprintf(opts.Log, "detected after %s; failing over to %s\n", detected.Sub(rep.FaultAt).Round(time.Millisecond), standby.Name)
			if pre, err := b.Status(ctx); err == nil && !pre.Replication.LastReplayed.IsZero() {
				rep.RPOLagAtFault = max(0, rep.FaultAt.Sub(pre.Replication.LastReplayed))
				rep.LastReplayed = pre.Replication.LastReplayed
			}
			out, opErr = dr.Operate(ctx, b, locker, j, dr.Request{Op: dr.Failover, Options: dr.Options{AllowDataLoss: true}, Owner: "drill " + opts.Prefix}, opts.Log)
		}
	}
	var refusal *dr.Refusal
	if opts.Fault == FaultSwitchover && opts.CutReplication > 0 && errors.As(opErr, &refusal) {
		rep.Refused = refusal.Error()
		fmt.Fprintf(opts.Log, "refused, as it must be while replication is cut: %v\n", refusal)
		opErr = nil
	}
	rep.OpID = out.OpID
	rep.LossEstimate = out.Plan.Loss
	if s, ok := out.Step(dr.ActionFence, writer.Name); ok && !s.End.IsZero() && s.Error == "" && !s.Failed {
		rep.FencedAt = s.End
	}
	if s, ok := out.Step(dr.ActionPromote, ""); ok && !s.End.IsZero() {
		rep.PromotedAt, rep.PromoteStarted = s.End, s.Start
	}
	if s, ok := out.Step(dr.ActionPreserve, ""); ok {
		rep.Preserved = s.Result
	}
	if opErr != nil {
		rep.OperationError = opErr.Error()
		fmt.Fprintf(opts.Log, "operation failed: %v\n", opErr)
	}
	// Traffic runs for Duration, and at least 5 s past the end of the
	// operation so recovery is seen, but never more than a minute longer.
	end := start.Add(opts.Duration)
	if t := time.Now().Add(5 * time.Second); t.After(end) {
		end = t
	}
	if limit := start.Add(opts.Duration + time.Minute); end.After(limit) {
		end = limit
	}
	stopAt <- end
	inr.stop(end)
	select {
	case <-trafficDone:
	case <-ctx.Done():
	}
	stopTraffic()
	<-trafficDone
	inr.wait()
	rep.End = time.Now()
	if lift != nil {
		if err := lift(context.WithoutCancel(ctx)); err != nil {
			rep.Notes = append(rep.Notes, "lifting the fault: "+err.Error())
		} else {
			rep.Events = append(rep.Events, Event{Time: time.Now(), Kind: "lifted", Region: writer.Name, Detail: opts.Fault})
		}
	}
	if evs, err := env.HealthEvents(ctx); err == nil {
		for _, e := range evs {
			if !e.Time.Before(start) {
				rep.Events = append(rep.Events, e)
			}
		}
	}
	if restoreReplication != nil {
		if err := restoreReplication(context.WithoutCancel(ctx)); err != nil {
			rep.Notes = append(rep.Notes, "restoring replication: "+err.Error())
		}
		restoreReplication = nil
	}
	rows, err := env.LedgerRows(ctx, opts.Prefix)
	if err != nil {
		return rep, fmt.Errorf("drill: read the new writer's ledger: %w", err)
	}
	rep.Attempts = append(gen.attempts(), inr.attempts()...)
	rep.finish(rows)
	if opErr != nil {
		return rep, fmt.Errorf("drill: %w", opErr)
	}
	return rep, nil
}

// waitDetection polls the health events until region is reported unhealthy
// after since.
func waitDetection(ctx context.Context, env Env, region string, since time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		evs, err := env.HealthEvents(ctx)
		if err == nil {
			// The region's health as of the fault: if its checks had already
			// failed it unhealthy, the fault is detected at once.
			var atFault string
			for _, e := range evs {
				if e.Region == region && e.Time.Before(since) && (e.Kind == "unhealthy" || e.Kind == "healthy") {
					atFault = e.Kind
				}
			}
			if atFault == "unhealthy" {
				return since, nil
			}
			for _, e := range evs {
				if e.Kind == "unhealthy" && e.Region == region && !e.Time.Before(since) {
					return e.Time, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return time.Time{}, fmt.Errorf("health checks did not report %s unhealthy within %s", region, timeout)
}

// generator sends payments at a steady rate and records every attempt.
type generator struct {
	url     string
	key     string // the payments API key each payment carries
	prefix  string
	timeout time.Duration
	client  *http.Client // nil: a client of its own

	mu   sync.Mutex
	list []Attempt
}

// maxInFlight bounds concurrent requests; beyond it a payment is not sent
// and recorded as rejected by the client.
const maxInFlight = 256

// maxPayments bounds the payments one drill sends.
const maxPayments = 500 * 11 * 60

// run sends a payment every 1/rate until the time sent on stopAt (or ctx
// ends), bounded by maxPayments.
func (g *generator) run(ctx context.Context, rate float64, stopAt <-chan time.Time) {
	client := g.client
	if client == nil {
		client = &http.Client{Timeout: g.timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
	}
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	begin := time.Now()
	var stop time.Time
	for i := 0; i < maxPayments; i++ {
		at := begin.Add(time.Duration(i) * interval)
		select {
		case stop = <-stopAt:
		default:
		}
		if !stop.IsZero() && at.After(stop) {
			break
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-time.After(time.Until(at)):
		}
		a := Attempt{PaymentID: fmt.Sprintf("%s-%06d", g.prefix, i), AmountMinor: 100 + int64(i%900)}
		select {
		case sem <- struct{}{}:
		default:
			a.Sent, a.Done, a.Answer, a.Error = time.Now(), time.Now(), Rejected, "not sent: too many requests in flight"
			g.record(a)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.record(g.send(client, a))
		}()
	}
	wg.Wait()
}

func (g *generator) send(client *http.Client, a Attempt) Attempt {
	body := fmt.Sprintf(`{"payment_id":%q,"amount":"%d.%02d","currency":"USD"}`, a.PaymentID, a.AmountMinor/100, a.AmountMinor%100)
	// The request is not tied to the drill's context: once sent it runs
	// to its answer or its timeout, so no request ends unclassified.
	req, err := http.NewRequest(http.MethodPost, g.url+api.PathPayments, bytes.NewBufferString(body))
	if err != nil {
		a.Sent, a.Done, a.Answer, a.Error = time.Now(), time.Now(), Rejected, "not sent: "+err.Error()
		return a
	}
	req.Header.Set("Content-Type", "application/json")
	apikey.Set(req.Header, g.key)
	a.Sent = time.Now()
	resp, err := client.Do(req)
	a.Done = time.Now()
	if err != nil {
		a.Answer, a.Error = Indeterminate, err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			a.Error = "timeout"
		}
		return a
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	a.Done = time.Now()
	a.Status = resp.StatusCode
	a.Target = resp.Header.Get("X-Paydr-Target")
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		a.Answer = Acked
		var body struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if json.Unmarshal(b, &body) == nil {
			a.CreatedAt = body.CreatedAt
		}
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout || resp.StatusCode == http.StatusInternalServerError:
		a.Answer = Indeterminate
	default:
		a.Answer = Rejected
	}
	return a
}

func (g *generator) record(a Attempt) {
	g.mu.Lock()
	g.list = append(g.list, a)
	g.mu.Unlock()
}

func (g *generator) attempts() []Attempt {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Attempt(nil), g.list...)
}
