package cli

import (
	"github.com/spf13/cobra"

	"paydr/internal/local"
	"paydr/internal/local/env"
)

func newDownCmd() *cobra.Command {
	var stateDir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local environment and discard its state (logs are kept)",
		Long: `Stop everything paydr up started in the state directory (router, processors,
fault proxy, PostgreSQL servers, moto) and discard the state that only described them: the
emulator's resources live in its memory, so the Terraform state, the database
data directories, pid files and env.json go too. terraform destroy is not run:
against moto it is slow and fragile, and stopping the emulator leaves nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := local.Down(cmd.Context(), stateDir, cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", env.StateDirFromEnv(), "state directory (env "+env.EnvStateDir+")")
	return cmd
}
