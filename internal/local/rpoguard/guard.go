package rpoguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"paydr/internal/local/pg"
)

// DefaultInterval is the time between samples.
const DefaultInterval = 150 * time.Millisecond

// Database is what a guard needs of its region's database (*pg.Server).
type Database interface {
	WALProgress(ctx context.Context, standby string) (pg.WALProgress, error)
	SetSynchronousStandby(ctx context.Context, name string) error
}

// Settings are what a guard enforces, read again at every sample.
type Settings struct {
	// Enforce says whether the bound is enforced on the region's writes.
	// Without it the guard lets commits wait for no standby.
	Enforce bool
	// Bound is the loss window not to exceed; 0 is RPO-0.
	Bound time.Duration
	// Standby is the standby's name (application_name and slot).
	Standby string
}

// ErrStop, returned by Guard.Settings, ends Run without an error: the
// environment is gone.
var ErrStop = errors.New("rpoguard: stop")

// Guard enforces a bound on loss on one database's commits.
type Guard struct {
	// DB is the region's database.
	DB Database
	// Settings returns what to enforce; ErrStop ends Run.
	Settings func() (Settings, error)
	// Interval is the time between samples; default DefaultInterval.
	Interval time.Duration
	// Log receives a line for each change made and each new error; nil
	// discards them.
	Log io.Writer

	est     Estimator
	lastErr string
	apply   time.Duration // how long the last change to waiting took
}

// Run samples every Interval until ctx ends (nil) or Settings returns
// ErrStop (nil).
func (g *Guard) Run(ctx context.Context) error {
	if g.Interval <= 0 {
		g.Interval = DefaultInterval
	}
	if g.Log == nil {
		g.Log = io.Discard
	}
	t := time.NewTicker(g.Interval)
	defer t.Stop()
	for {
		if err := g.Tick(ctx, time.Now()); errors.Is(err, ErrStop) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick takes one sample at now and makes commits wait for the standby, or
// not, as the policy says. It returns the error of the sample, if any
// (logged once).
func (g *Guard) Tick(ctx context.Context, now time.Time) error {
	if g.Log == nil {
		g.Log = io.Discard
	}
	if g.Interval <= 0 {
		g.Interval = DefaultInterval
	}
	err := g.tick(ctx, now)
	if ctx.Err() != nil {
		return err // shutting down: not worth a log line
	}
	if err != nil && !errors.Is(err, ErrStop) && err.Error() != g.lastErr {
		fmt.Fprintf(g.Log, "%s rpo-guard: %v\n", now.UTC().Format(time.RFC3339Nano), err)
	}
	if err == nil && g.lastErr != "" {
		fmt.Fprintf(g.Log, "%s rpo-guard: sampling again\n", now.UTC().Format(time.RFC3339Nano))
	}
	g.lastErr = ""
	if err != nil {
		g.lastErr = err.Error()
	}
	return err
}

func (g *Guard) tick(ctx context.Context, now time.Time) error {
	set, err := g.Settings()
	if err != nil {
		return err
	}
	// A frozen or cut-off database must not hold the loop up for long.
	ctx, cancel := context.WithTimeout(ctx, max(time.Second, 4*g.Interval))
	defer cancel()
	t0 := time.Now()
	p, err := g.DB.WALProgress(ctx, set.Standby)
	if err != nil {
		return err
	}
	// Until a change has been timed, changing takes about two samples'
	// time (a connection, then the statements).
	apply := max(g.apply, 2*time.Since(t0))
	if p.InRecovery {
		// A standby commits nothing; relax-rpo clears its setting.
		g.est.Reset()
		return nil
	}
	g.est.Observe(now, p.Current, p.Flushed, p.FlushedKnown)
	window := g.est.Window(now)
	waiting := p.SynchronousStandby != ""
	wait := set.Enforce && Policy{Bound: set.Bound, Interval: g.Interval, Apply: apply}.Wait(window, waiting)
	want := ""
	if wait {
		want = `"` + set.Standby + `"`
	}
	if p.SynchronousStandby == want {
		return nil
	}
	name := ""
	if wait {
		name = set.Standby
	}
	if err := g.DB.SetSynchronousStandby(ctx, name); err != nil {
		return err
	}
	if wait {
		g.apply = time.Since(now) // from the sample to the setting in force
	}
	what := "commits wait for no standby"
	if wait {
		what = "commits wait for standby " + set.Standby
	}
	bound := "rpo-0"
	if set.Bound > 0 {
		bound = "bound " + set.Bound.String()
	}
	fmt.Fprintf(g.Log, "%s rpo-guard: %s (loss window %s, %s, enforced %v, standby flushed %s of %s; took %s)\n",
		now.UTC().Format(time.RFC3339Nano), what, window.Round(time.Millisecond), bound, set.Enforce, p.Flushed, p.Current, time.Since(now).Round(time.Millisecond))
	return nil
}
