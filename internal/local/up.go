package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"paydr/internal/local/certs"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/moto"
	"paydr/internal/local/netns"
	"paydr/internal/local/pg"
	"paydr/internal/stack"
)

// DatabaseName is the database holding the ledger in each PostgreSQL server.
const DatabaseName = "payments"

// Defaults of UpOptions.
const (
	DefaultSuffix           = "local"
	DefaultHealthInterval   = time.Second
	DefaultFailureThreshold = 3
	DefaultApplyTimeout     = 10 * time.Minute
	// DefaultParallelism is above Terraform's 10: at 10, the stack's
	// fourteen VPC endpoints (the provider waits about 5 s on each) held
	// every slot when the primary cluster could start, and the serial RDS
	// chain began 7.5 s after its KMS key was ready; at 25 it begins at
	// once. The operations mostly wait, so more of them cost little CPU.
	DefaultParallelism = 25
	// DefaultRPOBound is the bound on loss, the mission's RPO.
	DefaultRPOBound = 5 * time.Minute
)

// UpOptions configure Up.
type UpOptions struct {
	// StateDir is the state directory; default DefaultStateDir.
	StateDir string
	// Suffix is the stack's environment suffix; default "local".
	Suffix string
	// Exe is the paydr executable whose hidden subcommands host the
	// processors (paydr serve) and the router (paydr router); default the
	// running executable.
	Exe string
	// ExeEnv is added to the environment of every process started from Exe
	// (tests use it to make a test binary act as paydr).
	ExeEnv []string
	// ProcessorZip is a prebuilt processor Lambda zip; empty builds one with
	// the go command from ModuleDir.
	ProcessorZip string
	// ModuleDir is the paydr module source the processor zip is built from;
	// default the working directory.
	ModuleDir string
	// FaultProxy runs a fault proxy (paydr fault-proxy) in front of the
	// emulator, with no rules, and points the processors at it, so regional
	// outages can be staged through its control API. Without it a proxy
	// left by an earlier up is stopped.
	FaultProxy bool
	// RouterPort is the router's port on 127.0.0.1; 0 keeps the port of the
	// last up, else picks a free one.
	RouterPort int
	// HealthInterval and FailureThreshold are the router's health-check
	// settings (Route 53 request_interval and failure_threshold, shortened
	// for local speed). Defaults 1s and 3.
	HealthInterval   time.Duration
	FailureThreshold int
	// ApplyTimeout bounds terraform apply (each attempt); default 10 min.
	ApplyTimeout time.Duration
	// Parallelism is terraform apply's -parallelism; default
	// DefaultParallelism.
	Parallelism int
	// ProgressEvery is how often apply progress is printed; default 10s.
	ProgressEvery time.Duration
	// Netns says whether each region's database and processor run in a
	// network namespace of their own (package netns), which the partition
	// fault needs; default NetnsAuto.
	Netns NetnsMode
	// RPOBound is the bound on loss each region's RPO guard enforces on the
	// writer's commits (package rpoguard): once the oldest commit the
	// standby has not flushed is about this old, commits wait for the
	// standby. Default DefaultRPOBound; at least 1s. RPOZero makes it 0
	// instead: every commit waits for the standby (synchronous
	// replication). paydr up again applies a changed value.
	RPOBound time.Duration
	RPOZero  bool
	// NoIAM leaves IAM unenforced: every component calls the emulator with
	// its default test credentials, which it then accepts for anything.
	// By default, once the stack is applied, the emulator enforces IAM and
	// each processor runs on its region's processor role, DR commands and
	// drills on the DR role (see env.IAM).
	NoIAM bool
	// Identities makes the identities in the emulator when IAM is
	// enforced: identity.Maker (paydr/internal/local/identity), which only
	// paydr-aws links. Required unless NoIAM.
	Identities Identities
	// Out receives progress; nil discards it.
	Out io.Writer
}

