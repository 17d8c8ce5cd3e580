package drill

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// FaultPartition cuts the writer region's network links while its processes
// keep running (AWS FIS "Cross-Region: Connectivity"): the old writer stays
// alive, serving whoever can still reach it. During a partition drill a
// client inside the isolated region (InRegionEnv) keeps sending payments
// straight to that region's processor: exactly the payments an old writer
// acknowledges after the fault, which fencing must stop and the drill
// classifies with the rest.
const FaultPartition = "partition"

// InRegionEnv is an Env that can place a client inside a region's own
// network, reaching the region's processor when the region is cut off from
// everything else.
type InRegionEnv interface {
	// InRegionClient returns the base URL of region's processor as seen
	// from inside the region, and an HTTP client whose connections start
	// there.
	InRegionClient(region string) (url string, client *http.Client, err error)
}

// inRegionInfix marks the payment ids of the in-region client:
// <prefix>-inregion-<n>. They share the drill's prefix, so the ledger read
// finds them.
const inRegionInfix = "-inregion"

// InRegionTraffic is what the client inside the isolated region did.
type InRegionTraffic struct {
	// Region is the region it ran in and URL the processor it called.
	Region string `json:"region"`
	URL    string `json:"url"`
	// Sent and Acked count its payments; AckedAfterFault those sent after
	// the fault and acknowledged (by the isolated old writer); Lost those
	// acknowledged and missing from the new writer, LostAfterFault the lost
	// sent after the fault; LastAckAfterFault is when it last got an
	// acknowledgement of a payment sent after the fault.
	Sent              int       `json:"sent"`
	Acked             int       `json:"acked"`
	AckedAfterFault   int       `json:"acked_after_fault"`
	Lost              int       `json:"lost"`
	LostAfterFault    int       `json:"lost_after_fault"`
	LastAckAfterFault time.Time `json:"last_ack_after_fault,omitzero"`
}

// inRegion is the generator running inside the writer region, when the
// drill's fault and its Env allow one.
type inRegion struct {
	region string
	url    string
	gen    *generator
	stopAt chan time.Time
	done   chan struct{}
}

// startInRegion starts, for a partition drill whose env implements
// InRegionEnv, a generator inside region at rate, its payments carrying
// key; otherwise it returns nil (and nil error). Its methods accept a nil
// *inRegion.
func startInRegion(ctx context.Context, env Env, opts Options, region, key string) (*inRegion, error) {
	ie, ok := env.(InRegionEnv)
	if opts.Fault != FaultPartition || !ok {
		return nil, nil
	}
	url, client, err := ie.InRegionClient(region)
	if err != nil {
		return nil, fmt.Errorf("drill: in-region client for %s: %w", region, err)
	}
	client.Timeout = opts.RequestTimeout
	rate := inRegionRate(opts.Rate)
	ir := &inRegion{region: region, url: url, stopAt: make(chan time.Time, 1), done: make(chan struct{}),
		gen: &generator{url: url, key: key, prefix: opts.Prefix + inRegionInfix, timeout: opts.RequestTimeout, client: client}}
	fmt.Fprintf(opts.Log, "in-region client: %.1f payments/s from inside %s straight to %s\n", rate, region, url)
	go func() { ir.gen.run(ctx, rate, ir.stopAt); close(ir.done) }()
	return ir, nil
}

// inRegionRate is the in-region client's rate: a fifth of the drill's, at
// least one a second. A trickle shows whether the isolated writer still
// acknowledges; at the drill's full rate the extra load saturated the local
// emulator (every payment writes to it) until both regions' health checks
// timed out before the fault.
func inRegionRate(rate float64) float64 {
	return max(1, rate/5)
}

// stop tells the generator when to stop.
func (ir *inRegion) stop(at time.Time) {
	if ir != nil {
		ir.stopAt <- at
	}
}

// wait waits until its last request is answered or timed out.
func (ir *inRegion) wait() {
	if ir != nil {
		<-ir.done
	}
}

// attempts returns its attempts.
func (ir *inRegion) attempts() []Attempt {
	if ir == nil {
		return nil
	}
	return ir.gen.attempts()
}

// isInRegion reports whether a was sent by the in-region client.
func (r *Report) isInRegion(a Attempt) bool {
	return strings.HasPrefix(a.PaymentID, r.Prefix+inRegionInfix+"-")
}

// trafficAttempts returns the attempts sent through the failover name: the
// clients whose experience the RTO measures.
func (r *Report) trafficAttempts() []Attempt {
	out := make([]Attempt, 0, len(r.Attempts))
	for _, a := range r.Attempts {
		if !r.isInRegion(a) {
			out = append(out, a)
		}
	}
	return out
}

// summarizeInRegion fills r.InRegion from the classified attempts, when the
// in-region client ran.
func (r *Report) summarizeInRegion() {
	if r.InRegion == nil {
		return
	}
	ir := r.InRegion
	*ir = InRegionTraffic{Region: ir.Region, URL: ir.URL}
	lost := map[string]bool{}
	for _, id := range r.Classification.Lost {
		lost[id] = true
	}
	for _, a := range r.Attempts {
		if !r.isInRegion(a) {
			continue
		}
		ir.Sent++
		after := a.Sent.After(r.FaultAt)
		if a.Answer == Acked {
			ir.Acked++
			if after {
				ir.AckedAfterFault++
				if a.Done.After(ir.LastAckAfterFault) {
					ir.LastAckAfterFault = a.Done
				}
			}
		}
		if lost[a.PaymentID] {
			ir.Lost++
			if after {
				ir.LostAfterFault++
			}
		}
	}
}

// renderInRegion writes the in-region client's line of the text report.
func (r *Report) renderInRegion(b *strings.Builder) {
	ir := r.InRegion
	if ir == nil {
		return
	}
	last := "none"
	if !ir.LastAckAfterFault.IsZero() {
		last = "+" + ir.LastAckAfterFault.Sub(r.FaultAt).Round(time.Millisecond).String() + " after the fault"
	}
	fmt.Fprintf(b, "in-region:   %d payments sent from inside %s to %s, %d acknowledged (%d sent after the fault; last ack %s), %d lost (%d after the fault)\n",
		ir.Sent, ir.Region, ir.URL, ir.Acked, ir.AckedAfterFault, last, ir.Lost, ir.LostAfterFault)
}
