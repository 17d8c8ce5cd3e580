package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"paydr/internal/local/daemon"
	"paydr/internal/local/netns"
)

// Superuser is the database superuser every server is initialised with.
const Superuser = "postgres"

// DefaultWait bounds waits (start, stop, promote) whose context has no
// deadline of its own.
const DefaultWait = 60 * time.Second

// confFile is the paydr-managed configuration file inside a data directory,
// included from postgresql.conf.
const confFile = "paydr.conf"

// Options configure a server started by StartPrimary or StartStandby.
type Options struct {
	// DataDir is the server's data directory, created if missing. Its log is
	// written to DataDir + ".log" (next to it, in the state directory).
	// Required.
	DataDir string
	// Port is the TCP port on 127.0.0.1 (and Host); 0 picks a free one. For
	// an existing data directory, 0 keeps the port it was created with.
	Port int
	// Host is the address the server listens on besides 127.0.0.1, and the
	// one its DSN names: a region's address on a network namespace fabric.
	// Empty means 127.0.0.1 only. A data directory copied from elsewhere
	// starts where Host and Namespace say, not where its copy was.
	Host string
	// Namespace is the network namespace the postmaster runs in (its
	// 127.0.0.1 is then the namespace's own); empty is the host's.
	Namespace netns.Namespace
	// Name identifies a standby to its primary: it is the standby's
	// application_name in pg_stat_replication and the name of its replication
	// slot. Defaults to the base name of DataDir.
	Name string
	// BinDir is the directory holding initdb, postgres, pg_basebackup and
	// pg_rewind; empty means search (see FindBinDir).
	BinDir string
	// OSUser is the unprivileged OS user the server runs as when paydr runs
	// as root; empty means "postgres", else "nobody".
	OSUser string
	// TLS, when set, makes the server serve TLS with this certificate (see
	// TLS). A server once started with TLS keeps serving it at later
	// starts (Open, Promote, RebuildAsStandby) with the files copied then.
	TLS *TLS
}

// TLS is the certificate a server serves TLS with. Its files are copied
// beside the data directory (Server.TLSDir), owned by the server's OS user,
// the key 0600 as PostgreSQL requires, at every start that names them.
//
// With TLS on, pg_hba.conf lets every role but the superuser in over TCP
// only with TLS and a password (hostssl ... scram-sha-256; plaintext is
// rejected, and so is the Unix socket): the application's roles are tested
// the way Aurora with rds.force_ssl treats them. The superuser, which
// replication, tests and DR tooling use, keeps trust on loopback, the Unix
// socket and the region fabric.
type TLS struct {
	CertFile string // PEM server certificate, naming every address clients use (Host, 127.0.0.1)
	KeyFile  string // PEM private key of the certificate
}

// Server is a local PostgreSQL server: one postmaster and its data directory.
// Its methods are safe for concurrent use.
type Server struct {
	dataDir string
	name    string
	binDir  string
	as      *runAs
	host    string          // listen address besides 127.0.0.1; "" none
	ns      netns.Namespace // the postmaster's network namespace; "" the host's
	tls     *TLS            // files to serve TLS with from this start on; nil: keep what paydr.conf says
	tlsOn   bool            // the configuration serves TLS (set by start)

	mu    sync.Mutex
	port  int
	pid   int
	child *daemon.Child // the postmaster, when this process started it
}

// PortInUseError reports that the port a server was asked to listen on is
// taken.
type PortInUseError struct {
	Port int
	Err  error
}

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d is in use; stop what listens there (`ss -ltnp 'sport = :%d'`) or choose another port (0 picks a free one): %v", e.Port, e.Port, e.Err)
}

func (e *PortInUseError) Unwrap() error { return e.Err }

