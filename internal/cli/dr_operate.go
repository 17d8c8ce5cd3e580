package cli

import (
	"errors"
	"fmt"
	"time"

	"paydr/internal/dr"

	"github.com/spf13/cobra"
)

func newDROpCmd(f *drFlags, op dr.Operation) *cobra.Command {
	var opts dr.Options
	short := map[dr.Operation]string{
		dr.Switchover: "Planned switchover of the writer to the other region (no data loss)",
		dr.Failover:   "Unplanned failover to the standby region (the writer's region is lost)",
		dr.Failback:   "Rebuild the old writer as a standby, then switch back to it",
	}[op]
	cmd := &cobra.Command{
		Use:   string(op),
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			out, err := dr.Operate(cmd.Context(), t.backend, t.locker, t.journal,
				dr.Request{Op: op, Options: opts, DryRun: t.dryRun, Owner: owner()}, cmd.OutOrStdout())
			var inc *dr.IncompleteError
			if errors.As(err, &inc) {
				return incompleteError{err}
			}
			if err != nil {
				return err
			}
			if f.jsonOut {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			if !t.dryRun {
				fmt.Fprintf(cmd.OutOrStdout(), "%s done in %s: writer is %s (journal %s)\n", op, out.End.Sub(out.Start).Round(time.Millisecond), out.Plan.To, t.journal.Path(out.OpID))
			}
			return nil
		},
	}
	if op == dr.Failover {
		cmd.Flags().BoolVar(&opts.AllowDataLoss, "allow-data-loss", false, "accept losing the writes inside the replication lag")
	}
	cmd.Flags().DurationVar(&opts.MaxSwitchoverLag, "max-lag", dr.DefaultMaxSwitchoverLag, "largest replication lag at which the only writer may be fenced (switchover, failback)")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print the outcome as JSON")
	return cmd
}
