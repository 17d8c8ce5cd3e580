package cli

import (
	"github.com/spf13/cobra"
)

func newServeCmd(b Backends) *cobra.Command {
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
			return b.Serve(cmd.Context(), listen, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "", "address to listen on (default $PAYDR_LISTEN or 127.0.0.1:8080)")
	return cmd
}
