package local

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/ledger"
	"paydr/internal/local/certs"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/moto"
	"paydr/internal/local/pg"
	"paydr/internal/processor/environ"
)

// The steps of Up that start, or adopt, the long-lived pieces: moto, the
// databases, the processors and the router. (The fault proxy's step is in
// faultproxy.go.) What a step starts it records in upRun.started, so a
// failed up stops it; what it adopts it leaves running.

// startMoto starts the emulator, or adopts the one running, keeping its
// port when it can so that the stack is unchanged.
func (u *upRun) startMoto(ctx context.Context) (string, error) {
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
	s, err := moto.Start(cctx, moto.Options{StateDir: u.l.MotoDir(), Port: port, Host: u.hostAddr()})
	if err != nil {
		return "", fmt.Errorf("up: start moto: %w", err)
	}
	if s.Host() != u.hostAddr() {
		return "", fmt.Errorf("up: start moto: the emulator running (pid %d) listens on %s, this environment's services belong on %s; run paydr down first", s.PID(), s.Host(), u.hostAddr())
	}
	u.moto = s
	u.m.Moto = env.Moto{Endpoint: s.Endpoint(), Port: s.Port(), PID: s.PID(), LogPath: s.LogPath(), StateDir: u.l.MotoDir()}
	// Terraform applies with the default test credentials: an emulator an
	// earlier up left enforcing IAM must take them until the iam step.
	if err := u.relaxIAM(ctx); err != nil {
		return "", err
	}
	if wasRunning {
		return fmt.Sprintf("already running at %s (pid %d)", s.Endpoint(), s.PID()), nil
	}
	u.started = append(u.started, func(ctx context.Context) error {
		err := s.Stop(ctx)
		_ = os.Remove(filepath.Join(u.l.MotoDir(), "moto.json"))
		return err
	})
	u.warmMoto(ctx, s)
	hook := "EventBridge delivery sped up (jsonpath_ng's parse memoized); warming its services in the background"
	if !s.JSONPathMemoized() {
		hook = "note: the start-up hook did not load (see the log): each EventBridge delivery costs moto ~285 ms of CPU, which slows drills"
	}
	return fmt.Sprintf("%s (pid %d), log %s; %s", s.Endpoint(), s.PID(), s.LogPath(), hook), nil
}

// warmMoto has a just-started emulator build the backends of the
// services the stack uses (moto.Server.Warm) while terraform init and the
// providers start, instead of during the plan, where EC2's first request
// alone held every other for about 2 s. joinWarm collects the outcome.
func (u *upRun) warmMoto(ctx context.Context, s *moto.Server) {
	cfg := u.o.localConfig(s.Endpoint())
	done := make(chan error, 1)
	u.warmed = done
	go func() {
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		done <- s.Warm(wctx, cfg.PrimaryRegion, cfg.SecondaryRegion)
	}()
}

// joinWarm waits for warmMoto's requests, if any are out, and returns
// their error. Warming only saves time: a failure is reported, not fatal.
func (u *upRun) joinWarm() error {
	if u.warmed == nil {
		return nil
	}
	err := <-u.warmed
	u.warmed = nil
	return err
}

// makeTLS makes the local CA (once per state directory) and a server
// certificate for every address the databases are reached at: 127.0.0.1
// and, with network namespaces, each region's address. Both servers serve
// the same certificate, so a failover moves no file. The processors verify
// it with the CA (sslmode=verify-full), as the deployed ones verify Aurora
// with the RDS CA bundle.
func (u *upRun) makeTLS(context.Context) (string, error) {
	hosts := []string{"127.0.0.1"}
	for _, s := range env.Slots {
		if _, h := u.place(s); h != "127.0.0.1" {
			hosts = append(hosts, h)
		}
	}
	f, issued, err := certs.Ensure(u.l.TLSDir(), "paydr local CA ("+u.o.StateDir+")", hosts)
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	u.tls = f
	what := "kept"
	if issued {
		what = "issued"
	}
	return fmt.Sprintf("CA %s; server certificate for %s %s (a database already running serves its certificate until it restarts)", f.CAFile(), strings.Join(hosts, ", "), what), nil
}

