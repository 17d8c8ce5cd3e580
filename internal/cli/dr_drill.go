package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"paydr/internal/dr/drill"

	"github.com/spf13/cobra"
)

func newDRDrillCmd(f *drFlags) *cobra.Command {
	var o drill.Options
	var timeline string
	var mx matrixFlags
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Game day: payments under a fault, failover, and measured RTO/RPO",
		Long: `Run a game day against the local environment: steady payments through the
router, a fault in the writer region (--fault kill-db, kill-processor,
cut-region, partition, or switchover for a planned switchover under traffic), detection
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
			if mx.on {
				mx.cases = mx.matrixCases(o.CutReplication)
				if err := drill.ValidateMatrix(o, mx.cases); err != nil {
					return usageError{fmt.Errorf("dr drill: %w (see paydr dr drill --help)", err)}
				}
			} else if err := o.Validate(); err != nil {
				return usageError{fmt.Errorf("dr %w (see paydr dr drill --help)", err)}
			}
			t, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			if !f.jsonOut {
				o.Log = cmd.ErrOrStderr()
			}
			if mx.on {
				return runMatrix(cmd, f, t, o, mx)
			}
			rep, err := drill.Run(cmd.Context(), t.backend, t.drill, t.locker, t.journal, o)
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
	fl.StringVar(&o.Fault, "fault", drill.FaultKillDB, "kill-db, kill-processor, cut-region, partition or switchover")
	fl.Float64Var(&o.Rate, "rate", 5, "payments per second (the local emulator saturates near 20/s)")
	fl.DurationVar(&o.Duration, "duration", 30*time.Second, "how long traffic runs")
	fl.DurationVar(&o.FaultAfter, "fault-after", 5*time.Second, "when the fault is injected")
	fl.DurationVar(&o.MaxRTO, "max-rto", 30*time.Second, "RTO target checked")
	fl.DurationVar(&o.CutReplication, "cut-replication", 0, "cut replication to the standby this long before the fault, forcing data loss (unplanned faults only)")
	fl.StringVar(&timeline, "timeline", "", "write an SVG timeline to this file")
	fl.BoolVar(&f.jsonOut, "json", false, "print the report as JSON")
	fl.BoolVar(&mx.on, "matrix", false, "run every fault without and with a replication cut (--cut-replication, default 3s), failing back between drills")
	fl.StringVar(&mx.faults, "faults", "", "with --matrix: the faults to run, comma-separated (default: all)")
	fl.StringVar(&mx.readme, "readme", "", "with --matrix: rewrite the table between the drill-matrix markers of this file")
	fl.StringVar(&mx.dir, "out", "", "with --matrix: write each drill's report (JSON, text) and timeline (SVG) into this directory")
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

// matrixFlags are the flags of paydr dr drill --matrix.
type matrixFlags struct {
	on     bool
	faults string
	readme string
	dir    string
	cases  []drill.Case
}

// matrixCases returns the cases the flags name: each fault (--faults, or
// all) without and with a replication cut of cut (default 3 s).
func (mx matrixFlags) matrixCases(cut time.Duration) []drill.Case {
	if cut == 0 {
		cut = drill.DefaultMatrixCut
	}
	faults := drill.Faults
	if mx.faults != "" {
		faults = strings.Split(mx.faults, ",")
	}
	return drill.MatrixCases(faults, cut)
}

// The lines around the drill table in a README (--readme).
const (
	matrixBegin = "<!-- drill-matrix:begin (generated by paydr dr drill --matrix --readme README.md) -->"
	matrixEnd   = "<!-- drill-matrix:end -->"
)

func runMatrix(cmd *cobra.Command, f *drFlags, t *drTarget, o drill.Options, mx matrixFlags) error {
	o.CutReplication = 0
	m, err := drill.RunMatrix(cmd.Context(), t.backend, t.drill, t.locker, t.journal,
		drill.MatrixOptions{Drill: o, Cases: mx.cases})
	if m == nil {
		return err
	}
	if mx.dir != "" {
		if werr := writeMatrixDir(mx.dir, m); werr != nil {
			return werr
		}
	}
	var table strings.Builder
	if werr := m.WriteMarkdown(&table); werr != nil {
		return werr
	}
	if f.jsonOut {
		if werr := writeJSON(cmd.OutOrStdout(), m); werr != nil {
			return werr
		}
	} else {
		fmt.Fprint(cmd.OutOrStdout(), table.String())
	}
	if err != nil {
		return err
	}
	if mx.readme != "" {
		doc, rerr := os.ReadFile(mx.readme)
		if rerr != nil {
			return fmt.Errorf("dr drill: --readme: %w", rerr)
		}
		out, rerr := drill.ReplaceSection(doc, matrixBegin, matrixEnd, []byte(table.String()))
		if rerr != nil {
			return fmt.Errorf("dr drill: --readme %s: %w; add the lines %q and %q where the table goes", mx.readme, rerr, matrixBegin, matrixEnd)
		}
		if werr := os.WriteFile(mx.readme, out, 0o644); werr != nil {
			return fmt.Errorf("dr drill: --readme: %w", werr)
		}
	}
	if !m.Passed() {
		var failed []string
		for _, r := range m.Rows {
			if !r.Pass {
				failed = append(failed, r.Name())
			}
		}
		return fmt.Errorf("dr drill: matrix: drills failed: %s", strings.Join(failed, ", "))
	}
	return nil
}

// writeMatrixDir writes each drill's report and timeline into dir.
func writeMatrixDir(dir string, m *drill.Matrix) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dr drill: --out: %w", err)
	}
	for _, r := range m.Rows {
		if r.Report == nil {
			continue
		}
		base := filepath.Join(dir, "drill-"+strings.ReplaceAll(r.Name(), "+", "-"))
		if err := writeTimeline(base+".svg", r.Report); err != nil {
			return err
		}
		var text strings.Builder
		if err := r.Report.Render(&text); err != nil {
			return err
		}
		if err := os.WriteFile(base+".txt", []byte(text.String()), 0o644); err != nil {
			return fmt.Errorf("dr drill: --out: %w", err)
		}
	}
	return nil
}
