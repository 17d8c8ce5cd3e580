package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newDRStatusCmd(f *drFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show which region writes, replication lag, health and where traffic goes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			st, err := t.backend.Status(cmd.Context())
			if err != nil {
				return err
			}
			if f.jsonOut {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			if err := st.Render(cmd.OutOrStdout()); err != nil {
				return err
			}
			u, err := t.journal.Unfinished()
			if err != nil {
				return err
			}
			if u != nil {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "unfinished:   %s (%s from %s to %s); paydr dr %s resumes it, paydr dr abandon gives it up\n", u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, u.Plan.Op)
				for i, msg := range u.Failed {
					if msg != "" {
						fmt.Fprintf(w, "owed:         %s (failed: %s)\n", u.Plan.Steps[i].Name(), msg)
					}
				}
				if u.Refused != "" {
					fmt.Fprintf(w, "refused:      %s\n", u.Refused)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print JSON")
	return cmd
}
