package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"paydr/internal/dr"
	"paydr/internal/dr/drill"
	"paydr/internal/local/env"
	"paydr/internal/processor/environ"
)

// drFlags are the flags every paydr dr subcommand shares, and the backends
// they open.
type drFlags struct {
	backends Backends
	backend  string
	stateDir string
	region   string
	env      string
	endpoint string
	yes      bool
	dryRun   bool
	jsonOut  bool
}

// drTarget is a backend with its journal and lock.
type drTarget struct {
	backend dr.Backend
	journal *dr.Journal
	locker  dr.Locker
	drill   drill.Env // nil on AWS
	dryRun  bool
}

func (f *drFlags) open(ctx context.Context) (*drTarget, error) {
	switch f.backend {
	case "local":
		l, err := f.backends.LocalDR(ctx, f.stateDir)
		if err != nil {
			return nil, err
		}
		return &drTarget{backend: l.Backend, journal: l.Journal, locker: l.Locker, drill: l.Drill, dryRun: f.dryRun}, nil
	case "aws":
		b, lock, err := f.backends.AWSDR(ctx, AWSOptions{Suffix: f.env, Region: f.region, Endpoint: f.endpoint})
		if err != nil {
			return nil, err
		}
		// The journal of AWS operations is kept on the operator's machine,
		// next to the local state directory; the lock is in DynamoDB.
		j, err := dr.OpenJournal(filepath.Join(filepath.Dir(filepath.Clean(f.stateDir)), "aws-"+f.env, "dr", "journal"))
		if err != nil {
			return nil, err
		}
		return &drTarget{backend: b, journal: j, locker: lock, dryRun: !f.yes || f.dryRun}, nil
	}
	return nil, usageError{fmt.Errorf("dr: --backend %q is not local or aws", f.backend)}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newDRCmd(b Backends) *cobra.Command {
	f := &drFlags{backends: b}
	cmd := &cobra.Command{
		Use:   "dr",
		Short: "Disaster recovery: status, switchover, failover, failback, drills",
		Long: `Disaster-recovery operations on the local environment (paydr up) or on AWS.

Each operation first plans its steps from the observed state (printed), then
runs them under a lock, journaling every step in the state directory: an
interrupted operation resumes when the same command runs again. On AWS the
default is a dry run printing the exact API calls; --yes acts. Failover reads
everything from the surviving region (--region): never Terraform state.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.backend, "backend", envOr("PAYDR_DR_BACKEND", "local"), "local (the environment of paydr up) or aws")
	pf.StringVar(&f.stateDir, "state-dir", env.StateDirFromEnv(), "state directory of the local environment, and of the DR journal ($PAYDR_STATE_DIR)")
	pf.StringVar(&f.region, "region", envOr("AWS_REGION", ""), "aws: the region to act from; for a failover, the surviving region")
	pf.StringVar(&f.env, "env", envOr("PAYDR_ENV", "dev"), "aws: the stack's environment suffix ($PAYDR_ENV)")
	pf.StringVar(&f.endpoint, "endpoint", envOr(environ.AWSEndpoint, ""), "aws: an emulator endpoint for every service ($PAYDR_AWS_ENDPOINT)")
	pf.BoolVar(&f.yes, "yes", false, "aws: act; without it an AWS operation is a dry run")
	pf.BoolVar(&f.dryRun, "dry-run", false, "print the plan and its calls without acting")
	cmd.AddCommand(newDRStatusCmd(f), newDROpCmd(f, dr.Switchover), newDROpCmd(f, dr.Failover), newDROpCmd(f, dr.Failback), newDRFenceCmd(f), newDRAbandonCmd(f), newDRDrillCmd(f))
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func owner() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}