func (o UpOptions) withDefaults() (UpOptions, error) {
	if o.StateDir == "" {
		o.StateDir = env.DefaultStateDir
	}
	abs, err := filepath.Abs(o.StateDir)
	if err != nil {
		return o, fmt.Errorf("up: state dir: %w", err)
	}
	o.StateDir = abs
	if o.Suffix == "" {
		o.Suffix = DefaultSuffix
	}
	if o.Exe == "" {
		if exe, err := os.Executable(); err == nil {
			o.Exe = exe
		}
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	if o.FailureThreshold == 0 {
		o.FailureThreshold = DefaultFailureThreshold
	}
	if o.ApplyTimeout == 0 {
		o.ApplyTimeout = DefaultApplyTimeout
	}
	if o.Parallelism == 0 {
		o.Parallelism = DefaultParallelism
	}
	if o.ProgressEvery == 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Netns, err = ParseNetnsMode(string(o.Netns)); err != nil {
		return o, err
	}
	switch {
	case o.RPOZero:
		o.RPOBound = 0
	case o.RPOBound == 0:
		o.RPOBound = DefaultRPOBound
	case o.RPOBound < time.Second:
		return o, fmt.Errorf("up: --rpo-bound %s is below 1s; choose 1s or more, or 0 for synchronous replication (RPO 0)", o.RPOBound)
	}
	if o.FailureThreshold < 1 || o.FailureThreshold > 10 {
		return o, fmt.Errorf("up: --failure-threshold %d is outside Route 53's 1..10; choose one in range", o.FailureThreshold)
	}
	if o.HealthInterval < 100*time.Millisecond {
		return o, fmt.Errorf("up: --health-interval %s is below 100ms; choose a longer interval", o.HealthInterval)
	}
	return o, nil
}

// StepTime is how long one step of Up took.
type StepTime struct {
	Name    string        `json:"name"`
	Elapsed time.Duration `json:"elapsed"`
	Detail  string        `json:"detail,omitempty"`
}

// UpReport is what Up did.
type UpReport struct {
	Manifest *env.Manifest
	Steps    []StepTime
	Apply    *ApplyReport // nil when apply was skipped
	Total    time.Duration
}

// upRun is one run of Up: its options, its progress, what it started, and
// what its steps hand on to the steps after them.
type upRun struct {
	o       UpOptions
	l       env.Layout
	started []func(context.Context) error // undo, in start order
	steps   []StepTime
	summary []string // "label elapsed" of each step done

	prev    *env.Manifest  // env.json of the last up; nil when none
	net     *netns.Fabric  // the regions' namespaces; nil without
	m       *env.Manifest  // the manifest this run fills and writes
	ports   map[string]int // ports the prerequisites check must find free
	moto    *moto.Server
	cfg     stack.Config // the local stack's configuration
	zip     string       // the processor's Lambda zip
	st      *stack.Stack // the synthesized stack
	applied *ApplyReport // nil when apply was skipped
	dbs     map[env.Slot]*pg.Server
	tls     certs.Files // the local CA and the databases' certificate
	warmed  chan error  // warmMoto's outcome; nil once joined, or when not warming
}

// upStep is one step of Up: an entry of its table (upRun.plan).
type upStep struct {
	// label names the step in the closing summary: "moto 1.2s".
	label string
	// name is what the user sees: "[3/11] start moto (AWS API emulator) ...".
	name string
	// run does the step and returns its detail, shown after "ok".
	run func(ctx context.Context) (string, error)
	// then, when set, runs after the step's ok line: what the step adds
	// beyond its detail (notes, the manifest's entries).
	then func(ctx context.Context) error
	// skip leaves the step out of this run, and out of its count.
	skip bool
}

// plan is the table of Up's steps, in order.
func (u *upRun) plan() []upStep {
	steps := []upStep{
		{label: "prereqs", name: "check prerequisites", run: u.checkPrerequisites},
		// The databases against their recorded roles, before anything
		// starts: minutes of apply must not end in a refusal, and nothing
		// may start a fenced writer.
		{label: "roles", name: "check the databases against the roles in env.json", run: u.checkRoles},
		{label: "network", name: "place each region in its network namespace", run: u.setupNetwork},
		{label: "tls", name: "make the local CA and the databases' TLS certificate", run: u.makeTLS},
		{label: "moto", name: "start moto (AWS API emulator)", run: u.startMoto},
		{label: "fault-proxy", name: "start the fault proxy in front of moto", run: u.startProxy, skip: !u.o.FaultProxy},
		{label: "zip", name: "build the processor Lambda zip", run: u.buildZip},
		{label: "synth", name: "synthesize the stack (local target)", run: u.synthesize, then: u.recordStack},
		{label: "apply", name: "terraform init + apply (both regions, on moto)", run: u.applyStack},
		{label: "iam", name: "enforce IAM on moto (each component on its role's credentials)", run: u.enforceIAM, skip: u.o.NoIAM},
		{label: "postgres", name: "start PostgreSQL writer and streaming standby", run: u.startPostgres, then: u.recordDatabases},
		{label: "provision", name: "provision the ledger: migrations and the processors' database role", run: u.provisionLedger},
		{label: "processors", name: "start the processor in each region", run: u.startProcessors, then: u.retireFaultProxy},
		{label: "rpo", name: "start the RPO guard of each region", run: u.startRPOGuards},
		{label: "router", name: "start the failover router", run: u.startRouter},
		{label: "routed", name: "wait until the router sends traffic to a healthy primary", run: u.waitRouted},
		{label: "manifest", name: "write env.json", run: u.writeManifest},
	}
	return slices.DeleteFunc(steps, func(s upStep) bool { return s.skip })
}

// step runs s as step n of of, printing its start, its duration and its
// detail, then runs s.then.
func (u *upRun) step(ctx context.Context, n, of int, s upStep) error {
	fmt.Fprintf(u.o.Out, "[%d/%d] %s ...\n", n, of, s.name)
	start := time.Now()
	detail, err := s.run(ctx)
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(u.o.Out, "      FAILED after %s\n", round(d))
		return err
	}
	u.steps = append(u.steps, StepTime{Name: s.name, Elapsed: d, Detail: detail})
	u.summary = append(u.summary, fmt.Sprintf("%s %s", s.label, round(d)))
	if detail != "" {
		fmt.Fprintf(u.o.Out, "      ok %s: %s\n", round(d), detail)
	} else {
		fmt.Fprintf(u.o.Out, "      ok %s\n", round(d))
	}
	if s.then != nil {
		return s.then(ctx)
	}
	return nil
}

