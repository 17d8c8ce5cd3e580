package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"paydr/internal/local/moto"
	"paydr/internal/scan"
	"paydr/internal/tfcli"
)

func newScanCmd() *cobra.Command {
	var (
		f       stackFlags
		workDir string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Scan the AWS stack with trivy on an offline terraform plan",
		Long: `Synthesize the AWS target, plan it offline against a throwaway AWS API
emulator (moto; an override file points both providers at it and keeps the
state local, so no account, credentials or network are used), and run trivy's
misconfiguration checks (` + scan.TrivyVersion + `, built-in checks, no update) on the plan's
JSON. Every finding is printed with the reason paydr keeps it; a HIGH or
CRITICAL finding, or one without a reason, fails the scan.

trivy: $PAYDR_TRIVY, trivy on PATH, or $(go env GOPATH)/bin/trivy; install with
` + scan.InstallHint + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out, log := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if f.target != "aws" {
				return usageError{fmt.Errorf("scan: --target %s: the scan is of what AWS would get; only --target aws", f.target)}
			}
			trivy, err := scan.FindTrivy()
			if err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			if workDir == "" {
				tmp, err := os.MkdirTemp("", "paydr-scan-")
				if err != nil {
					return fmt.Errorf("scan: %w", err)
				}
				defer os.RemoveAll(tmp)
				workDir = tmp
			}
			f.out = workDir
			start := time.Now()
			res, err := synthesize(ctx, &f, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "synthesized %d resources -> %s\n", res.Resources, res.File)
			srv, err := moto.Start(ctx, moto.Options{StateDir: filepath.Join(workDir, "moto")})
			if err != nil {
				return fmt.Errorf("scan: start the emulator: %w", err)
			}
			defer srv.Stop(context.WithoutCancel(ctx))
			fmt.Fprintf(log, "terraform plan against the emulator at %s ...\n", srv.Endpoint())
			plan, err := scan.PlanJSON(ctx, res.Dir, srv.Endpoint(), tfcli.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "trivy config %s ...\n", plan)
			rep, err := scan.Trivy(ctx, trivy, plan)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				scan.Render(out, rep)
			}
			fmt.Fprintf(log, "scanned in %s\n", time.Since(start).Round(time.Millisecond))
			if b := rep.Blocking(); len(b) > 0 {
				return errors.New(scan.BlockingSummary(b))
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().StringVar(&workDir, "work-dir", "", "keep the synthesized stack, the plan and its JSON here (default: a temporary directory, removed)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	_ = cmd.Flags().MarkHidden("out")
	return cmd
}
