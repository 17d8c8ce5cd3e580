package cli

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"paydr/internal/processor"
)

func newServeCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the payment processor over HTTP (POST /payments, GET /health)",
		Long: `Serve the payment processor over HTTP with the same core the Lambda runs.
Configuration comes from PAYDR_* environment variables (PAYDR_REGION,
PAYDR_SESSIONS_TABLE, PAYDR_EVENT_BUS, PAYDR_DB_DSN or PAYDR_DB_HOST/PORT/NAME/
USER/PASSWORD, PAYDR_AWS_ENDPOINT, PAYDR_API_KEY_PARAM); --listen overrides
PAYDR_LISTEN. POST /payments needs Authorization: Bearer <key>, the key read
from the SSM SecureString PAYDR_API_KEY_PARAM names.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := processor.ConfigFromEnv(os.Getenv)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log := slog.New(processor.NewLogHandler(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))).With("region", cfg.Region)
			app, err := processor.New(cmd.Context(), cfg, processor.AppOptions{Logger: log, MaxConns: 16})
			if err != nil {
				return err
			}
			defer app.Close()
			return app.Serve(cmd.Context(), cfg.Listen, log)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default $PAYDR_LISTEN or 127.0.0.1:8080)")
	return cmd
}
