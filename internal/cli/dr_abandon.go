package cli

import (
	"errors"

	"paydr/internal/dr"

	"github.com/spf13/cobra"
)

func newDRAbandonCmd(f *drFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "abandon",
		Short: "Give up the unfinished DR operation (undoes nothing; the journal keeps what it did)",
		Long: `Close the unfinished operation in the journal, recording who gave it up and
why, so that it is never resumed. It undoes nothing: what the operation did
stays done. Use it when paydr refuses to resume an operation that is no longer
safe (its refusal says so), then check paydr dr status and plan afresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return usageError{errors.New("dr abandon: --reason is required; it is kept in the journal")}
			}
			var (
				j      *dr.Journal
				locker dr.Locker
				dry    = f.dryRun
			)
			if f.backend == "local" {
				// The journal and the lock are enough: no environment is
				// needed to give an operation up.
				var err error
				if j, locker, err = f.backends.LocalJournal(cmd.Context(), f.stateDir); err != nil {
					return err
				}
			} else {
				t, err := f.open(cmd.Context())
				if err != nil {
					return err
				}
				j, locker, dry = t.journal, t.locker, t.dryRun
			}
			_, err := dr.Abandon(cmd.Context(), locker, j, owner(), reason, dry, cmd.OutOrStdout())
			return err
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the operation is given up (required; kept in the journal)")
	return cmd
}
