package rpoguard

import (
	"time"

	"paydr/internal/local/pg"
)

// mark says that the writer's WAL position was lsn at time at: WAL past lsn
// was written after at.
type mark struct {
	at  time.Time
	lsn pg.LSN
}

// Estimator estimates the loss window of a writer: how long ago the oldest
// WAL its standby has not flushed was written. The zero value is ready.
type Estimator struct {
	first   time.Time // the first sample since Reset
	hist    []mark    // increasing lsn; hist[0] is the newest mark at or below flushed, when there is one
	flushed pg.LSN
	known   bool
}

// Observe adds a sample taken at at: the writer's WAL position current and,
// when known, the standby's flushed position. An unknown flushed position
// keeps the last known one (it never goes back). A WAL position below the
// last one (a server that is not the one sampled before) starts afresh.
func (e *Estimator) Observe(at time.Time, current pg.LSN, flushed pg.LSN, known bool) {
	if n := len(e.hist); n > 0 && current < e.hist[n-1].lsn {
		e.Reset()
	}
	if known && (!e.known || flushed > e.flushed) {
		e.flushed, e.known = flushed, true
	}
	if e.first.IsZero() {
		e.first = at
	}
	switch n := len(e.hist); {
	case n == 0 || current > e.hist[n-1].lsn:
		e.hist = append(e.hist, mark{at: at, lsn: current})
	case current == e.hist[n-1].lsn:
		// Still there: WAL past it was written after this sample.
		e.hist[n-1].at = at
	}
	// Keep the newest mark at or below the flushed position: the anchor
	// every unflushed WAL was written after.
	if e.known {
		i := 0
		for i+1 < len(e.hist) && e.hist[i+1].lsn <= e.flushed {
			i++
		}
		e.hist = e.hist[i:]
	}
}

// Reset forgets every sample.
func (e *Estimator) Reset() { *e = Estimator{} }

// Window returns the estimated loss window at now: 0 when the standby has
// flushed everything the writer wrote, else the time since the last sample
// at which the writer's position was at or below the standby's flushed one
// (an upper bound of the true age, by at most one sample interval). With
// no such sample (the standby's position is unknown, or behind the first
// sample), the time since the first sample.
func (e *Estimator) Window(now time.Time) time.Duration {
	n := len(e.hist)
	switch {
	case n == 0 || e.known && e.flushed >= e.hist[n-1].lsn:
		return 0
	case e.known && e.hist[0].lsn <= e.flushed:
		return max(0, now.Sub(e.hist[0].at))
	}
	return max(0, now.Sub(e.first))
}

// Samples returns how many samples the estimator keeps.
func (e *Estimator) Samples() int { return len(e.hist) }

// Policy decides from the loss window whether commits must wait for the
// standby.
type Policy struct {
	// Bound is the loss window not to exceed; 0 is RPO-0: commits always
	// wait.
	Bound time.Duration
	// Interval is the time between samples.
	Interval time.Duration
	// Apply is how long making commits wait took last time, from the
	// sample to the setting in force; on a loaded machine it can exceed
	// an interval.
	Apply time.Duration
}

// Margin is how far below Bound commits start to wait: two sample
// intervals (one for the sample's age, one for the estimate's rounding up
// to a sample) and the time the setting takes to apply.
func (p Policy) Margin() time.Duration { return 2*p.Interval + p.Apply }

// Wait reports whether commits must wait for the standby given the
// estimated window and whether they wait now: from Bound - Margin on, and,
// once waiting, until the window is back within half the bound.
func (p Policy) Wait(window time.Duration, waiting bool) bool {
	switch {
	case p.Bound <= 0:
		return true
	case window >= p.Bound-p.Margin():
		return true
	case waiting:
		return window > p.Bound/2
	}
	return false
}
