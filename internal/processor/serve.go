package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Serve applies the ledger's schema migrations (a standby region's database
// refuses them; it serves anyway and /health says so), then serves the
// processor's routes over HTTP on listen until ctx ends, and shuts down
// gracefully. It is the local server of cmd/processor and paydr serve.
func (a *App) Serve(ctx context.Context, listen string, log *slog.Logger) error {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	applied, err := a.Ledger.Migrate(mctx)
	cancel()
	if err != nil {
		log.Warn("schema migrations not applied", "err", err)
	} else if len(applied) > 0 {
		log.Info("schema migrations applied", "versions", applied)
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
