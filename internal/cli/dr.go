package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"paydr/internal/dr"
	"paydr/internal/dr/awsdr"
	"paydr/internal/dr/localdr"
	"paydr/internal/local"
)

// drFlags are the flags every paydr dr subcommand shares.
type drFlags struct {
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
	local   *localdr.Backend // nil on AWS
	dryRun  bool
}

func (f *drFlags) open(ctx context.Context) (*drTarget, error) {
	switch f.backend {
	case "local":
		b, err := localdr.Open(f.stateDir)
		if err != nil {
			return nil, err
		}
		j, err := b.Journal()
		if err != nil {
			return nil, err
		}
		return &drTarget{backend: b, journal: j, locker: b.Locker(), local: b, dryRun: f.dryRun}, nil
	case "aws":
		b, lock, err := awsdr.Connect(ctx, awsdr.Options{Suffix: f.env, Region: f.region, Endpoint: f.endpoint})
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

func newDRCmd() *cobra.Command {
	f := &drFlags{}
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
	pf.StringVar(&f.stateDir, "state-dir", local.StateDirFromEnv(), "state directory of the local environment, and of the DR journal ($PAYDR_STATE_DIR)")
	pf.StringVar(&f.region, "region", envOr("AWS_REGION", ""), "aws: the region to act from; for a failover, the surviving region")
	pf.StringVar(&f.env, "env", envOr("PAYDR_ENV", "dev"), "aws: the stack's environment suffix ($PAYDR_ENV)")
	pf.StringVar(&f.endpoint, "endpoint", envOr("PAYDR_AWS_ENDPOINT", ""), "aws: an emulator endpoint for every service ($PAYDR_AWS_ENDPOINT)")
	pf.BoolVar(&f.yes, "yes", false, "aws: act; without it an AWS operation is a dry run")
	pf.BoolVar(&f.dryRun, "dry-run", false, "print the plan and its calls without acting")
	cmd.AddCommand(newDRStatusCmd(f), newDROpCmd(f, dr.Switchover), newDROpCmd(f, dr.Failover), newDROpCmd(f, dr.Failback), newDRFenceCmd(f), newDRAbandonCmd(f), newDRDrillCmd(f))
	return cmd
}

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
				if j, err = localdr.OpenJournal(f.stateDir); err != nil {
					return err
				}
				locker = localdr.Locker(f.stateDir)
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

func newDRDrillCmd(f *drFlags) *cobra.Command {
	var o dr.DrillOptions
	var timeline string
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Game day: payments under a fault, failover, and measured RTO/RPO",
		Long: `Run a game day against the local environment: steady payments through the
router, a fault in the writer region (--fault kill-db, kill-processor,
cut-region, or switchover for a planned switchover under traffic), detection
by the health checks, failover, then every payment classified against the new
writer's ledger. It reports detection, promotion, RTO, RPO, client errors and
duplicates; --timeline writes an SVG picture. The writer stays where the drill
moved it: paydr dr failback returns it.

--cut-replication 3s cuts replication to the standby that long before the
fault, so the failover must lose what the writer acknowledged meanwhile: the
drill then checks that the loss stays inside the replication lag measured at
the fault and inside the estimate the failover printed before it acted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.backend != "local" {
				return usageError{errors.New("dr drill: only --backend local is supported; drills inject real faults")}
			}
			// Bad options are refused before anything is opened or touched.
			if err := o.Validate(); err != nil {
				return usageError{fmt.Errorf("dr %w (see paydr dr drill --help)", err)}
			}
			t, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			if !f.jsonOut {
				o.Log = cmd.ErrOrStderr()
			}
			rep, err := dr.Drill(cmd.Context(), t.backend, t.local.DrillEnv(), t.locker, t.journal, o)
			if rep != nil {
				if timeline != "" {
					if werr := writeTimeline(timeline, rep); werr != nil {
						return werr
					}
				}
				if f.jsonOut {
					if werr := writeJSON(cmd.OutOrStdout(), rep); werr != nil {
						return werr
					}
				} else if werr := rep.Render(cmd.OutOrStdout()); werr != nil {
					return werr
				}
			}
			if err != nil {
				return err
			}
			if !rep.Passed() {
				var failed []string
				for _, c := range rep.Checks {
					if !c.Pass {
						failed = append(failed, c.Name)
					}
				}
				return fmt.Errorf("dr drill: checks failed: %s", strings.Join(failed, ", "))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Fault, "fault", dr.FaultKillDB, "kill-db, kill-processor, cut-region or switchover")
	fl.Float64Var(&o.Rate, "rate", 5, "payments per second (the local emulator saturates near 20/s)")
	fl.DurationVar(&o.Duration, "duration", 30*time.Second, "how long traffic runs")
	fl.DurationVar(&o.FaultAfter, "fault-after", 5*time.Second, "when the fault is injected")
	fl.DurationVar(&o.MaxRTO, "max-rto", 30*time.Second, "RTO target checked")
	fl.DurationVar(&o.CutReplication, "cut-replication", 0, "cut replication to the standby this long before the fault, forcing data loss (unplanned faults only)")
	fl.StringVar(&timeline, "timeline", "", "write an SVG timeline to this file")
	fl.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	return cmd
}

func writeTimeline(path string, rep *dr.DrillReport) error {
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dr drill: timeline: %w", err)
	}
	if err := rep.WriteTimeline(fh); err != nil {
		fh.Close()
		return fmt.Errorf("dr drill: timeline: %w", err)
	}
	return fh.Close()
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
