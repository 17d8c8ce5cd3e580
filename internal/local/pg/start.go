package pg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paydr/internal/local/daemon"
)

// maxSocketPath is the longest Unix-domain socket path Linux accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// StartPrimary starts a read-write server in opts.DataDir, creating the
// cluster with initdb first if the directory holds none, and waits until it
// accepts connections. If a server is already running from that directory it
// is adopted and returned as is, so calling StartPrimary twice is safe. A
// stopped standby's data directory (standby.signal) is refused with an error
// matching ErrIsStandby: started, it would not be a primary.
//
// The cluster is created with trust authentication for the superuser
// "postgres", reachable only on 127.0.0.1, the Unix socket in
// Server.SocketDir and, with Options.Host, the fabric subnet of that address
// (see package netns): it is a local stand-in holding test data, and trust keeps every
// client (psql, pgx, pg_basebackup, pg_rewind) free of password plumbing.
// Data checksums and wal_log_hints are on, so pg_rewind can turn a former
// primary into a standby. fsync is off: paydr's faults kill processes, which
// loses nothing that is in the OS page cache, and it makes start-up and
// checkpoints several times faster on small machines.
func StartPrimary(ctx context.Context, opts Options) (*Server, error) {
	s, err := prepare(opts)
	if err != nil {
		return nil, fmt.Errorf("pg: start primary: %w", err)
	}
	if s.Running() {
		return s, nil
	}
	if opts.Port != 0 {
		if err := s.checkPortFree(opts.Port); err != nil {
			return nil, fmt.Errorf("pg: start primary: %w", err)
		}
	}
	if !initialized(s.dataDir) {
		if err := s.initdb(ctx); err != nil {
			return nil, fmt.Errorf("pg: start primary: %w", err)
		}
	}
	if err := s.start(ctx, opts.Port, false); err != nil {
		if errors.Is(err, ErrIsStandby) {
			return nil, fmt.Errorf("pg: start primary: %w; start it with StartStandby, or Promote it once it runs", err)
		}
		return nil, fmt.Errorf("pg: start primary: %w", err)
	}
	return s, nil
}

// StartStandby starts a hot standby in opts.DataDir that streams WAL from
// primary through a physical replication slot named after the standby
// (Options.Name, default the data directory's base name). A missing cluster
// is cloned with pg_basebackup first. It returns once the standby accepts
// read-only connections and its WAL receiver streams primary's current
// timeline. If a server is already running from opts.DataDir it is adopted
// and returned as is.
//
// An existing cluster is checked before anything starts: one without
// standby.signal, a former primary's, is refused with an error matching
// ErrNotStandby, because started it would be a second writer; one whose
// files show it cannot stream from primary (another system, a diverged
// timeline) is refused with a *FollowError. A standby that starts but does
// not stream before ctx ends is stopped again: StartStandby leaves nothing
// half-started.
func StartStandby(ctx context.Context, primary *Server, opts Options) (*Server, error) {
	s, err := prepare(opts)
	if err != nil {
		return nil, fmt.Errorf("pg: start standby: %w", err)
	}
	if s.Running() {
		return s, nil
	}
	if primary == nil {
		return nil, errors.New("pg: start standby: no primary given; start the primary first and pass it")
	}
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if initialized(s.dataDir) {
		if err := s.checkFollows(ctx, primary); err != nil {
			return nil, fmt.Errorf("pg: start standby: %w", err)
		}
	} else if err := s.cloneFrom(ctx, primary, opts.Port); err != nil {
		return nil, fmt.Errorf("pg: start standby: %w", err)
	}
	if err := s.start(ctx, opts.Port, true); err != nil {
		return nil, fmt.Errorf("pg: start standby: %w", err)
	}
	tli, _ := primary.timeline(ctx) // 0 (any timeline) if it cannot say
	if err := s.waitStreaming(ctx, tli); err != nil {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer scancel()
		if serr := s.Stop(sctx); serr != nil {
			return nil, fmt.Errorf("pg: start standby: %w; stopping it again: %v", err, serr)
		}
		return nil, fmt.Errorf("pg: start standby: %w; it was stopped again", err)
	}
	return s, nil
}

