package cli

import (
	"encoding/json"
	"errors"

	"github.com/spf13/cobra"

	"paydr/internal/local"
	"paydr/internal/local/env"
)

func newStatusCmd() *cobra.Command {
	var (
		stateDir string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what of the local environment runs, where, and where traffic goes",
		Long: `Probe every piece recorded in env.json: moto, the fault proxy (with paydr up
--fault-proxy: the rules in force), both databases (their actual role and
replication), both processors (/health), and the router (health of each
region, where traffic goes). Exits 1 when something is down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := local.GetStatus(cmd.Context(), stateDir)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				local.PrintStatus(cmd.OutOrStdout(), st)
			}
			if !st.Up {
				return errors.New("status: the local environment is degraded; see the table above and the logs, or run paydr up")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", env.StateDirFromEnv(), "state directory (env "+env.EnvStateDir+")")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (with env.json as manifest)")
	return cmd
}