// Up brings the local environment up in o.StateDir, adopting whatever of it
// already runs, and returns what runs where. On failure, or when ctx is
// cancelled (Ctrl-C), it stops what this call started.
//
// Each database restarts in the role env.json records (DR operations move
// the writer). Before it starts anything, Up checks the data directories
// against those roles and refuses, saying why and what to do, when they
// cannot take them: a fenced or superseded writer is never started
// writable, and a standby that cannot stream from the writer is not
// started.
//
// Apply is skipped when the stack (cdk.tf.json and the processor zip) is
// unchanged since the last successful apply and the emulator process that
// holds those resources is still the one running; when the emulator was
// restarted its state is gone, so the stale Terraform state is discarded
// and everything is applied afresh. A changed stack is applied afresh on a
// reset emulator too, never updated in place (see apply).
//
// With o.FaultProxy, a fault proxy runs in front of the emulator and the
// processors reach AWS through it (Manifest.AWSEndpoint); Terraform still
// applies straight to the emulator. The endpoint is written into
// cdk.tf.json, so routing the apply through the proxy would make turning
// the flag on or off (or a new proxy port) reset the emulator and apply
// afresh, minutes for nothing; and a rule left in force on an adopted proxy
// would hold the apply until its timeout.
//
// The steps are the entries of upRun.plan, run in order.
func Up(ctx context.Context, opts UpOptions) (rep *UpReport, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if !o.NoIAM && o.Identities == nil {
		return nil, errors.New("up: enforcing IAM on the emulator needs UpOptions.Identities (identity.Maker, linked by paydr-aws), or NoIAM (--no-iam)")
	}
	o.Out = &syncWriter{w: o.Out}
	u := &upRun{o: o, l: env.Layout{Root: o.StateDir}}
	begin := time.Now()
	defer func() {
		if err == nil {
			return
		}
		u.undo(ctx)
		_ = u.joinWarm() // after undo: a stopped emulator ends it at once
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()
	fmt.Fprintf(o.Out, "paydr up: state directory %s\n", o.StateDir)
	if err := u.prepare(); err != nil {
		return nil, err
	}
	steps := u.plan()
	for i, s := range steps {
		if err := u.step(ctx, i+1, len(steps), s); err != nil {
			return nil, err
		}
	}
	rep = &UpReport{Manifest: u.m, Steps: u.steps, Apply: u.applied, Total: time.Since(begin)}
	u.printSummary(rep)
	return rep, nil
}

// prepare reads the last up's manifest, makes the state directory's
// layout, and starts this run's manifest.
func (u *upRun) prepare() error {
	o := u.o
	u.prev, _ = env.Load(o.StateDir)
	for _, d := range []string{o.StateDir, u.l.LogDir(), u.l.RunDir(), u.l.PGDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	}
	u.m = &env.Manifest{Version: env.Version, StateDir: o.StateDir, Suffix: o.Suffix, Regions: map[env.Slot]*env.Region{}, Gaps: stack.LocalGaps()}
	if u.prev != nil {
		u.m.CreatedAt = u.prev.CreatedAt
	}
	u.ports = map[string]int{}
	if p := o.RouterPort; p != 0 && !(u.prev != nil && u.prev.Router.Port == p && daemon.Alive(u.prev.Router.PID, "router")) {
		u.ports["router"] = p
	}
	return nil
}

// undo stops what this run started, newest first.
func (u *upRun) undo(ctx context.Context) {
	if len(u.started) == 0 {
		return
	}
	fmt.Fprintf(u.o.Out, "stopping what this run started ...\n")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	for i := len(u.started) - 1; i >= 0; i-- {
		if cerr := u.started[i](cctx); cerr != nil {
			fmt.Fprintf(u.o.Out, "  cleanup: %v\n", cerr)
		}
	}
}

// writeManifest is the last step: env.json.
func (u *upRun) writeManifest(context.Context) (string, error) {
	if err := u.m.Save(); err != nil {
		return "", err
	}
	return u.m.StateDir + "/" + env.File, nil
}

// printSummary prints the local gaps, what runs where, and the time of
// each step.
func (u *upRun) printSummary(rep *UpReport) {
	w, m := u.o.Out, rep.Manifest
	fmt.Fprintf(w, "\nlocal gaps (moto 5.2), each handled explicitly by the local target:\n")
	for _, g := range m.Gaps {
		fmt.Fprintf(w, "  gap: %s\n", g)
	}
	fmt.Fprintln(w)
	PrintManifest(w, m)
	if m.FaultProxy != nil {
		printFaultProxyHint(w, m.FaultProxy)
	}
	fmt.Fprintf(w, "\nup in %s (%s)\n", round(rep.Total), strings.Join(u.summary, ", "))
}

// syncWriter serializes writes from the steps and their watchers.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}
