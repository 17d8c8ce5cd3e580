package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"paydr/internal/dr"
)

// Case is one drill of a matrix: a fault, with or without replication cut
// before it.
type Case struct {
	Fault string `json:"fault"`
	// CutReplication is how long before the fault replication to the
	// standby is cut (0: not cut).
	CutReplication time.Duration `json:"cut_replication_ns,omitempty"`
}

// Name names the case, such as "kill-db" or "kill-db+cut".
func (c Case) Name() string {
	if c.CutReplication > 0 {
		return c.Fault + "+cut"
	}
	return c.Fault
}

// MatrixCases returns each fault without and then with replication cut for
// cut before it.
func MatrixCases(faults []string, cut time.Duration) []Case {
	out := make([]Case, 0, 2*len(faults))
	for _, f := range faults {
		out = append(out, Case{Fault: f}, Case{Fault: f, CutReplication: cut})
	}
	return out
}

// MatrixRow is one drill of a matrix and what it showed.
type MatrixRow struct {
	Case
	// Report is the drill's report (nil when it could not start).
	Report *Report `json:"report,omitempty"`
	// Error is why the drill, or restoring the pair after it, failed.
	Error string `json:"error,omitempty"`
	// Pass is true when the drill ran and every check passed.
	Pass bool `json:"pass"`
}

