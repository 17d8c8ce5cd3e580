// Package cli is the paydr command line: one file per subcommand, each a
// thin layer over the packages that do the work. The commands that call AWS
// APIs reach them through Backends, so that the paydr binary links no AWS
// SDK (see Backends).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs the paydr command with os.Args and b, and returns the exit
// code.
func Main(b Backends) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, b, os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs the paydr command with args and b, writing to stdout and stderr, and
// returns the exit code: 0 on success, 1 on failure, 2 on bad usage, 3 when
// a DR operation put the writer in place but stays open, owing best-effort
// steps (such as fencing a region that cannot be reached yet).
func Run(ctx context.Context, b Backends, args []string, stdout, stderr io.Writer) int {
	root := newRoot(b)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "paydr:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		var ie incompleteError
		if errors.As(err, &ie) {
			return 3
		}
		return 1
	}
	return 0
}

// usageError marks errors in how paydr was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// incompleteError marks a DR operation that stays open with owed steps.
type incompleteError struct{ error }

func (e incompleteError) Unwrap() error { return e.error }

func newRoot(b Backends) *cobra.Command {
	root := &cobra.Command{
		Use:   "paydr",
		Short: "Multi-region disaster recovery for a payment platform on AWS",
		Long: `paydr defines a two-region payment platform (Aurora PostgreSQL Global Database,
a DynamoDB global table, a Go payment processor on Lambda, Route 53 failover)
as Go, synthesizes it as Terraform JSON, proves it locally, and runs its DR
operations.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %w (see paydr %s --help)", c.Name(), err, c.Name())}
	})
	root.AddCommand(
		newSynthCmd(),
		newValidateCmd(),
		newScanCmd(),
		newBuildCmd(),
		newServeCmd(b),
		newDRCmd(b),
		newUpCmd(b), newDownCmd(), newStatusCmd(), newRouterCmd(), newRPOGuardCmd(),
		newFaultProxyCmd(),
	)
	return root
}