// dbTLS is the certificate the databases serve: nil (keep what each data
// directory's configuration says) when the tls step has not run.
func (u *upRun) dbTLS() *pg.TLS {
	if u.tls.Dir == "" {
		return nil
	}
	return &pg.TLS{CertFile: u.tls.CertFile(), KeyFile: u.tls.KeyFile()}
}

// startPostgres starts the writer and the streaming standby in the roles
// env.json records (startDatabases).
func (u *upRun) startPostgres(ctx context.Context) (string, error) {
	dbs, err := u.startDatabases(ctx, u.prev)
	if err != nil {
		return "", err
	}
	u.dbs = dbs
	r := rolesOf(u.o.StateDir, u.prev)
	return fmt.Sprintf("writer %s %s:%d, standby %s %s:%d", r.label(r.writer), dbs[r.writer].Host(), dbs[r.writer].Port(), r.label(r.standby), dbs[r.standby].Host(), dbs[r.standby].Port()), nil
}

// provisionLedger does, as the writer's superuser, what the stack's
// provisioning function does in AWS (ledger.Provision): it applies the
// ledger's migrations and creates or updates the role the processors
// connect as, with the password kept in the state directory
// (Layout.DBAppPasswordFile, 0600; made at the first up, never printed).
// The standby gets both by replication.
func (u *upRun) provisionLedger(ctx context.Context) (string, error) {
	password, made, err := appPassword(u.l.DBAppPasswordFile())
	if err != nil {
		return "", fmt.Errorf("up: provision: %w", err)
	}
	w := u.dbs[rolesOf(u.o.StateDir, u.prev).writer]
	l, err := ledger.Open(ledger.Options{DSN: w.DSN(DatabaseName), MaxConns: 1})
	if err != nil {
		return "", fmt.Errorf("up: provision: %w", err)
	}
	defer l.Close()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	applied, err := l.Provision(cctx, ledger.AppUser, password)
	if err != nil {
		return "", fmt.Errorf("up: provision %s: %w; see %s", w.Name(), err, w.LogPath())
	}
	pw := "password kept in " + u.l.DBAppPasswordFile()
	if made {
		pw = "password made, in " + u.l.DBAppPasswordFile()
	}
	return fmt.Sprintf("migrations applied %v; role %s (TLS and password only; %s)", applied, ledger.AppUser, pw), nil
}