// Open returns the server whose data directory is dataDir, whether it is
// running or not, so that a process can adopt a server an earlier process
// started (paydr up twice, paydr down). The port comes from the data
// directory's paydr configuration, the process from postmaster.pid.
func Open(dataDir string) (*Server, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("pg: open %s: %w", dataDir, err)
	}
	if !initialized(abs) {
		return nil, fmt.Errorf("pg: open %s: not a PostgreSQL data directory (no PG_VERSION); start one with StartPrimary or StartStandby", abs)
	}
	conf, err := readConf(abs)
	if err != nil {
		return nil, fmt.Errorf("pg: open %s: %w", abs, err)
	}
	port, err := strconv.Atoi(conf["port"])
	if err != nil {
		return nil, fmt.Errorf("pg: open %s: no valid port in %s: %q", abs, confFile, conf["port"])
	}
	s := &Server{dataDir: abs, name: filepath.Base(abs), port: port}
	s.host, s.ns = placeOf(conf)
	if os.Geteuid() == 0 {
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("pg: open %s: %w", abs, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			s.as = &runAs{name: strconv.Itoa(int(st.Uid)), uid: st.Uid, gid: st.Gid}
		}
	}
	if pid, err := readPostmasterPID(abs); err == nil && daemon.Alive(pid, "postgres") {
		s.pid = pid
	}
	return s, nil
}

// DSN returns a connection URL for database db as the superuser over TCP
// at Host, usable by pgx, database/sql and psql.
func (s *Server) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(Superuser),
		Host:     net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Host returns the address clients reach the server at: its region address
// when it runs in a network namespace (Options.Host), else 127.0.0.1.
func (s *Server) Host() string {
	if s.host != "" {
		return s.host
	}
	return "127.0.0.1"
}

// Namespace returns the network namespace the server runs in; empty is the
// host's.
func (s *Server) Namespace() netns.Namespace { return s.ns }

// Port returns the TCP port the server listens on at Host.
func (s *Server) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

// TLSDir returns the directory beside the data directory holding the
// certificate and key the server serves TLS with (Options.TLS).
func (s *Server) TLSDir() string { return s.dataDir + ".tls" }

// DataDir returns the absolute path of the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// LogPath returns the file the server's log is written to.
func (s *Server) LogPath() string { return s.dataDir + ".log" }

// SocketDir returns the directory of the server's Unix socket, next to its
// data directory (psql -h SocketDir -p Port).
func (s *Server) SocketDir() string { return s.dataDir + ".run" }

// Name returns the server's name: its application_name and replication slot
// name when it is a standby.
func (s *Server) Name() string { return s.name }

// PID returns the postmaster's process id, or 0 when it is not running.
func (s *Server) PID() int { return s.livePID() }

// Running reports whether the server's postmaster is alive.
func (s *Server) Running() bool { return s.livePID() != 0 }

func (s *Server) livePID() int {
	s.mu.Lock()
	pid, child := s.pid, s.child
	s.mu.Unlock()
	if child != nil {
		if child.Running() {
			return pid
		}
		return 0
	}
	if pid != 0 && daemon.Alive(pid, "postgres") {
		return pid
	}
	// Someone else may have started it since we looked.
	if p, err := readPostmasterPID(s.dataDir); err == nil && daemon.Alive(p, "postgres") {
		s.mu.Lock()
		s.pid = p
		s.mu.Unlock()
		return p
	}
	return 0
}

// unreaped reports whether a postmaster this process started has exited
// but not yet been waited for: its pid and process group still exist.
func (s *Server) unreaped() bool {
	s.mu.Lock()
	child := s.child
	s.mu.Unlock()
	return !child.Reaped()
}

// Stop shuts the server down with a fast shutdown (SIGINT: clients are
// disconnected, a shutdown checkpoint is written) and waits for the whole
// process group to exit. If it has not exited when ctx ends (or after
// DefaultWait), every process of it is killed (as by Kill); so is a frozen
// server (Freeze), which cannot shut down. Stopping a stopped server
// returns nil.
func (s *Server) Stop(ctx context.Context) error {
	pid := s.livePID()
	if pid == 0 {
		return nil
	}
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pg: stop %s: signal postmaster %d: %w", s.name, pid, err)
	}
	deadline, _ := ctx.Deadline()
	if daemon.WaitGone(deadline, func() bool { return s.livePID() != 0 || s.unreaped() || daemon.GroupAlive(pid) }) {
		return nil
	}
	if err := s.killTree(pid); err != nil {
		return fmt.Errorf("pg: stop %s: fast shutdown did not finish before the deadline, then kill: %w", s.name, err)
	}
	return nil
}

