package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"paydr/internal/dr/drill"

	"github.com/spf13/cobra"
)

func newDRDrillCmd(f *drFlags) *cobra.Command {
	var o drill.Options
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
			rep, err := drill.Run(cmd.Context(), t.backend, t.local.DrillEnv(), t.locker, t.journal, o)
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
	fl.StringVar(&o.Fault, "fault", drill.FaultKillDB, "kill-db, kill-processor, cut-region or switchover")
	fl.Float64Var(&o.Rate, "rate", 5, "payments per second (the local emulator saturates near 20/s)")
	fl.DurationVar(&o.Duration, "duration", 30*time.Second, "how long traffic runs")
	fl.DurationVar(&o.FaultAfter, "fault-after", 5*time.Second, "when the fault is injected")
	fl.DurationVar(&o.MaxRTO, "max-rto", 30*time.Second, "RTO target checked")
	fl.DurationVar(&o.CutReplication, "cut-replication", 0, "cut replication to the standby this long before the fault, forcing data loss (unplanned faults only)")
	fl.StringVar(&timeline, "timeline", "", "write an SVG timeline to this file")
	fl.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	return cmd
}

func writeTimeline(path string, rep *drill.Report) error {
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
