package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"paydr/internal/bundle"
)

func newBuildCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the processor's Lambda package: bootstrap for linux/arm64 in a deterministic zip",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			art, err := bundle.Build(cmd.Context(), bundle.Options{OutDir: out, SharedCache: bundle.SharedCacheDir()})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (sha256 %s)\n", art.ZipPath, art.SHA256Base64)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "build", "directory for bootstrap and processor.zip")
	return cmd
}
