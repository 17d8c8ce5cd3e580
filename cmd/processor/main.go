// Command processor is the paydr payment processor. Shipped as the Lambda
// function's bootstrap (provided.al2023, arm64), it runs the Lambda runtime
// loop when AWS_LAMBDA_RUNTIME_API is set; otherwise it serves the same
// routes over HTTP on PAYDR_LISTEN (default 127.0.0.1:8080) for the local
// environment and tests, applying schema migrations at start.
//
// Configuration comes from PAYDR_* environment variables; see
// paydr/internal/processor.Config. This binary must stay free of the
// synthesis and CLI packages (a test checks its imports).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"paydr/internal/processor"
)

func main() {
	log := slog.New(processor.NewLogHandler(slog.NewJSONHandler(os.Stderr, nil)))
	slog.SetDefault(log)
	if err := run(log); err != nil {
		log.Error("processor stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := processor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	inLambda := os.Getenv("AWS_LAMBDA_RUNTIME_API") != ""
	maxConns := int32(16)
	if inLambda {
		maxConns = 2 // one request at a time per execution environment
	}
	app, err := processor.New(ctx, cfg, processor.AppOptions{Logger: log, MaxConns: maxConns})
	if err != nil {
		return err
	}
	defer app.Close()
	if inLambda {
		lambda.StartWithOptions(app.Handler.Invoke, lambda.WithContext(ctx))
		return nil
	}
	return serve(ctx, cfg, app, log)
}

func serve(ctx context.Context, cfg processor.Config, app *processor.App, log *slog.Logger) error {
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	applied, err := app.Ledger.Migrate(mctx)
	cancel()
	if err != nil {
		// A standby region's database refuses writes; serve anyway and let
		// /health say so.
		log.Warn("schema migrations not applied", "err", err)
	} else if len(applied) > 0 {
		log.Info("schema migrations applied", "versions", applied)
	}
	srv := &http.Server{
		Addr:              cfg.Listen,
		Handler:           app.Handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("serving", "addr", cfg.Listen, "region", cfg.Region)
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", cfg.Listen, err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