// checkFollows refuses, before it starts, an existing cluster in s that is
// not a standby's or cannot stream from primary.
func (s *Server) checkFollows(ctx context.Context, primary *Server) error {
	in, err := Inspect(ctx, s.dataDir)
	if err != nil {
		return err
	}
	if !in.Standby {
		return fmt.Errorf("%w: %s has no standby.signal, so it is a primary's (%s); started, it would accept writes beside the primary on port %d. Rebuild it as a standby of that primary (RebuildAsStandby), copying it first if its writes matter",
			ErrNotStandby, s.dataDir, in.Describe(), primary.Port())
	}
	pin, err := Inspect(ctx, primary.DataDir())
	if err != nil {
		return err
	}
	if err := in.CanFollow(pin); err != nil {
		return fmt.Errorf("%s (%s): %w; rebuild it as a standby of that primary (RebuildAsStandby)", s.dataDir, in.Describe(), err)
	}
	return nil
}

// prepare validates opts, resolves binaries and the OS user, and creates the
// data directory.
func prepare(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("options: DataDir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("options: Port %d is out of range", opts.Port)
	}
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	binDir, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	as, err := resolveRunAs(opts.OSUser)
	if err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(dir)
	}
	s := &Server{dataDir: dir, name: name, binDir: binDir, as: as, port: opts.Port, host: opts.Host, ns: opts.Namespace, tls: opts.TLS}
	if initialized(dir) {
		if existing, err := Open(dir); err == nil {
			s.port, s.pid = existing.port, existing.pid
			if existing.pid != 0 && (existing.host != opts.Host || existing.ns != opts.Namespace) {
				return nil, fmt.Errorf("server in %s already runs on %s in network namespace %q, not the requested %s in %q; stop it first",
					dir, existing.Host(), existing.ns, s.Host(), opts.Namespace)
			}
			if opts.Port != 0 && opts.Port != existing.port && existing.pid != 0 {
				return nil, fmt.Errorf("server in %s already runs on port %d, not the requested %d; stop it first", dir, existing.port, opts.Port)
			}
		}
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err != nil {
		return nil, err
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("data directory %s is not empty and holds no cluster; remove it or choose another", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if err := as.checkTraversable(dir); err != nil {
		return nil, err
	}
	if err := as.chown(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// initdb creates a new cluster in s.dataDir.
func (s *Server) initdb(ctx context.Context) error {
	bin, err := binary(s.binDir, "initdb")
	if err != nil {
		return err
	}
	if err := s.run(ctx, bin, "-D", s.dataDir, "-U", Superuser, "--auth=trust",
		"--data-checksums", "--no-sync", "--no-instructions", "--encoding=UTF8", "--locale=C"); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	if err := s.writeHBA(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	_, err = f.WriteString("\ninclude_if_exists = '" + confFile + "'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("initdb: include %s: %w", confFile, err)
	}
	return writeConf(s.dataDir, baseConf(), s.as)
}

// writeHBA writes pg_hba.conf: trust on loopback and the Unix socket, and,
// when the server listens on a fabric address (Host), on the subnets it is
// directly connected to (samenet: the fabric's /24, where the host, the
// other region and its standby are). It is rewritten at every start, so a
// copy from another server (pg_basebackup, pg_rewind) never decides.
//
// With TLS on (see TLS) only the superuser keeps trust; every other role
// must come over TCP with TLS and a password (scram-sha-256), and is
// rejected in plaintext and on the Unix socket. pg_hba.conf is read top
// down, first match wins.
func (s *Server) writeHBA() error {
	lines := []string{
		"# Managed by paydr (internal/local/pg): trust, loopback, Unix socket and the region fabric only.",
		"local all all trust",
		"host all all 127.0.0.1/32 trust",
		"local replication all trust",
		"host replication all 127.0.0.1/32 trust",
	}
	if s.host != "" {
		lines = append(lines, "host all all samenet trust", "host replication all samenet trust")
	}
	if s.tlsOn {
		lines = []string{
			"# Managed by paydr (internal/local/pg): TLS on. The superuser: trust on loopback, the Unix socket",
			"# and the region fabric; every other role: TLS and a password only.",
			"local all " + Superuser + " trust",
			"local replication all trust",
			"local all all reject",
		}
		for _, net := range []string{"127.0.0.1/32", "samenet"} {
			if net == "samenet" && s.host == "" {
				continue
			}
			lines = append(lines,
				"host all "+Superuser+" "+net+" trust",
				"host replication all "+net+" trust",
				"hostssl all all "+net+" scram-sha-256",
				"hostnossl all all "+net+" reject")
		}
	}
	p := filepath.Join(s.dataDir, "pg_hba.conf")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("write pg_hba.conf: %w", err)
	}
	return s.as.chown(p)
}

// baseConf is the configuration every server gets, primary or standby.
func baseConf() map[string]string {
	return map[string]string{
		"listen_addresses":             quote("127.0.0.1"),
		"wal_level":                    "replica",
		"max_wal_senders":              "10",
		"max_replication_slots":        "10",
		"wal_keep_size":                quote("64MB"),
		"hot_standby":                  "on",
		"hot_standby_feedback":         "on",
		"wal_log_hints":                "on",
		"full_page_writes":             "on",
		"wal_receiver_status_interval": quote("1s"),
		"wal_retrieve_retry_interval":  quote("1s"),
		"recovery_target_timeline":     quote("latest"),
		"fsync":                        "off",
		"shared_buffers":               quote("32MB"),
		"max_connections":              "100",
		"log_line_prefix":              quote("%m [%p] %q%a "),
		"log_destination":              quote("stderr"),
		"logging_collector":            "off",
	}
}

// start starts the postmaster on port (0: keep the configured one, or pick a
// free one) and waits until it accepts connections. standby says which role
// the data directory must be configured for (standby.signal present or
// absent); start refuses before running postgres if it is not, so no path
// starts a standby's data directory writable.
func (s *Server) start(ctx context.Context, port int, standby bool) error {
	if err := checkSignal(s.dataDir, standby); err != nil {
		return err
	}
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if s.binDir == "" {
		dir, err := FindBinDir("")
		if err != nil {
			return err
		}
		s.binDir = dir
	}
	bin, err := binary(s.binDir, "postgres")
	if err != nil {
		return err
	}
	conf, err := readConf(s.dataDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", confFile, err)
	}
	if port == 0 {
		port, _ = strconv.Atoi(conf["port"])
	}
	if port != 0 {
		return s.startOn(ctx, bin, conf, port)
	}
	// A port picked here can still be taken before postgres binds it (by
	// another server picking at the same moment): pick again.
	for tries := 1; ; tries++ {
		if port, err = freePort(); err != nil {
			return err
		}
		err = s.startOn(ctx, bin, conf, port)
		if inUse := (*PortInUseError)(nil); tries == pickTries || !errors.As(err, &inUse) {
			return err
		}
	}
}

// pickTries is how many free ports start tries when it picks the port.
const pickTries = 3

// freePort picks the port when neither the caller nor the data directory
// names one; tests replace it.
var freePort = FreePort

// startOn starts postgres on port with conf, the data directory's
// configuration, and waits until it accepts connections.
func (s *Server) startOn(ctx context.Context, bin string, conf map[string]string, port int) error {
	if err := s.checkPortFree(port); err != nil {
		return err
	}
	conf["port"] = strconv.Itoa(port)
	setPlace(conf, s.host, s.ns)
	if err := s.configureTLS(conf); err != nil {
		return err
	}
	if err := s.writeHBA(); err != nil {
		return err
	}
	// The Unix socket lives next to the data directory, not in it: pg_rewind
	// copies the source's data directory file by file and fails on a socket.
	// If the path would be too long for a socket, the server is reachable
	// over TCP only.
	sockDir := s.SocketDir()
	if len(filepath.Join(sockDir, ".s.PGSQL."+strconv.Itoa(port)+".lock")) <= maxSocketPath {
		if err := os.MkdirAll(sockDir, 0o700); err != nil {
			return err
		}
		if err := s.as.chown(sockDir); err != nil {
			return err
		}
		conf["unix_socket_directories"] = quote(sockDir)
	} else {
		conf["unix_socket_directories"] = quote("")
	}
	if err := writeConf(s.dataDir, conf, s.as); err != nil {
		return fmt.Errorf("write %s: %w", confFile, err)
	}
	// A stale postmaster.pid whose pid now belongs to another process would
	// make postgres refuse to start.
	if pid, err := readPostmasterPID(s.dataDir); err == nil && !daemon.Alive(pid, "postgres") {
		_ = os.Remove(filepath.Join(s.dataDir, "postmaster.pid"))
	}
	logf, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	cmd := s.as.command(bin, "-D", s.dataDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := s.ns.Start(cmd); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	child := daemon.Watch(cmd)
	s.mu.Lock()
	s.port, s.pid, s.child = port, child.PID, child
	s.mu.Unlock()

	if err := s.waitReady(ctx, child.Done()); err != nil {
		tail := daemon.LogTail(s.LogPath(), logStart, 30)
		if !child.Reaped() {
			_ = s.killTree(child.PID)
		}
		if regexp.MustCompile(`could not bind|Address already in use`).MatchString(tail) {
			return &PortInUseError{Port: port, Err: err}
		}
		return fmt.Errorf("wait for server on port %d: %w; log %s ends:\n%s", port, err, s.LogPath(), tail)
	}
	return nil
}

// configureTLS installs the TLS files of Options.TLS in TLSDir and points
// conf at them; without Options.TLS, a configuration that serves TLS (a
// former start's, or a primary's copied by pg_basebackup) is pointed at this
// server's own TLSDir, which must hold the files.
func (s *Server) configureTLS(conf map[string]string) error {
	s.tlsOn = false
	if s.tls == nil && conf["ssl"] != "on" {
		return nil
	}
	dir := s.TLSDir()
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if s.tls != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if err := s.as.chown(dir); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		for _, f := range []struct {
			from, to string
			mode     os.FileMode
		}{{s.tls.CertFile, cert, 0o644}, {s.tls.KeyFile, key, 0o600}} {
			data, err := os.ReadFile(f.from)
			if err != nil {
				return fmt.Errorf("tls: %w", err)
			}
			_ = os.Remove(f.to) // may be read-only or another user's
			if err := os.WriteFile(f.to, data, f.mode); err != nil {
				return fmt.Errorf("tls: %w", err)
			}
			if err := s.as.chown(f.to); err != nil {
				return fmt.Errorf("tls: %w", err)
			}
		}
	}
	for _, f := range []string{cert, key} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("tls: %s serves TLS but %s is missing; start it with Options.TLS", confFile, f)
		}
	}
	conf["ssl"] = "on"
	conf["ssl_cert_file"] = quote(cert)
	conf["ssl_key_file"] = quote(key)
	conf["ssl_min_protocol_version"] = quote("TLSv1.2")
	conf["password_encryption"] = quote("scram-sha-256")
	s.tlsOn = true
	return nil
}

// waitReady polls until the server accepts connections, the process exits,
// or ctx ends.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := s.Connect(attempt, "postgres")
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-exited:
			return errors.New("postmaster exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run runs a PostgreSQL client binary as the server's OS user, killing its
// process group if ctx ends, and returns its output in the error.
func (s *Server) run(ctx context.Context, bin string, args ...string) error {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	cmd := s.as.command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", filepath.Base(bin), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, strings.TrimSpace(out.String()))
		}
		return nil
	case <-ctx.Done():
		_ = daemon.SignalGroup(cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("%s: %w: %s", filepath.Base(bin), ctx.Err(), strings.TrimSpace(out.String()))
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	port, err := daemon.FreePort()
	if err != nil {
		return 0, fmt.Errorf("pg: %w", err)
	}
	return port, nil
}

// checkPortFree checks that port is free on 127.0.0.1 and Host, in the
// server's namespace.
func (s *Server) checkPortFree(port int) error {
	return s.ns.Do(func() error {
		for _, h := range []string{"127.0.0.1", s.Host()} {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				return &PortInUseError{Port: port, Err: err}
			}
			l.Close()
		}
		return nil
	})
}

// slotName turns a server name into a valid replication slot name.
func slotName(name string) string {
	b := []byte(strings.ToLower(name))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return string(b)
}