// appPassword returns the application role's password kept in path, making
// one (52 random characters, the file 0600 in a 0700 directory) when there
// is none.
func appPassword(path string) (password string, made bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		if p := strings.TrimSpace(string(b)); len(p) >= ledger.MinPasswordLength {
			return p, false, nil
		}
		return "", false, fmt.Errorf("%s holds no usable password (want at least %d characters); remove it and run paydr up again", path, ledger.MinPasswordLength)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	p := rand.Text() + rand.Text() // 52 base32 characters, 256 bits
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	if err := os.WriteFile(path, []byte(p+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return p, true, nil
}

// recordDatabases enters each slot's region and database in the manifest,
// with the role the running server actually has.
func (u *upRun) recordDatabases(ctx context.Context) error {
	for _, s := range env.Slots {
		db := u.dbs[s]
		role := env.RoleStandby
		if in, err := db.InRecovery(ctx); err != nil {
			return fmt.Errorf("up: database %s: %w", s, err)
		} else if !in {
			role = env.RoleWriter
		}
		name := u.cfg.PrimaryRegion
		if s == env.SlotSecondary {
			name = u.cfg.SecondaryRegion
		}
		ns, addr := u.place(s)
		if u.net == nil {
			addr = ""
		}
		u.m.Regions[s] = &env.Region{Slot: s, Name: name, Namespace: ns, Address: addr, Database: env.Database{
			Name: db.Name(), DataDir: db.DataDir(), Port: db.Port(), DSN: db.DSN(DatabaseName), Database: DatabaseName,
			PID: db.PID(), LogPath: db.LogPath(), Role: role,
		}}
	}
	return nil
}

// startDatabases starts (or adopts) each slot's database in the role
// recorded in prev: the writer, then the standby streaming from it. It
// first checks that the data directories can take those roles
// (checkDatabases) and starts nothing when they cannot. On failure it stops
// what it started and leaves running what it found running.
func (u *upRun) startDatabases(ctx context.Context, prev *env.Manifest) (dbs map[env.Slot]*pg.Server, err error) {
	r := rolesOf(u.l.Root, prev)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := checkDatabases(cctx, u.l, r); err != nil {
		return nil, err
	}
	var started []func(context.Context) error
	defer func() {
		if err == nil {
			u.started = append(u.started, started...)
			return
		}
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer scancel()
		for i := len(started) - 1; i >= 0; i-- {
			if serr := started[i](sctx); serr != nil {
				err = fmt.Errorf("%w; stopping what this step started: %v", err, serr)
			}
		}
	}()
	wasUp := func(s env.Slot) bool {
		srv, err := pg.Open(u.l.DataDir(s))
		return err == nil && srv.Running()
	}
	wUp := wasUp(r.writer)
	wNS, wHost := u.place(r.writer)
	w, err := pg.StartPrimary(cctx, pg.Options{DataDir: u.l.DataDir(r.writer), Name: string(r.writer), Host: wHost, Namespace: wNS, TLS: u.dbTLS()})
	if err != nil {
		return nil, fmt.Errorf("up: start database %s as the writer: %w", r.label(r.writer), err)
	}
	if !wUp {
		started = append(started, w.Stop)
	}
	if err := w.CreateDatabase(cctx, DatabaseName); err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	sUp := wasUp(r.standby)
	sNS, sHost := u.place(r.standby)
	s, err := pg.StartStandby(cctx, w, pg.Options{DataDir: u.l.DataDir(r.standby), Name: string(r.standby), Host: sHost, Namespace: sNS, TLS: u.dbTLS()})
	if err != nil {
		return nil, fmt.Errorf("up: start database %s as the standby of %s: %w", r.label(r.standby), r.label(r.writer), err)
	}
	if !sUp {
		started = append(started, s.Stop)
	}
	for srv, want := range map[*pg.Server]bool{w: false, s: true} {
		in, err := srv.InRecovery(cctx)
		if err != nil {
			return nil, fmt.Errorf("up: database %s: %w", srv.Name(), err)
		}
		if in != want {
			return nil, fmt.Errorf("up: database %s runs with pg_is_in_recovery() = %v after start, against its recorded role; see %s", srv.Name(), in, srv.LogPath())
		}
	}
	return map[env.Slot]*pg.Server{r.writer: w, r.standby: s}, nil
}

// startProcessors starts (or adopts) the processor of each region.
func (u *upRun) startProcessors(ctx context.Context) (string, error) {
	var parts []string
	for _, s := range env.Slots {
		d, err := u.startProcessor(ctx, s)
		if err != nil {
			return "", err
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, "; "), nil
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
func (u *upRun) startProcessor(ctx context.Context, s env.Slot) (string, error) {
	m, prev := u.m, u.prev
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
	ev := environ.Vars[string]{
		Region:        r.Name,
		SessionsTable: table,
		EventBus:      bus,
		// The slot's database over TLS that verifies it (the local CA).
		DBHost: r.Host(),
		DBPort: strconv.Itoa(r.Database.Port),
		DBName: r.Database.Database,
		// As the role provisionLedger made, its password in a file: in no
		// environment, manifest or log.
		DBUser:         ledger.AppUser,
		DBPasswordFile: u.l.DBAppPasswordFile(),
		DBCAFile:       u.tls.CAFile(),
		AWSEndpoint:    m.AWSEndpoint(),
		// A stalled database is answered (503/504 after 2 s, plus 0.5 s to
		// re-read the ledger) before the drill client's 3 s timeout.
		RequestTimeout: "2s",
		// The key terraform apply wrote into the emulator, read in the
		// slot's region as on AWS: the local API authenticates as the
		// deployed one does.
		APIKeyParam: apikey.ParameterName(m.Suffix),
	}
	// The slot's processor role, as Lambda gives it to the function.
	var roleEnv map[string]string
	if m.Moto.IAM != nil {
		roleEnv = m.Moto.IAM.Processors[s].Environ()
	}
	// Adopt a running processor whose settings are unchanged.
	if pid := daemon.ReadPIDFile(pidFile); daemon.Alive(pid, "serve") && prev != nil && prev.Regions[s] != nil && port != 0 {
		old := prev.Regions[s].Processor
		// Unchanged includes no credentials where none are wanted.
		_, hadRole := old.Env["AWS_ACCESS_KEY_ID"]
		same := hadRole == (roleEnv != nil)
		for k, v := range merge(ev.Map(), roleEnv) {
			if old.Env[k] != v {
				same = false
			}
		}
		if same && daemon.ListeningOn(r.Host(), port) {
			r.Processor = old
			r.Processor.PID = pid
			return fmt.Sprintf("%s %s already running (pid %d)", s, old.URL, pid), nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = daemon.Stop(cctx, pid, "serve", 5*time.Second)
		cancel()
	}
	ns, host := u.place(s)
	for tries := 0; port == 0 || !daemon.PortFree(port) || !portFreeIn(ns, host, port); tries++ {
		if tries == 10 {
			return "", fmt.Errorf("up: start processor %s: no free port on %s after 10 tries", s, host)
		}
		var err error
		if port, err = daemon.FreePort(); err != nil {
			return "", fmt.Errorf("up: start processor %s: %w", s, err)
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	ev.Listen = addr
	vars := merge(ev.Map(), roleEnv)
	// In a namespace, ip netns exec joins it and execs the processor: the
	// pid, and so the pid file, stay the processor's.
	argv, err := ns.Command(u.o.Exe, "serve", "--listen", addr)
	if err != nil {
		return "", fmt.Errorf("up: start processor %s: %w", s, err)
	}
	pid, exited, err := u.startDaemon(daemon.Spec{Name: "processor " + string(s), Argv: argv, Env: u.exeEnv(vars), LogPath: u.l.ProcessorLog(s), PIDFile: pidFile})
	if err != nil {
		return "", err
	}
	r.Processor = env.Processor{URL: "http://" + addr, Port: port, PID: pid, PIDFile: pidFile, LogPath: u.l.ProcessorLog(s), Command: argv, Env: vars}
	// The writer's processor must be healthy; a standby's answers 503.
	code, err := waitProcessor(ctx, s, r.Processor, r.Database.Role == env.RoleWriter, exited)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s (pid %d, /health %d)", s, r.Processor.URL, pid, code), nil
}

// startRouter starts (or adopts) the failover router in front of the two
// processors, on --router-port, else the last up's port, else a free one.
func (u *upRun) startRouter(ctx context.Context) (string, error) {
	m, prev, port := u.m, u.prev, u.o.RouterPort
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
	pid, exited, err := u.startDaemon(daemon.Spec{Name: "router", Argv: argv, Env: u.exeEnv(nil), LogPath: u.l.RouterLog(), PIDFile: pidFile})
	if err != nil {
		return "", err
	}
	m.Router = env.Router{URL: "http://" + addr, Port: port, PID: pid, PIDFile: pidFile, LogPath: u.l.RouterLog(), Command: argv,
		HealthInterval: env.Duration(u.o.HealthInterval), FailureThreshold: u.o.FailureThreshold, Primary: env.SlotPrimary, Secondary: env.SlotSecondary}
	if err := waitRouterListening(ctx, addr, port, u.l.RouterLog(), exited); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (pid %d), checks every %s, unhealthy after %d failures", m.Router.URL, pid, u.o.HealthInterval, u.o.FailureThreshold), nil
}

// startDaemon starts a detached process for this run and registers how to
// stop it again (and remove its pid file) if a later step fails.
func (u *upRun) startDaemon(spec daemon.Spec) (pid int, exited <-chan struct{}, err error) {
	child, err := daemon.Start(spec)
	if err != nil {
		return 0, nil, fmt.Errorf("up: %w", err)
	}
	u.started = append(u.started, func(ctx context.Context) error {
		err := daemon.Stop(ctx, child.PID, "", 5*time.Second)
		_ = os.Remove(spec.PIDFile)
		return err
	})
	return child.PID, child.Done(), nil
}

// merge returns a copy of a with b's entries set over it.
func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	maps.Copy(out, a)
	maps.Copy(out, b)
	return out
}
