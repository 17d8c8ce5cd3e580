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
