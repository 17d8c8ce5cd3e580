package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"paydr/internal/ledger"
	"paydr/internal/payment"
)

// OutboxInterval is how often the local server sweeps the event outbox (the
// Lambda is swept by a schedule rule every minute).
const OutboxInterval = 30 * time.Second

// Serve checks that the ledger's schema has every migration this processor
// needs and refuses to start, with the missing migrations named, when it
// does not (the processor's role cannot migrate: Provision does, as the
// owner); a database it cannot reach yet does not stop it (a region cut
// off serves 503 and /health says so). It then serves the processor's
// routes over HTTP on listen until ctx ends, sweeping the event outbox
// every OutboxInterval, and shuts down gracefully. It reads the API key
// once it listens, so a key that cannot be read shows in the log at start
// (payments answer 503 until it can). It is the local server of
// cmd/processor and paydr serve.
func (a *App) Serve(ctx context.Context, listen string, log *slog.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := a.Ledger.CheckSchema(cctx)
	cancel()
	switch {
	case errors.Is(err, ledger.ErrSchemaBehind):
		return fmt.Errorf("processor: %w", err)
	case err != nil:
		log.Warn("schema not checked: the database cannot be reached; payments are checked again before their first write", "err", err)
	}
	srv := &http.Server{
		Addr:              listen,
		Handler:           a.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	if a.Outbox != nil {
		go sweepOutbox(ctx, a.Outbox, OutboxInterval, log)
	}
	if k := a.Handler.opts.APIKey; k != nil {
		go func() { _ = k.Load(ctx) }() // logs its own outcome
	}
	log.Info("serving", "addr", listen)
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", listen, err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// sweepOutbox runs an outbox sweep every interval until ctx ends. A region
// whose database cannot take writes (the standby) skips quietly.
func sweepOutbox(ctx context.Context, o Outbox, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, interval)
		_, err := o.PublishPending(sctx, 0, 0)
		cancel()
		switch {
		case errors.Is(err, payment.ErrUnavailable):
			log.Debug("outbox sweep skipped: the ledger cannot take writes here", "err", err)
		case err != nil && ctx.Err() == nil:
			log.Warn("outbox sweep failed", "err", err)
		}
	}
}
