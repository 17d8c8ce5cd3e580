package processor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"paydr/internal/ledger"
	"paydr/internal/local/pg/pgtest"
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

// TestServeRefusesAnUnmigratedSchema: a processor whose database lacks the
// ledger's migrations does not start; the error names the missing
// migrations and says to provision. Nothing is listened on.
func TestServeRefusesAnUnmigratedSchema(t *testing.T) {
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	cfg, err := ConfigFromEnv(envOf(map[string]string{
		EnvRegion: "us-east-1", EnvSessionsTable: "t", EnvEventBus: "b", EnvAPIKeyParam: "/paydr/x/api/key",
		EnvDBDSN: srv.DSN("payments"), EnvAWSEndpoint: "http://127.0.0.1:1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	app, err := New(ctx, cfg, AppOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	addr := freeListenAddr(t)
	done := make(chan error, 1)
	go func() { done <- app.Serve(ctx, addr, slog.New(slog.DiscardHandler)) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Serve on an unmigrated schema is still running after 30 s; want it to refuse to start")
	}
	if !errors.Is(err, ledger.ErrSchemaBehind) || !strings.Contains(err.Error(), "0001_payments") || !strings.Contains(err.Error(), "provision") {
		t.Errorf("Serve(unmigrated) = %v, want ErrSchemaBehind naming 0001_payments and saying to provision", err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("something listens on %s after the refusal", addr)
	}
}

func freeListenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
