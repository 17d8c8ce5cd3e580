package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"paydr/internal/local/env"
	"paydr/internal/local/rpoguard"
)

// newRPOGuardCmd is the hidden host of a region's RPO guard that paydr up
// starts in the background.
func newRPOGuardCmd() *cobra.Command {
	var stateDir, slot string
	cmd := &cobra.Command{
		Use:    "rpo-guard",
		Short:  "Enforce the environment's bound on loss on one region's commits (started by paydr up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s := env.Slot(slot)
			if s != env.SlotPrimary && s != env.SlotSecondary {
				return usageError{fmt.Errorf("rpo-guard: --slot %q is not primary or secondary", slot)}
			}
			g := rpoguard.ForSlot(stateDir, s)
			g.Log = cmd.ErrOrStderr()
			fmt.Fprintf(g.Log, "rpo-guard: slot %s of %s, sampling every %s\n", s, stateDir, rpoguard.DefaultInterval)
			return g.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state-dir", env.StateDirFromEnv(), "state directory (env "+env.EnvStateDir+")")
	f.StringVar(&slot, "slot", "", "the slot whose database to guard: primary or secondary")
	return cmd
}
