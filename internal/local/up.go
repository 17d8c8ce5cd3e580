package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"paydr/internal/bundle"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/moto"
	"paydr/internal/local/pg"
	"paydr/internal/local/router"
	"paydr/internal/stack"
	"paydr/internal/tfcli"
)

// DatabaseName is the database holding the ledger in each PostgreSQL server.
const DatabaseName = "payments"

// Defaults of UpOptions.
const (
	DefaultSuffix           = "local"
	DefaultHealthInterval   = time.Second
	DefaultFailureThreshold = 3
	DefaultApplyTimeout     = 10 * time.Minute
	DefaultParallelism      = 10
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
	// Parallelism is terraform apply's -parallelism; default 10.
	Parallelism int
	// ProgressEvery is how often apply progress is printed; default 10s.
	ProgressEvery time.Duration
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

// upRun is one run of Up: its options, progress and what it started.
type upRun struct {
	o       UpOptions
	l       env.Layout
	started []func(context.Context) error // undo, in start order
	steps   []StepTime
	n, of   int
}

// step runs fn as numbered step name, printing its start, its duration and
// its detail.
func (u *upRun) step(name string, fn func() (string, error)) error {
	u.n++
	fmt.Fprintf(u.o.Out, "[%d/%d] %s ...\n", u.n, u.of, name)
	start := time.Now()
	detail, err := fn()
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(u.o.Out, "      FAILED after %s\n", round(d))
		return err
	}
	u.steps = append(u.steps, StepTime{Name: name, Elapsed: d, Detail: detail})
	if detail != "" {
		fmt.Fprintf(u.o.Out, "      ok %s: %s\n", round(d), detail)
	} else {
		fmt.Fprintf(u.o.Out, "      ok %s\n", round(d))
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
func Up(ctx context.Context, opts UpOptions) (rep *UpReport, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	o.Out = &syncWriter{w: o.Out}
	u := &upRun{o: o, l: env.Layout{Root: o.StateDir}, of: 11}
	if o.FaultProxy {
		u.of++
	}
	begin := time.Now()
	defer func() {
		if err == nil {
			return
		}
		if len(u.started) > 0 {
			fmt.Fprintf(o.Out, "stopping what this run started ...\n")
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
			defer cancel()
			for i := len(u.started) - 1; i >= 0; i-- {
				if cerr := u.started[i](cctx); cerr != nil {
					fmt.Fprintf(o.Out, "  cleanup: %v\n", cerr)
				}
			}
		}
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
	}()
	fmt.Fprintf(o.Out, "paydr up: state directory %s\n", o.StateDir)
	prev, _ := env.Load(o.StateDir)
	for _, d := range []string{o.StateDir, u.l.LogDir(), u.l.RunDir(), u.l.PGDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
	}
	m := &env.Manifest{Version: env.Version, StateDir: o.StateDir, Suffix: o.Suffix, Regions: map[env.Slot]*env.Region{}, Gaps: stack.LocalGaps()}
	if prev != nil {
		m.CreatedAt = prev.CreatedAt
	}

	// 1. Prerequisites.
	routerPort := o.RouterPort
	ports := map[string]int{}
	if routerPort != 0 && !(prev != nil && prev.Router.Port == routerPort && daemon.Alive(prev.Router.PID, "router")) {
		ports["router"] = routerPort
	}
	if err := u.step("check prerequisites", func() (string, error) {
		p, err := CheckPrerequisites(o.Exe, o.ProcessorZip == "", ports)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("terraform %s, provider mirror %s, moto_server %s, PostgreSQL %s", p.Terraform, p.Mirror, p.MotoBin, p.PGBinDir), nil
	}); err != nil {
		return nil, err
	}

	// 2. Databases against their recorded roles, before anything starts:
	// minutes of apply must not end in a refusal, and nothing may start a
	// fenced writer.
	if err := u.step("check the databases against the roles in env.json", func() (string, error) {
		if err := checkNoUnfinishedDR(o.StateDir); err != nil {
			return "", err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		return checkDatabases(cctx, u.l, rolesOf(o.StateDir, prev))
	}); err != nil {
		return nil, err
	}

	// 3. Moto.
	var ms *moto.Server
	if err := u.step("start moto (AWS API emulator)", func() (string, error) {
		wasRunning := false
		port := 0
		if old, err := moto.Open(u.l.MotoDir()); err == nil {
			wasRunning = old.Running()
			if daemon.PortFree(old.Port()) {
				port = old.Port() // keep the endpoint, so the stack is unchanged
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		s, err := moto.Start(cctx, moto.Options{StateDir: u.l.MotoDir(), Port: port})
		if err != nil {
			return "", fmt.Errorf("up: start moto: %w", err)
		}
		ms = s
		if wasRunning {
			return fmt.Sprintf("already running at %s (pid %d)", s.Endpoint(), s.PID()), nil
		}
		u.started = append(u.started, func(ctx context.Context) error {
			err := s.Stop(ctx)
			_ = os.Remove(filepath.Join(u.l.MotoDir(), "moto.json"))
			return err
		})
		return fmt.Sprintf("%s (pid %d), log %s", s.Endpoint(), s.PID(), s.LogPath()), nil
	}); err != nil {
		return nil, err
	}
	m.Moto = env.Moto{Endpoint: ms.Endpoint(), Port: ms.Port(), PID: ms.PID(), LogPath: ms.LogPath(), StateDir: u.l.MotoDir()}

	// 3b. The fault proxy in front of moto, with --fault-proxy.
	if o.FaultProxy {
		if err := u.step("start the fault proxy in front of moto", func() (string, error) {
			return u.startFaultProxy(ctx, m, prev)
		}); err != nil {
			return nil, err
		}
	}

	// 4. Stack config and processor zip.
	cfg := stack.Defaults()
	cfg.EnvironmentSuffix = o.Suffix
	cfg.Target = stack.TargetLocal
	cfg.Endpoint = ms.Endpoint()
	cfg.LocalStatePath = "terraform.tfstate"
	cfg.HealthCheckInterval = 10
	cfg.HealthCheckFailureThreshold = o.FailureThreshold
	stackDir := u.l.StackDir(cfg.StackName())
	if err := u.step("build the processor Lambda zip", func() (string, error) {
		if err := os.MkdirAll(stackDir, 0o755); err != nil {
			return "", fmt.Errorf("up: %w", err)
		}
		dst := filepath.Join(stackDir, cfg.ProcessorZip)
		if o.ProcessorZip != "" {
			b, err := os.ReadFile(o.ProcessorZip)
			if err != nil {
				return "", fmt.Errorf("up: --processor-zip: %w", err)
			}
			if err := writeIfChanged(dst, b); err != nil {
				return "", fmt.Errorf("up: %w", err)
			}
			return "copied " + o.ProcessorZip, nil
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		art, err := bundle.Build(cctx, bundle.Options{OutDir: stackDir, ZipName: cfg.ProcessorZip, ModuleDir: o.ModuleDir})
		if err != nil {
			return "", fmt.Errorf("up: build processor zip: %w; run paydr up from the paydr module (or pass --processor-zip)", err)
		}
		return fmt.Sprintf("%s (%d KiB)", art.ZipPath, art.Size/1024), nil
	}); err != nil {
		return nil, err
	}

	// 5. Synthesize.
	var st *stack.Stack
	if err := u.step("synthesize the stack (local target)", func() (string, error) {
		var err error
		st, err = stack.Build(cfg)
		if err != nil {
			return "", fmt.Errorf("up: synthesize: %w", err)
		}
		js, err := st.Synth()
		if err != nil {
			return "", fmt.Errorf("up: synthesize: %w", err)
		}
		file := filepath.Join(stackDir, "cdk.tf.json")
		if err := writeIfChanged(file, js); err != nil {
			return "", fmt.Errorf("up: synthesize: %w", err)
		}
		return fmt.Sprintf("%d resources -> %s", st.Resources(), file), nil
	}); err != nil {
		return nil, err
	}
	for _, n := range st.Notes {
		fmt.Fprintf(o.Out, "      note: %s\n", n)
	}
	hash, err := stackHash(stackDir, cfg.ProcessorZip)
	if err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	m.Stack = env.Stack{Name: cfg.StackName(), Dir: stackDir, File: filepath.Join(stackDir, "cdk.tf.json"),
		StatePath: filepath.Join(stackDir, cfg.LocalStatePath), LogPath: u.l.TerraformLog(), Hash: hash}

	// 6. Terraform apply.
	var applyRep *ApplyReport
	if err := u.step("terraform init + apply (both regions, on moto)", func() (string, error) {
		r, detail, err := u.apply(ctx, m, ms)
		applyRep = r
		return detail, err
	}); err != nil {
		return nil, err
	}

	// 7. PostgreSQL primary and standby.
	var dbs map[env.Slot]*pg.Server
	if err := u.step("start PostgreSQL writer and streaming standby", func() (string, error) {
		var err error
		dbs, err = u.startDatabases(ctx, prev)
		if err != nil {
			return "", err
		}
		r := rolesOf(o.StateDir, prev)
		return fmt.Sprintf("writer %s 127.0.0.1:%d, standby %s 127.0.0.1:%d", r.label(r.writer), dbs[r.writer].Port(), r.label(r.standby), dbs[r.standby].Port()), nil
	}); err != nil {
		return nil, err
	}
	for _, s := range env.Slots {
		db := dbs[s]
		role := env.RoleStandby
		if in, err := db.InRecovery(ctx); err != nil {
			return nil, fmt.Errorf("up: database %s: %w", s, err)
		} else if !in {
			role = env.RoleWriter
		}
		name := cfg.PrimaryRegion
		if s == env.SlotSecondary {
			name = cfg.SecondaryRegion
		}
		m.Regions[s] = &env.Region{Slot: s, Name: name, Database: env.Database{
			Name: db.Name(), DataDir: db.DataDir(), Port: db.Port(), DSN: db.DSN(DatabaseName), Database: DatabaseName,
			PID: db.PID(), LogPath: db.LogPath(), Role: role,
		}}
	}

	// 8. Processors.
	if err := u.step("start the processor in each region", func() (string, error) {
		var parts []string
		for _, s := range env.Slots {
			d, err := u.startProcessor(ctx, m, s, prev)
			if err != nil {
				return "", err
			}
			parts = append(parts, d)
		}
		return strings.Join(parts, "; "), nil
	}); err != nil {
		return nil, err
	}
	if !o.FaultProxy {
		// The processors no longer use a proxy an earlier up started.
		if d, err := u.stopFaultProxy(ctx); err != nil {
			return nil, err
		} else if d != "" {
			fmt.Fprintf(o.Out, "      %s\n", d)
		}
	}

	// 9. Router.
	if err := u.step("start the failover router", func() (string, error) {
		return u.startRouter(ctx, m, prev, routerPort)
	}); err != nil {
		return nil, err
	}

	// 10. Wait for traffic to reach a healthy writer.
	if err := u.step("wait until the router sends traffic to a healthy primary", func() (string, error) {
		return waitRouted(ctx, m, 90*time.Second)
	}); err != nil {
		return nil, err
	}

	// 11. Manifest.
	if err := u.step("write env.json", func() (string, error) {
		if err := m.Save(); err != nil {
			return "", err
		}
		return m.StateDir + "/" + env.File, nil
	}); err != nil {
		return nil, err
	}
	rep = &UpReport{Manifest: m, Steps: u.steps, Apply: applyRep, Total: time.Since(begin)}
	fmt.Fprintf(o.Out, "\nlocal gaps (moto 5.2), each handled explicitly by the local target:\n")
	for _, g := range m.Gaps {
		fmt.Fprintf(o.Out, "  gap: %s\n", g)
	}
	fmt.Fprintln(o.Out)
	PrintManifest(o.Out, m)
	if m.FaultProxy != nil {
		printFaultProxyHint(o.Out, m.FaultProxy)
	}
	fmt.Fprintf(o.Out, "\nup in %s (", round(rep.Total))
	for i, s := range rep.Steps {
		if i > 0 {
			fmt.Fprint(o.Out, ", ")
		}
		fmt.Fprintf(o.Out, "%s %s", shortStep(s.Name), round(s.Elapsed))
	}
	fmt.Fprintf(o.Out, ")\n")
	return rep, nil
}

// appliedRecord is paydr-applied.json: the stack hash last applied and the
// emulator process that holds its resources.
type appliedRecord struct {
	Hash      string          `json:"hash"`
	MotoPID   int             `json:"moto_pid"`
	Resources int             `json:"resources"`
	Outputs   json.RawMessage `json:"outputs"`
}

// apply runs terraform init and apply unless the applied record shows the
// same stack on the same emulator process.
func (u *upRun) apply(ctx context.Context, m *env.Manifest, ms *moto.Server) (*ApplyReport, string, error) {
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
	fmt.Fprintf(logf, "--- %s paydr up: terraform init + apply in %s\n", time.Now().UTC().Format(time.RFC3339), dir)
	tf, err := tfcli.New(dir, tfcli.Options{Stdout: logf, Stderr: logf})
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
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	state, err := tf.Show(sctx)
	cancel()
	if err == nil && state.Values != nil && state.Values.RootModule != nil {
		m.Stack.Resources = countManaged(state.Values.RootModule.Resources)
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

// exeEnv returns the environment of a process started from the paydr
// executable: a child of the emulator's (daemon.Environ) with set, then
// o.ExeEnv.
func (u *upRun) exeEnv(set map[string]string) []string {
	return append(daemon.Environ(set), u.o.ExeEnv...)
}

// startProcessor starts (or adopts) the processor of slot s, pointed at the
// slot's database and the emulator (through the fault proxy when one runs),
// and waits until it answers /health.
func (u *upRun) startProcessor(ctx context.Context, m *env.Manifest, s env.Slot, prev *env.Manifest) (string, error) {
	r := m.Regions[s]
	outPrefix := string(s) + "_"
	table := m.OutputString("sessions_table_name")
	bus := m.OutputString(outPrefix + "event_bus_name")
	if table == "" || bus == "" {
		return "", fmt.Errorf("up: start processor %s: terraform outputs sessions_table_name and %sevent_bus_name are missing; run paydr down and paydr up to apply afresh", s, outPrefix)
	}
	port := 0
	if prev != nil && prev.Regions[s] != nil {
		port = prev.Regions[s].Processor.Port
	}
	pidFile := u.l.ProcessorPID(s)
	vars := map[string]string{
		"PAYDR_REGION":         r.Name,
		"PAYDR_SESSIONS_TABLE": table,
		"PAYDR_EVENT_BUS":      bus,
		"PAYDR_DB_DSN":         r.Database.DSN,
		"PAYDR_AWS_ENDPOINT":   m.AWSEndpoint(),
	}
	// Adopt a running processor whose settings are unchanged.
	if pid := daemon.ReadPIDFile(pidFile); daemon.Alive(pid, "serve") && prev != nil && prev.Regions[s] != nil && port != 0 {
		old := prev.Regions[s].Processor
		same := true
		for k, v := range vars {
			if old.Env[k] != v {
				same = false
			}
		}
		if same && daemon.Listening(port) {
			r.Processor = old
			r.Processor.PID = pid
			return fmt.Sprintf("%s %s already running (pid %d)", s, old.URL, pid), nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = daemon.Stop(cctx, pid, "serve", 5*time.Second)
		cancel()
	}
	if port == 0 || !daemon.PortFree(port) {
		var err error
		if port, err = daemon.FreePort(); err != nil {
			return "", fmt.Errorf("up: start processor %s: %w", s, err)
		}
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	vars["PAYDR_LISTEN"] = addr
	argv := []string{u.o.Exe, "serve", "--listen", addr}
	child, err := daemon.Start(daemon.Spec{Name: "processor " + string(s), Argv: argv, Env: u.exeEnv(vars), LogPath: u.l.ProcessorLog(s), PIDFile: pidFile})
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	pid, exited := child.PID, child.Done()
	u.started = append(u.started, func(ctx context.Context) error {
		err := daemon.Stop(ctx, pid, "", 5*time.Second)
		_ = os.Remove(pidFile)
		return err
	})
	r.Processor = env.Processor{URL: "http://" + addr, Port: port, PID: pid, PIDFile: pidFile, LogPath: u.l.ProcessorLog(s), Command: argv, Env: vars}
	// The writer's processor must be healthy; a standby's answers 503.
	wantHealthy := r.Database.Role == env.RoleWriter
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body, err := httpStatus(ctx, r.Processor.URL+"/health")
		if err == nil && (code == 200 || !wantHealthy) {
			return fmt.Sprintf("%s %s (pid %d, /health %d)", s, r.Processor.URL, pid, code), nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("up: processor %s exited at start; log %s ends:\n%s", s, r.Processor.LogPath, logTail(r.Processor.LogPath, 15))
		case <-ctx.Done():
			return "", fmt.Errorf("up: wait for processor %s: %w", s, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			last := fmt.Sprint(err)
			if err == nil {
				last = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
			}
			return "", fmt.Errorf("up: processor %s at %s not healthy after 60s (last /health: %s); see %s", s, r.Processor.URL, last, r.Processor.LogPath)
		}
	}
}

// startRouter starts (or adopts) the failover router in front of the two
// processors.
func (u *upRun) startRouter(ctx context.Context, m *env.Manifest, prev *env.Manifest, port int) (string, error) {
	p, s := m.Regions[env.SlotPrimary], m.Regions[env.SlotSecondary]
	if port == 0 && prev != nil {
		port = prev.Router.Port
	}
	pidFile := u.l.RouterPID()
	args := func(addr string) []string {
		return []string{u.o.Exe, "router",
			"--listen", addr,
			"--primary", p.Processor.URL, "--primary-name", p.Name,
			"--secondary", s.Processor.URL, "--secondary-name", s.Name,
			"--interval", u.o.HealthInterval.String(),
			"--failure-threshold", strconv.Itoa(u.o.FailureThreshold),
		}
	}
	if pid := daemon.ReadPIDFile(pidFile); daemon.Alive(pid, "router") && prev != nil && port != 0 {
		want := args("127.0.0.1:" + strconv.Itoa(port))
		if strings.Join(prev.Router.Command, " ") == strings.Join(want, " ") && daemon.Listening(port) {
			m.Router = prev.Router
			m.Router.PID = pid
			return fmt.Sprintf("%s already running (pid %d)", prev.Router.URL, pid), nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = daemon.Stop(cctx, pid, "router", 5*time.Second)
		cancel()
	}
	if port == 0 || !daemon.PortFree(port) {
		if u.o.RouterPort != 0 {
			return "", fmt.Errorf("up: router: 127.0.0.1:%d is in use; stop what listens there or choose another --router-port", port)
		}
		var err error
		if port, err = daemon.FreePort(); err != nil {
			return "", fmt.Errorf("up: start router: %w", err)
		}
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	argv := args(addr)
	child, err := daemon.Start(daemon.Spec{Name: "router", Argv: argv, Env: u.exeEnv(nil), LogPath: u.l.RouterLog(), PIDFile: pidFile})
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	pid, exited := child.PID, child.Done()
	u.started = append(u.started, func(ctx context.Context) error {
		err := daemon.Stop(ctx, pid, "", 5*time.Second)
		_ = os.Remove(pidFile)
		return err
	})
	m.Router = env.Router{URL: "http://" + addr, Port: port, PID: pid, PIDFile: pidFile, LogPath: u.l.RouterLog(), Command: argv,
		HealthInterval: env.Duration(u.o.HealthInterval), FailureThreshold: u.o.FailureThreshold, Primary: env.SlotPrimary, Secondary: env.SlotSecondary}
	deadline := time.Now().Add(30 * time.Second)
	for !daemon.Listening(port) {
		select {
		case <-exited:
			return "", fmt.Errorf("up: router exited at start; log %s ends:\n%s", u.l.RouterLog(), logTail(u.l.RouterLog(), 15))
		case <-ctx.Done():
			return "", fmt.Errorf("up: wait for router: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("up: router not listening on %s after 30s; see %s", addr, u.l.RouterLog())
		}
	}
	return fmt.Sprintf("%s (pid %d), checks every %s, unhealthy after %d failures", m.Router.URL, pid, u.o.HealthInterval, u.o.FailureThreshold), nil
}

// waitRouted waits until the router has checked the writer's processor,
// found it healthy, and sends traffic to it.
func waitRouted(ctx context.Context, m *env.Manifest, timeout time.Duration) (string, error) {
	w, ok := m.Writer()
	if !ok {
		return "", errors.New("up: wait for routing: no single writer recorded")
	}
	want := router.Primary
	if w != m.Router.Primary {
		want = router.Secondary
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := routerClient(m.Router.URL).Status(ctx)
		if err == nil {
			last = fmt.Sprintf("active %s (%s)", st.Active, st.ActiveTarget)
			for _, t := range st.Targets {
				last += fmt.Sprintf("; %s healthy=%v checks=%d last=%q", t.Position, t.Healthy, t.Checks, t.LastResult)
				if t.Position == want && st.Active == want && t.Healthy && t.Checks > 0 && t.ConsecutiveFailures == 0 && !st.AllUnhealthy {
					return fmt.Sprintf("traffic -> %s %s (%s), after %d check(s)", want, t.Name, t.URL, t.Checks), nil
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("up: router %s does not route to a healthy %s after %s (%s); see %s and the processor logs", m.Router.URL, want, timeout, last, m.Router.LogPath)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("up: wait for routing: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
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

// stackHash is the SHA-256 of cdk.tf.json and the processor zip.
func stackHash(dir, zip string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"cdk.tf.json", zip} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("hash stack: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeIfChanged writes b to path unless it already holds exactly b, so an
// unchanged synthesis leaves file times alone.
func writeIfChanged(path string, b []byte) error {
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	return os.WriteFile(path, b, 0o644)
}

func round(d time.Duration) time.Duration {
	if d > 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Millisecond)
}

// shortStep abbreviates a step name for the summary line.
func shortStep(name string) string {
	switch {
	case strings.HasPrefix(name, "check the databases"):
		return "roles"
	case strings.HasPrefix(name, "check"):
		return "prereqs"
	case strings.HasPrefix(name, "start moto"):
		return "moto"
	case strings.HasPrefix(name, "start the fault proxy"):
		return "fault-proxy"
	case strings.HasPrefix(name, "build"):
		return "zip"
	case strings.HasPrefix(name, "synth"):
		return "synth"
	case strings.HasPrefix(name, "terraform"):
		return "apply"
	case strings.HasPrefix(name, "start PostgreSQL"):
		return "postgres"
	case strings.HasPrefix(name, "start the processor"):
		return "processors"
	case strings.HasPrefix(name, "start the failover"):
		return "router"
	case strings.HasPrefix(name, "wait"):
		return "routed"
	case strings.HasPrefix(name, "write"):
		return "manifest"
	}
	return name
}
