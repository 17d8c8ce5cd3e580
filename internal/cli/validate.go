package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"paydr/internal/tfcli"
)

func newValidateCmd() *cobra.Command {
	var f stackFlags
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Synthesize the stack and check it with terraform validate, offline",
		Long: `Synthesize the stack, then run terraform init -backend=false and terraform
validate on it against the real AWS provider schema. paydr's Terraform runs use
a provider filesystem mirror ($PAYDR_PROVIDER_MIRROR, /opt/tf-plugins, or
Terraform's implied mirror directories) and never reach a network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			res, err := synthesize(ctx, &f, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			printSynth(out, res)
			start := time.Now()
			fmt.Fprintf(out, "terraform init -backend=false && terraform validate in %s ...\n", res.Dir)
			tf, err := tfcli.New(res.Dir, tfcli.Options{})
			if err != nil {
				return err
			}
			if err := tf.Validate(ctx); err != nil {
				return err
			}
			fmt.Fprintf(out, "valid: terraform validate accepts %s (%s)\n", res.File, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}