// Matrix is what RunMatrix measured.
type Matrix struct {
	Backend string    `json:"backend"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// Rate, Duration and FaultAfter are each drill's traffic.
	Rate       float64       `json:"rate_per_s"`
	Duration   time.Duration `json:"duration_ns"`
	FaultAfter time.Duration `json:"fault_after_ns"`
	Rows       []MatrixRow   `json:"rows"`
}

// Passed reports whether every drill of the matrix ran and passed.
func (m *Matrix) Passed() bool {
	for _, r := range m.Rows {
		if !r.Pass {
			return false
		}
	}
	return len(m.Rows) > 0
}

// MatrixOptions configure RunMatrix.
type MatrixOptions struct {
	// Drill is every drill's options; Fault, CutReplication and Prefix are
	// set per case (the prefix gets the case's name appended).
	Drill Options
	// Cases are run in order (default: MatrixCases(Faults, 3 s)).
	Cases []Case
	// RestoreTimeout bounds the wait for a streaming standby before a drill
	// (default 2 minutes).
	RestoreTimeout time.Duration
}

// ValidateMatrix reports the first case whose drill options o would refuse.
func ValidateMatrix(o Options, cases []Case) error {
	for _, c := range cases {
		o.Fault, o.CutReplication = c.Fault, c.CutReplication
		if err := o.Validate(); err != nil {
			return fmt.Errorf("matrix: case %s: %w", c.Name(), err)
		}
	}
	return nil
}

// DefaultMatrixCut is the replication cut of a matrix's "+cut" cases.
const DefaultMatrixCut = 3 * time.Second

// RunMatrix runs the cases one after another. Before each it returns the
// pair to health: the writer in the primary slot and a streaming standby (a
// failback through Operate when a drill moved the writer). A drill that fails
// is recorded and the matrix goes on; one that leaves the pair beyond repair
// stops it. The error is nil when every case ran, whether or not it passed.
func RunMatrix(ctx context.Context, b dr.Backend, env Env, locker dr.Locker, j *dr.Journal, mo MatrixOptions) (*Matrix, error) {
	start := time.Now()
	base := mo.Drill.withDefaults(start)
	cases := mo.Cases
	if len(cases) == 0 {
		cases = MatrixCases(Faults, DefaultMatrixCut)
	}
	if err := ValidateMatrix(base, cases); err != nil {
		return nil, err
	}
	if mo.RestoreTimeout <= 0 {
		mo.RestoreTimeout = 2 * time.Minute
	}
	m := &Matrix{Start: start, Rate: base.Rate, Duration: base.Duration, FaultAfter: base.FaultAfter}
	for i, c := range cases {
		fmt.Fprintf(base.Log, "matrix %d/%d: %s\n", i+1, len(cases), c.Name())
		if err := restorePair(ctx, b, locker, j, base.Log, mo.RestoreTimeout); err != nil {
			m.End = time.Now()
			return m, fmt.Errorf("drill matrix: before %s: %w", c.Name(), err)
		}
		o := base
		o.Fault, o.CutReplication = c.Fault, c.CutReplication
		o.Prefix = base.Prefix + "-" + strings.ReplaceAll(c.Name(), "+", "-")
		rep, err := Run(ctx, b, env, locker, j, o)
		row := MatrixRow{Case: c, Report: rep}
		if rep != nil {
			m.Backend = rep.Backend
		}
		if err != nil {
			row.Error = err.Error()
		}
		row.Pass = err == nil && rep != nil && rep.Passed()
		m.Rows = append(m.Rows, row)
		if ctx.Err() != nil {
			m.End = time.Now()
			return m, fmt.Errorf("drill matrix: %w", ctx.Err())
		}
	}
	err := restorePair(ctx, b, locker, j, base.Log, mo.RestoreTimeout)
	m.End = time.Now()
	if err != nil {
		return m, fmt.Errorf("drill matrix: after the last drill: %w", err)
	}
	return m, nil
}

// restorePair fails back when the writer is not in the primary slot, then
// waits until the standby streams.
func restorePair(ctx context.Context, b dr.Backend, locker dr.Locker, j *dr.Journal, log io.Writer, timeout time.Duration) error {
	st, err := b.Status(ctx)
	if err != nil {
		return err
	}
	if home, ok := st.Slot("primary"); ok && home.Role != dr.RoleWriter {
		fmt.Fprintf(log, "restoring the pair: failback to %s\n", home.Name)
		if _, err := dr.Operate(ctx, b, locker, j, dr.Request{Op: dr.Failback, Owner: "drill matrix"}, log); err != nil {
			return fmt.Errorf("failback: %w", err)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := b.Status(ctx)
		if err == nil && len(st.Writers()) == 1 && st.Replication.Streaming {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no single writer with a streaming standby")
			}
			return fmt.Errorf("the pair is not healthy after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// WriteMarkdown writes the matrix as a Markdown table, one row per drill,
// with the figures each drill measured and the checks that failed.
func (m *Matrix) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	ms := func(d time.Duration) string {
		if d == 0 {
			return "0"
		}
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	fmt.Fprintf(&b, "Measured by `paydr dr drill --matrix` on the %s backend, %s: %.0f payments/s for %s per drill, fault at +%s; \"+cut\" cuts replication %s before the fault.\n\n",
		m.Backend, m.Start.UTC().Format("2006-01-02"), m.Rate, m.Duration, m.FaultAfter, DefaultMatrixCut)
	b.WriteString("| drill | result | detection | promotion | RTO | acked | lost (span) | loss window | lost after fault | RPO bound | duplicated | outcome unknown |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range m.Rows {
		r := row.Report
		if r == nil {
			fmt.Fprintf(&b, "| %s | did not run: %s | | | | | | | | | | |\n", row.Name(), mdEscape(row.Error))
			continue
		}
		result := "pass"
		if !row.Pass {
			var failed []string
			for _, c := range r.Checks {
				if !c.Pass {
					failed = append(failed, c.Name)
				}
			}
			if row.Error != "" && len(failed) == 0 {
				failed = append(failed, row.Error)
			}
			result = "FAIL: " + mdEscape(strings.Join(failed, "; "))
		} else if r.Refused != "" {
			result = "pass (refused)"
		}
		det, prom, rto := "–", "–", "–"
		if r.Detection > 0 {
			det = ms(r.Detection)
		}
		if r.Promotion > 0 {
			prom = ms(r.Promotion)
		}
		if r.Recovered {
			rto = ms(r.RTO)
		}
		unknown := 0
		for _, a := range r.Attempts {
			if a.Answer == Indeterminate {
				unknown++
			}
		}
		bound := "none"
		if r.RPOBound > 0 {
			bound = r.RPOBound.String()
		} else if r.RPOZero {
			bound = "0 (sync)"
		}
		lost := fmt.Sprint(r.LostCount)
		if r.LostCount > 0 {
			lost += " (" + ms(r.LostSpan) + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d/%d | %s | %s | %d | %s | %d | %d |\n",
			row.Name(), result, det, prom, rto, r.Acked, r.Sent, lost, ms(r.LostWindow), r.LostAfterFault, bound,
			r.Classification.Counts[ClassDuplicated], unknown)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// ReplaceSection returns doc with the text between the lines begin and end
// replaced by body; it fails when either line is missing or out of order.
func ReplaceSection(doc []byte, begin, end string, body []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(doc), "\n")
	bi := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == begin })
	ei := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == end })
	if bi < 0 || ei < 0 || ei < bi {
		return nil, fmt.Errorf("drill matrix: the document has no section between %q and %q", begin, end)
	}
	var out strings.Builder
	for _, l := range lines[:bi+1] {
		out.WriteString(l)
	}
	out.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		out.WriteByte('\n')
	}
	for _, l := range lines[ei:] {
		out.WriteString(l)
	}
	return []byte(out.String()), nil
}
