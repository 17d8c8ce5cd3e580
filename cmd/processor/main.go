// Command processor is the paydr payment processor. Shipped as the Lambda
// function's bootstrap (provided.al2023, arm64), it runs the Lambda runtime
// loop when AWS_LAMBDA_RUNTIME_API is set; otherwise it serves the same
// routes over HTTP on PAYDR_LISTEN (default 127.0.0.1:8080) for the local
// environment and tests, refusing to start on a schema that lacks a
// migration it needs (it connects as an application role that cannot
// migrate; see paydr/internal/ledger.Provision).
//
// With PAYDR_MODE=provision the same binary is the ledger's provisioning
// function (paydr/internal/provisioner): the stack deploys the package a
// second time in that mode and invokes it at apply.
//
// Configuration comes from PAYDR_* environment variables; see
// paydr/internal/processor.Config. This binary must stay free of the
// synthesis and CLI packages (a test checks its imports).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/aws/aws-lambda-go/lambda"

	"paydr/internal/processor"
	"paydr/internal/processor/environ"
	"paydr/internal/provisioner"
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
	inLambda := os.Getenv("AWS_LAMBDA_RUNTIME_API") != ""
	if os.Getenv(environ.Mode) == environ.ModeProvision {
		return provision(ctx, inLambda, log)
	}
	cfg, err := processor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
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
	return app.Serve(ctx, cfg.Listen, log.With("region", cfg.Region))
}

// provision runs the provisioning function: under Lambda, one provisioning
// per invocation; otherwise once, printing the result.
func provision(ctx context.Context, inLambda bool, log *slog.Logger) error {
	cfg, err := provisioner.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	h, err := provisioner.New(cfg)
	if err != nil {
		return err
	}
	if inLambda {
		lambda.StartWithOptions(h.Invoke, lambda.WithContext(ctx))
		return nil
	}
	res, err := h.Invoke(ctx, nil)
	if err != nil {
		return err
	}
	log.Info("ledger provisioned", "role", res.Role, "applied_migrations", res.Applied, "schema_version", res.Schema)
	return nil
}
