// Package awsapi provides the paydr command line's Backends (see
// paydr/internal/cli.Backends): the DR backends of paydr dr, local and on
// AWS, the payment processor of paydr serve, and the emulator identities
// of paydr up. It links the AWS SDK's
// service clients, and so does every binary importing it; the paydr binary
// does not, and runs the commands needing it in paydr-aws.
package awsapi

import (
	"context"
	"io"
	"log/slog"
	"os"

	"paydr/internal/cli"
	"paydr/internal/dr"
	"paydr/internal/dr/awsdr"
	"paydr/internal/dr/localdr"
	"paydr/internal/local"
	"paydr/internal/local/identity"
	"paydr/internal/processor"
)

// Backends returns the real Backends.
func Backends() cli.Backends { return backends{} }

type backends struct{}

func (backends) LocalDR(_ context.Context, stateDir string) (cli.LocalDR, error) {
	b, err := localdr.Open(stateDir)
	if err != nil {
		return cli.LocalDR{}, err
	}
	j, err := b.Journal()
	if err != nil {
		return cli.LocalDR{}, err
	}
	return cli.LocalDR{Backend: b, Journal: j, Locker: b.Locker(), Drill: b.DrillEnv()}, nil
}

func (backends) LocalJournal(_ context.Context, stateDir string) (*dr.Journal, dr.Locker, error) {
	j, err := localdr.OpenJournal(stateDir)
	if err != nil {
		return nil, nil, err
	}
	return j, localdr.Locker(stateDir), nil
}

func (backends) AWSDR(ctx context.Context, o cli.AWSOptions) (dr.Backend, dr.Locker, error) {
	b, lock, err := awsdr.Connect(ctx, awsdr.Options{Suffix: o.Suffix, Region: o.Region, Endpoint: o.Endpoint})
	if err != nil {
		return nil, nil, err
	}
	return b, lock, nil
}

func (backends) Identities(context.Context) (local.Identities, error) { return identity.Maker{}, nil }

func (backends) Serve(ctx context.Context, listen string, logTo io.Writer) error {
	cfg, err := processor.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if listen != "" {
		cfg.Listen = listen
	}
	log := slog.New(processor.NewLogHandler(slog.NewJSONHandler(logTo, nil))).With("region", cfg.Region)
	app, err := processor.New(ctx, cfg, processor.AppOptions{Logger: log, MaxConns: 16})
	if err != nil {
		return err
	}
	defer app.Close()
	return app.Serve(ctx, cfg.Listen, log)
}