// Kill sends SIGKILL to every process of the server, simulating the
// sudden loss of the machine: the postmaster and all its descendants
// (daemon.SignalTree; backends, the WAL writer and walsenders call setsid,
// so the postmaster's process group misses them), and waits (bounded) until
// none is left. The data directory is left as a crash left it. Killing a
// stopped server returns nil.
func (s *Server) Kill() error {
	pid := s.livePID()
	if pid == 0 {
		return nil
	}
	if err := s.killTree(pid); err != nil {
		return fmt.Errorf("pg: kill %s: %w", s.name, err)
	}
	return nil
}

func (s *Server) killTree(pid int) error {
	killed, err := daemon.SignalTree(pid, syscall.SIGKILL)
	if err != nil {
		return err
	}
	if !daemon.WaitGone(time.Now().Add(10*time.Second), func() bool {
		return s.livePID() != 0 || s.unreaped() || daemon.GroupAlive(pid) || daemon.AnyAlive(killed)
	}) {
		return fmt.Errorf("processes of postmaster %d still alive 10s after SIGKILL", pid)
	}
	return nil
}

// Connect opens a connection to database db as the superuser.
func (s *Server) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.DSN(db))
}

// CreateDatabase creates database name; it returns nil if it already exists.
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("pg: create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database
		return nil
	}
	if err != nil {
		return fmt.Errorf("pg: create database %s: %w", name, err)
	}
	return nil
}

// InRecovery reports whether the server is a standby (pg_is_in_recovery).
func (s *Server) InRecovery(ctx context.Context) (bool, error) {
	var in bool
	if err := s.queryRow(ctx, "SELECT pg_is_in_recovery()", &in); err != nil {
		return false, fmt.Errorf("pg: in recovery %s: %w", s.name, err)
	}
	return in, nil
}

func (s *Server) queryRow(ctx context.Context, sql string, dest ...any) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

func initialized(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "PG_VERSION"))
	return err == nil
}

// readPostmasterPID returns the pid on the first line of postmaster.pid.
func readPostmasterPID(dataDir string) (int, error) {
	f, err := os.Open(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, errors.New("empty postmaster.pid")
	}
	return strconv.Atoi(strings.TrimSpace(sc.Text()))
}

// readConf parses the paydr configuration file of a data directory.
func readConf(dataDir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, confFile))
	if err != nil {
		return nil, err
	}
	conf := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		conf[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return conf, nil
}

// writeConf writes the paydr configuration file, keys sorted.
func writeConf(dataDir string, conf map[string]string, as *runAs) error {
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Managed by paydr (internal/local/pg). Included from postgresql.conf.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, conf[k])
	}
	p := filepath.Join(dataDir, confFile)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return as.chown(p)
}

// confNamespace is the custom setting in paydr.conf recording the network
// namespace the server runs in (a dotted name PostgreSQL keeps as a
// placeholder).
const confNamespace = "paydr.netns"

// placeOf returns the listen address besides 127.0.0.1 and the namespace a
// data directory's paydr.conf records.
func placeOf(conf map[string]string) (host string, ns netns.Namespace) {
	for _, a := range strings.Split(unquote(conf["listen_addresses"]), ",") {
		if a = strings.TrimSpace(a); a != "" && a != "127.0.0.1" {
			host = a
			break
		}
	}
	return host, netns.Namespace(unquote(conf[confNamespace]))
}

// setPlace records host and ns in conf (listen_addresses and
// confNamespace).
func setPlace(conf map[string]string, host string, ns netns.Namespace) {
	conf["listen_addresses"] = quote("127.0.0.1")
	if host != "" {
		conf["listen_addresses"] = quote(host + ",127.0.0.1")
	}
	delete(conf, confNamespace)
	if ns != "" {
		conf[confNamespace] = quote(string(ns))
	}
}

// unquote undoes quote.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
	}
	return v
}

// quote renders a configuration string value.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
