package cli

import (
	"paydr/internal/dr"

	"github.com/spf13/cobra"
)

func newDRFenceCmd(f *drFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fence REGION",
		Short: "Stop REGION from taking writes while the other region is the writer (the way out of two writers)",
		Long: `Fence REGION — stop its processor from committing (locally its database is
stopped; on AWS its Lambda's reserved concurrency is set to 0) — while the
other region is a writer that serves. It refuses to fence the only writer. Use
it when paydr dr status shows two writable regions and no unfinished operation
owns them; REGION's data is kept (paydr dr failback preserves it before any
rebuild).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			_, err = dr.Operate(cmd.Context(), t.backend, t.locker, t.journal,
				dr.Request{Op: dr.Fence, Options: dr.Options{Target: args[0]}, DryRun: t.dryRun, Owner: owner()}, cmd.OutOrStdout())
			return err
		},
	}
	return cmd
}
