package rpoguard

import (
	"testing"
	"time"

	"paydr/internal/local/pg"
)

// sample is one observation, at ms milliseconds after t0.
type sample struct {
	ms      int
	current pg.LSN
	flushed pg.LSN
	unknown bool // the standby's position is not known
}

func TestEstimatorWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tests := []struct {
		name    string
		samples []sample
		now     int // ms
		want    time.Duration
	}{
		{"no sample", nil, 1000, 0},
		{"caught up", []sample{{0, 100, 100, false}, {150, 200, 200, false}}, 300, 0},
		{"streaming with a sample of lag", []sample{{0, 100, 100, false}, {150, 200, 100, false}, {300, 300, 200, false}}, 300,
			150 * time.Millisecond},
		// A partition: the walsender row stays, flush_lsn stops at 100.
		{"partition: flushed stops, writes go on", []sample{
			{0, 100, 100, false}, {150, 200, 100, false}, {300, 300, 100, false}, {450, 400, 100, false}}, 600,
			600 * time.Millisecond},
		{"writes resume after an idle caught-up stretch", []sample{
			{0, 100, 100, false}, {150, 100, 100, false}, {5000, 100, 100, false}, {5150, 200, 100, false}}, 5200,
			200 * time.Millisecond},
		{"no writes during a partition: nothing to lose", []sample{
			{0, 100, 100, false}, {150, 100, 100, false}, {3000, 100, 100, false}}, 3000, 0},
		// A disconnect: no row, the slot's position is not read either.
		{"standby gone: the last known position holds", []sample{
			{0, 100, 100, false}, {150, 200, 0, true}, {300, 300, 0, true}}, 450, 450 * time.Millisecond},
		{"flushed never goes back", []sample{
			{0, 100, 100, false}, {150, 200, 200, false}, {300, 300, 50, false}}, 300, 150 * time.Millisecond},
		{"catches up again", []sample{
			{0, 100, 100, false}, {150, 200, 100, false}, {3000, 300, 100, false}, {3150, 300, 300, false}}, 3200, 0},
		{"partly caught up: the oldest unflushed is newer", []sample{
			{0, 100, 100, false}, {150, 200, 100, false}, {300, 300, 100, false}, {450, 300, 200, false}}, 450,
			300 * time.Millisecond},
		{"standby unknown from the start: counted from the first sample", []sample{
			{1000, 100, 0, true}, {1150, 200, 0, true}}, 1300, 300 * time.Millisecond},
		{"standby behind the first sample: counted from it", []sample{
			{1000, 100, 50, false}, {1150, 200, 50, false}}, 1300, 300 * time.Millisecond},
		{"a WAL position going back starts afresh", []sample{
			{0, 500, 100, false}, {150, 100, 100, false}, {300, 200, 100, false}}, 300, 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Estimator
			for _, s := range tt.samples {
				e.Observe(at(s.ms), s.current, s.flushed, !s.unknown)
			}
			if got := e.Window(at(tt.now)); got != tt.want {
				t.Errorf("Window(%dms) = %v, want %v", tt.now, got, tt.want)
			}
		})
	}
}

// TestEstimatorKeepsFewSamples: samples the standby has flushed are
// dropped, and a writer that writes nothing adds none.
func TestEstimatorKeepsFewSamples(t *testing.T) {
	var e Estimator
	t0 := time.Now()
	for i := range 1000 {
		e.Observe(t0.Add(time.Duration(i)*150*time.Millisecond), pg.LSN(100*(i+1)), pg.LSN(100*i), true)
	}
	if got := e.Samples(); got > 2 {
		t.Errorf("Samples() while streaming = %d, want at most 2", got)
	}
	e.Reset()
	for i := range 1000 {
		e.Observe(t0.Add(time.Duration(i)*150*time.Millisecond), 100, 50, true)
	}
	if got := e.Samples(); got != 1 {
		t.Errorf("Samples() of an idle writer = %d, want 1", got)
	}
}

func TestPolicyWait(t *testing.T) {
	p := Policy{Bound: time.Second, Interval: 150 * time.Millisecond}
	tests := []struct {
		name    string
		p       Policy
		window  time.Duration
		waiting bool
		want    bool
	}{
		{"well within the bound", p, 100 * time.Millisecond, false, false},
		{"just short of the margin", p, 699 * time.Millisecond, false, false},
		{"at the bound minus the margin", p, 700 * time.Millisecond, false, true},
		{"past the bound", p, 2 * time.Second, false, true},
		{"waiting, not yet within half", p, 501 * time.Millisecond, true, true},
		{"waiting, back within half", p, 500 * time.Millisecond, true, false},
		{"waiting, caught up", p, 0, true, false},
		{"slow to apply last time: the margin grows", Policy{Bound: time.Second, Interval: 150 * time.Millisecond, Apply: 200 * time.Millisecond},
			500 * time.Millisecond, false, true},
		{"slow to apply, still short of the margin", Policy{Bound: time.Second, Interval: 150 * time.Millisecond, Apply: 200 * time.Millisecond},
			499 * time.Millisecond, false, false},
		{"rpo-0 caught up", Policy{Interval: p.Interval}, 0, false, true},
		{"rpo-0 waiting", Policy{Interval: p.Interval}, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Wait(tt.window, tt.waiting); got != tt.want {
				t.Errorf("%+v.Wait(%v, %v) = %v, want %v", tt.p, tt.window, tt.waiting, got, tt.want)
			}
		})
	}
}
