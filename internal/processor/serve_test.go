package processor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"paydr/internal/payment"
)

// countingOutbox counts sweeps and fails them with err.
type countingOutbox struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (c *countingOutbox) PublishPending(context.Context, time.Duration, int) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return 0, c.err
}

func (c *countingOutbox) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func TestSweepOutbox(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantLog string // "" for no warning
	}{
		{"sweeps", nil, ""},
		{"standby stays quiet", fmt.Errorf("ledger: %w", payment.ErrUnavailable), ""},
		{"failure is logged", fmt.Errorf("put events: throttled"), "outbox sweep failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &countingOutbox{err: tt.err}
			var logs bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				sweepOutbox(ctx, o, 5*time.Millisecond, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))
				close(done)
			}()
			deadline := time.Now().Add(10 * time.Second)
			for o.count() < 3 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("sweepOutbox did not return after its context ended")
			}
			if o.count() < 3 {
				t.Errorf("%d sweeps, want at least 3", o.count())
			}
			if got := logs.String(); (tt.wantLog == "") != (got == "") || !strings.Contains(got, tt.wantLog) {
				t.Errorf("logs = %q, want %q", got, tt.wantLog)
			}
		})
	}
}
