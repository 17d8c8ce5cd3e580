package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"paydr/internal/tfcli"
)

// The apply step of Up: terraform init and apply of the local stack on the
// emulator, skipped when the emulator still holds the same stack, with
// progress read from apply's JSON lines.

// appliedRecord is paydr-applied.json: the stack hash last applied and the
// emulator process that holds its resources.
type appliedRecord struct {
	Hash      string          `json:"hash"`
	MotoPID   int             `json:"moto_pid"`
	Resources int             `json:"resources"`
	Outputs   json.RawMessage `json:"outputs"`
}

// applyStack is Up's step applying the stack to the emulator (apply).
func (u *upRun) applyStack(ctx context.Context) (string, error) {
	r, detail, err := u.apply(ctx)
	u.applied = r
	if werr := u.joinWarm(); werr != nil {
		fmt.Fprintf(u.o.Out, "      note: warming the emulator's services before the plan failed (it only saves time): %v\n", werr)
	}
	return detail, err
}

// apply runs terraform init and apply unless the applied record shows the
// same stack on the same emulator process, and enters the outputs and the
// number of resources in the manifest.
func (u *upRun) apply(ctx context.Context) (*ApplyReport, string, error) {
	m, ms := u.m, u.moto
	dir := m.Stack.Dir
	recPath := u.l.Applied(dir)
	var rec appliedRecord
	if b, err := os.ReadFile(recPath); err == nil {
		_ = json.Unmarshal(b, &rec)
	}
	_, stateErr := os.Stat(m.Stack.StatePath)
	if rec.MotoPID != ms.PID() {
		// A new emulator holds nothing: the old state describes resources
		// that no longer exist.
		_ = os.Remove(m.Stack.StatePath)
		_ = os.Remove(m.Stack.StatePath + ".backup")
		_ = os.Remove(recPath)
	} else if rec.Hash == m.Stack.Hash && stateErr == nil && len(rec.Outputs) > 0 {
		if err := json.Unmarshal(rec.Outputs, &m.Outputs); err == nil {
			m.Stack.Resources = rec.Resources
			return nil, fmt.Sprintf("skipped: stack unchanged since the last apply and moto (pid %d) still holds its %d resources", ms.PID(), rec.Resources), nil
		}
	} else if stateErr == nil {
		// The stack changed. Updating in place on the emulator trips over
		// what it does not keep (tags, blocks it never returns): a DMS
		// subnet group's tag update, for one, waits minutes for tags that
		// never appear. The emulator's state is disposable, so start from
		// an empty one and apply afresh.
		fmt.Fprintf(u.o.Out, "      the stack changed since the last apply: resetting the emulator and applying afresh\n")
		if err := ms.Reset(ctx); err != nil {
			return nil, "", fmt.Errorf("up: reset the emulator: %w", err)
		}
		_ = os.Remove(m.Stack.StatePath)
		_ = os.Remove(m.Stack.StatePath + ".backup")
		_ = os.Remove(recPath)
	}
	logf, err := openLog(u.l.TerraformLog())
	if err != nil {
		return nil, "", fmt.Errorf("up: terraform: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- %s paydr up: terraform init + apply in %s\n", time.Now().UTC().Format(time.RFC3339Nano), dir)
	tf, err := tfcli.New(dir, tfcli.Options{Emulator: ms.Endpoint(), Stdout: logf, Stderr: logf})
	if err != nil {
		return nil, "", fmt.Errorf("up: terraform: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = tf.Init(ictx, tfexec.Upgrade(false))
	cancel()
	if err != nil {
		return nil, "", fmt.Errorf("up: terraform init: %w; see %s", err, u.l.TerraformLog())
	}
	fmt.Fprintf(u.o.Out, "      init done; applying (log %s) ...\n", u.l.TerraformLog())
	attempt := func() (ApplyReport, error) {
		actx, cancel := context.WithTimeout(ctx, u.o.ApplyTimeout)
		defer cancel()
		r, err := applyOnce(actx, tf, logf, u.o.Out, u.o.ProgressEvery, u.o.Parallelism)
		if err != nil && isDeadline(actx.Err()) && ctx.Err() == nil {
			return r, fmt.Errorf("up: terraform apply: no result after %s (%d/%d resources done); see %s, and raise --apply-timeout if moto is just slow: %w",
				u.o.ApplyTimeout, r.Done, r.Planned, u.l.TerraformLog(), context.DeadlineExceeded)
		}
		return r, err
	}
	r, err := attempt()
	if err != nil && alreadyExists(r, err) && ctx.Err() == nil {
		fmt.Fprintf(u.o.Out, "      apply failed on \"already exists\" (%s); applying once more, which converges\n", strings.Join(r.Errors, "; "))
		first := r
		r, err = attempt()
		r.Elapsed += first.Elapsed
		r.Done += first.Done
		r.Planned = max(r.Planned, first.Planned)
	}
	if err != nil && ctx.Err() != nil {
		return &r, "", fmt.Errorf("up: terraform apply: interrupted after %d/%d changes (log %s): %w", r.Done, r.Planned, u.l.TerraformLog(), ctx.Err())
	}
	if err != nil {
		if len(r.Errors) > 0 {
			return &r, "", fmt.Errorf("up: terraform apply: %d errors:\n  %s\nsee %s: %w", len(r.Errors), strings.Join(r.Errors, "\n  "), u.l.TerraformLog(), err)
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return &r, "", err
		}
		return &r, "", fmt.Errorf("up: terraform apply: %w; see %s", err, u.l.TerraformLog())
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	outs, err := tf.Output(octx)
	cancel()
	if err != nil {
		return &r, "", fmt.Errorf("up: terraform output: %w; see %s", err, u.l.TerraformLog())
	}
	m.Outputs = map[string]json.RawMessage{}
	for k, v := range outs {
		m.Outputs[k] = v.Value
	}
	// Counted from the state file, not terraform show: show loads both
	// provider instances for their schemas, several seconds of CPU.
	if n, err := countManagedInState(m.Stack.StatePath); err == nil {
		m.Stack.Resources = n
	}
	outJSON, _ := json.Marshal(m.Outputs)
	b, _ := json.MarshalIndent(appliedRecord{Hash: m.Stack.Hash, MotoPID: ms.PID(), Resources: m.Stack.Resources, Outputs: outJSON}, "", "  ")
	if err := os.WriteFile(recPath, b, 0o644); err != nil {
		return &r, "", fmt.Errorf("up: record apply: %w", err)
	}
	var slow []string
	for i, t := range r.Slowest {
		if i == 5 {
			break
		}
		slow = append(slow, fmt.Sprintf("%s %s", t.Address, round(t.Elapsed)))
	}
	fmt.Fprintf(u.o.Out, "      planning took %s; slowest: %s\n", round(r.Planning), strings.Join(slow, ", "))
	return &r, fmt.Sprintf("%d/%d changes applied, %d resources in state", r.Done, r.Planned, m.Stack.Resources), nil
}

// countManagedInState counts the managed resource instances in the
// Terraform state file at path, as terraform show's root module lists them.
func countManagedInState(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var st struct {
		Resources []struct {
			Mode      string            `json:"mode"`
			Module    string            `json:"module"`
			Instances []json.RawMessage `json:"instances"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	n := 0
	for _, r := range st.Resources {
		if r.Mode == "managed" && r.Module == "" {
			n += len(r.Instances)
		}
	}
	return n, nil
}

// applyEvent is the part of a line of `terraform apply -json` paydr reads.
type applyEvent struct {
	Level     string    `json:"@level"`
	Message   string    `json:"@message"`
	Timestamp time.Time `json:"@timestamp"`
	Type      string    `json:"type"`
	Hook      struct {
		Resource struct {
			Addr string `json:"addr"`
		} `json:"resource"`
		Action  string  `json:"action"`
		Elapsed float64 `json:"elapsed_seconds"`
	} `json:"hook"`
	Changes struct {
		Add       int    `json:"add"`
		Change    int    `json:"change"`
		Remove    int    `json:"remove"`
		Operation string `json:"operation"`
	} `json:"changes"`
	Diagnostic struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
		Detail   string `json:"detail"`
		Address  string `json:"address"`
	} `json:"diagnostic"`
}

// ResourceTime is how long Terraform took to create or change one resource.
type ResourceTime struct {
	Address string        `json:"address"`
	Elapsed time.Duration `json:"elapsed"`
}

// ApplyReport summarizes one terraform apply.
type ApplyReport struct {
	// Planned is the number of resources to add, change or destroy.
	Planned int
	// Done is the number of them completed.
	Done int
	// Slowest are the resources that took longest, slowest first.
	Slowest []ResourceTime
	// Errors are the error diagnostics, one line each with the address.
	Errors []string
	// ErrorAddresses are the addresses of the resources that failed.
	ErrorAddresses []string
	// Planning is the time until the plan was known (refresh and plan).
	Planning time.Duration
	// Elapsed is the apply's wall time.
	Elapsed time.Duration
}

// applyProgress reads the JSON lines of terraform apply, copies them to a
// log, and prints progress: completed out of planned every tick, with what
// is in flight longest.
type applyProgress struct {
	mu        sync.Mutex
	log       io.Writer
	out       io.Writer
	started   time.Time
	planned   int
	done      int
	inFlight  map[string]time.Time
	times     []ResourceTime
	errs      []string
	errAddrs  []string
	plannedAt time.Time
}

func newApplyProgress(log, out io.Writer) *applyProgress {
	return &applyProgress{log: log, out: out, started: time.Now(), inFlight: map[string]time.Time{}}
}

// consume reads terraform's JSON lines from r until EOF.
func (p *applyProgress) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		p.mu.Lock()
		_, _ = p.log.Write(append(line, '\n'))
		var ev applyEvent
		if json.Unmarshal(line, &ev) == nil {
			p.handle(ev)
		}
		p.mu.Unlock()
	}
}

func (p *applyProgress) handle(ev applyEvent) {
	addr := ev.Hook.Resource.Addr
	switch ev.Type {
	case "change_summary":
		if ev.Changes.Operation == "plan" {
			p.planned = ev.Changes.Add + ev.Changes.Change + ev.Changes.Remove
			p.plannedAt = time.Now()
		}
	case "apply_start":
		if ev.Hook.Action != "read" {
			p.inFlight[addr] = time.Now()
		}
	case "apply_complete":
		if ev.Hook.Action == "read" {
			return
		}
		start, ok := p.inFlight[addr]
		delete(p.inFlight, addr)
		d := time.Duration(ev.Hook.Elapsed * float64(time.Second))
		if ok {
			d = time.Since(start)
		}
		p.times = append(p.times, ResourceTime{Address: addr, Elapsed: d})
		p.done++
	case "apply_errored":
		delete(p.inFlight, addr)
	case "diagnostic":
		if ev.Diagnostic.Severity == "error" {
			msg := ev.Diagnostic.Summary
			if ev.Diagnostic.Detail != "" {
				msg += ": " + firstLine(ev.Diagnostic.Detail)
			}
			if ev.Diagnostic.Address != "" {
				msg = ev.Diagnostic.Address + ": " + msg
				p.errAddrs = append(p.errAddrs, ev.Diagnostic.Address)
			}
			p.errs = append(p.errs, msg)
		}
	}
}

// tick prints one progress line.
func (p *applyProgress) tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	type fl struct {
		addr string
		d    time.Duration
	}
	var flying []fl
	for a, t := range p.inFlight {
		flying = append(flying, fl{a, time.Since(t)})
	}
	sort.Slice(flying, func(i, j int) bool {
		if flying[i].d != flying[j].d {
			return flying[i].d > flying[j].d
		}
		return flying[i].addr < flying[j].addr
	})
	var parts []string
	for i, f := range flying {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("+%d more", len(flying)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %ds", f.addr, int(f.d.Seconds())))
	}
	planned := "?"
	if p.planned > 0 {
		planned = fmt.Sprint(p.planned)
	}
	line := fmt.Sprintf("      %3ds  %d/%s done", int(time.Since(p.started).Seconds()), p.done, planned)
	if p.planned == 0 {
		line = fmt.Sprintf("      %3ds  planning (reading data sources and the state)", int(time.Since(p.started).Seconds()))
	} else if p.done == 0 && len(p.inFlight) == 0 {
		line = fmt.Sprintf("      %3ds  planned %d changes in %s", int(time.Since(p.started).Seconds()), p.planned, round(p.plannedAt.Sub(p.started)))
	}
	if len(parts) > 0 {
		line += "; waiting on " + strings.Join(parts, ", ")
	}
	fmt.Fprintln(p.out, line)
}

func (p *applyProgress) report() ApplyReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	times := append([]ResourceTime(nil), p.times...)
	sort.Slice(times, func(i, j int) bool {
		if times[i].Elapsed != times[j].Elapsed {
			return times[i].Elapsed > times[j].Elapsed
		}
		return times[i].Address < times[j].Address
	})
	if len(times) > 8 {
		times = times[:8]
	}
	var planning time.Duration
	if !p.plannedAt.IsZero() {
		planning = p.plannedAt.Sub(p.started)
	}
	return ApplyReport{Planned: p.planned, Done: p.done, Slowest: times, Errors: append([]string(nil), p.errs...), ErrorAddresses: append([]string(nil), p.errAddrs...), Elapsed: time.Since(p.started), Planning: planning}
}

// applyOnce runs terraform apply -json in tf's directory, logging every line
// to logPath and printing progress to out every tick. It stops at ctx's
// deadline.
func applyOnce(ctx context.Context, tf *tfcli.Runner, logf io.Writer, out io.Writer, tick time.Duration, parallelism int) (ApplyReport, error) {
	p := newApplyProgress(logf, out)
	pr, pw := io.Pipe()
	consumed := make(chan struct{})
	go func() { p.consume(pr); close(consumed) }()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.tick()
			}
		}
	}()
	err := tf.ApplyJSON(ctx, pw, tfexec.Parallelism(parallelism), tfexec.Refresh(true))
	tf.SetStdout(logf) // ApplyJSON left the pipe as the runner's stdout
	pw.Close()
	<-consumed
	close(done)
	return p.report(), err
}

// alreadyExists reports whether an apply failed only on resources that
// already exist: the Route 53 create race that a second apply converges.
func alreadyExists(rep ApplyReport, err error) bool {
	if err == nil {
		return false
	}
	if len(rep.Errors) == 0 {
		return strings.Contains(strings.ToLower(err.Error()), "already exists")
	}
	for _, e := range rep.Errors {
		if !strings.Contains(strings.ToLower(e), "already exist") {
			return false
		}
	}
	return true
}

// isDeadline reports whether err came from a context deadline.
func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// openLog opens path for appending.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
}
