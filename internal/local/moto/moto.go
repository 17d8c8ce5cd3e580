// Package moto runs moto_server, the AWS API emulator, on loopback as the
// local stand-in for AWS. One endpoint serves every region: moto takes the
// region from each request's signature, so us-east-1 and us-west-2 clients
// share Endpoint().
//
// The server is started with MOTO_IAM_LOAD_MANAGED_POLICIES=true (without
// it, attaching AWS-managed policies fails with NoSuchEntity). It runs in its
// own process group, so Stop kills it together with anything it spawned and
// leaves no port bound, and it records itself in a pid file in the state
// directory, so Open adopts a server an earlier process started.
package moto

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"paydr/internal/local/daemon"
)

// EnvBin names the environment variable that overrides the moto_server
// executable to run.
const EnvBin = "PAYDR_MOTO_SERVER"

// DefaultWait bounds waits whose context has no deadline.
const DefaultWait = 30 * time.Second

// siteCustomize is the start-up hook Start gives moto_server through
// PYTHONPATH. It memoizes jsonpath_ng's parse, which moto 5.2 calls eight
// times, each compiling a fresh parser (about 285 ms of CPU in all), for
// every EventBridge event a rule delivers; and once moto enforces IAM, it
// has moto check the SigV4 signature of a request without a body (a REST
// GET, HEAD or DELETE) over the empty payload, as it was signed, where
// moto 5.2 uses the parameters it parsed and refuses every such request.
// It lets an Allow statement that names resources match the requests moto
// authorizes against "*" (HookActionLevelIAM). It computes moto's list of
// its service modules once instead of on every request (HookModuleList).
// It has werkzeug send a response's headers and body together
// (HookOneWrite). It runs the interpreter's own sitecustomize, if any,
// after itself.
//
//go:embed pyhooks/sitecustomize.py
var siteCustomize []byte

// HookMemoized is the line the hook prints to moto's log once jsonpath_ng's
// parse is memoized.
const HookMemoized = "paydr-moto-hook: jsonpath_ng.ext.parse memoized"

// HookSignatures is the line the hook prints to moto's log once signatures
// of requests without a body are checked over the empty payload.
const HookSignatures = "paydr-moto-hook: SigV4 of requests without a body checked over the empty payload"

// HookActionLevelIAM is the line the hook prints to moto's log once an
// Allow statement naming resources matches the requests moto authorizes
// against the resource "*" (most services' actions: moto 5.2 does not work
// out which resource they name). Without it no policy that names its
// resources allows anything there once IAM is enforced.
const HookActionLevelIAM = "paydr-moto-hook: Allow statements naming resources match requests authorized against"

// HookModuleList is the line the hook prints to moto's log once the list
// of moto's service modules, which moto 5.2 walks its package directory
// for on every request it routes, is computed once.
const HookModuleList = "paydr-moto-hook: moto's module list memoized"

// HookOneWrite is the line the hook prints to moto's log once werkzeug
// sends each response's status line, headers and body in one send, not
// the headers first. A client then reads the whole answer at once, before
// the AWS SDK's race (internal/sdkhttp) can close the connection under it:
// this is what shields the Terraform provider's SDK from that race.
const HookOneWrite = "paydr-moto-hook: responses written in one send"

// pidFileName is the pid file Start writes and Open reads, in StateDir.
const pidFileName = "moto.json"

// ErrNotInstalled is matched (errors.Is) by the error reporting that
// moto_server cannot be found.
var ErrNotInstalled = errors.New("moto_server not installed")

// Options configure Start.
type Options struct {
	// StateDir holds the pid file (moto.json) and, by default, the log
	// (moto.log). Required.
	StateDir string
	// Port is the TCP port on Host; 0 picks a free one.
	Port int
	// Host is the address moto_server listens on; default 127.0.0.1. With
	// regions in network namespaces it is the fabric's bridge address,
	// which the host and every region reach.
	Host string
	// LogPath is where moto_server's output goes; default StateDir/moto.log.
	LogPath string
	// Bin is the moto_server executable; default $PAYDR_MOTO_SERVER, else
	// moto_server on PATH.
	Bin string
}

// Server is a running (or adopted) moto_server process.
type Server struct {
	stateDir string
	host     string
	port     int
	logPath  string

	memoized    bool
	actionLevel bool

	mu    sync.Mutex
	pid   int
	child *daemon.Child // nil when adopted from another process
}

// pidFile is the JSON content of StateDir/moto.json.
type pidFile struct {
	PID     int    `json:"pid"`
	Host    string `json:"host,omitempty"` // empty: 127.0.0.1
	Port    int    `json:"port"`
	LogPath string `json:"log_path"`
	// Memoized records that the start-up hook memoized jsonpath_ng's
	// parse (HookMemoized was in the log).
	Memoized bool `json:"jsonpath_memoized,omitempty"`
	// ActionLevel records that HookActionLevelIAM was in the log.
	ActionLevel bool `json:"action_level_iam,omitempty"`
}

// Start starts moto_server on opts.Host (127.0.0.1) and waits until it answers HTTP.
// If a server recorded in opts.StateDir is still running it is adopted and
// returned instead, so calling Start twice is safe.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.StateDir == "" {
		return nil, errors.New("moto: start: options: StateDir is required")
	}
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("moto: start: options: Port %d is out of range", opts.Port)
	}
	if s, err := Open(opts.StateDir); err == nil && s.Running() {
		return s, nil
	}
	bin, err := findBin(opts.Bin)
	if err != nil {
		return nil, err
	}
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("moto: start: %w", err)
	}
	host := opts.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := opts.Port
	if port == 0 {
		if port, err = daemon.FreePort(); err != nil {
			return nil, fmt.Errorf("moto: start: %w", err)
		}
	}
	if l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port))); err != nil {
		return nil, fmt.Errorf("moto: start: port %d on %s is in use; stop what listens there or choose another port (0 picks a free one): %w", port, host, err)
	} else {
		l.Close()
	}
	logPath := opts.LogPath
	if logPath == "" {
		logPath = filepath.Join(opts.StateDir, "moto.log")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("moto: start: open log: %w", err)
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	hooks := filepath.Join(opts.StateDir, "pyhooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return nil, fmt.Errorf("moto: start: %w", err)
	}
	if err := os.WriteFile(filepath.Join(hooks, "sitecustomize.py"), siteCustomize, 0o644); err != nil {
		return nil, fmt.Errorf("moto: start: write the start-up hook: %w", err)
	}
	pythonPath := hooks
	if old := os.Getenv("PYTHONPATH"); old != "" {
		pythonPath += string(os.PathListSeparator) + old
	}

	cmd := exec.Command(bin, "-H", host, "-p", strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "MOTO_IAM_LOAD_MANAGED_POLICIES=true", "PYTHONPATH="+pythonPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("moto: start: run %s: %w", bin, err)
	}
	child := daemon.Watch(cmd)
	s := &Server{stateDir: opts.StateDir, host: host, port: port, logPath: logPath, pid: child.PID, child: child}

	if err := s.waitReady(ctx, child.Done()); err != nil {
		_ = s.kill()
		return nil, fmt.Errorf("moto: start: wait for %s: %w; log %s ends:\n%s", s.Endpoint(), err, logPath, daemon.LogTail(logPath, logStart, 30))
	}
	s.memoized = logHas(logPath, logStart, HookMemoized)
	s.actionLevel = logHas(logPath, logStart, HookActionLevelIAM)
	b, _ := json.Marshal(pidFile{PID: s.pid, Host: host, Port: port, LogPath: logPath, Memoized: s.memoized, ActionLevel: s.actionLevel})
	if err := os.WriteFile(filepath.Join(opts.StateDir, pidFileName), b, 0o644); err != nil {
		_ = s.kill()
		return nil, fmt.Errorf("moto: start: write pid file: %w", err)
	}
	return s, nil
}

// Open returns the server recorded in stateDir's pid file, running or not,
// so that paydr down can stop a server paydr up started in another process.
func Open(stateDir string) (*Server, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, pidFileName))
	if err != nil {
		return nil, fmt.Errorf("moto: open %s: %w", stateDir, err)
	}
	var pf pidFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return nil, fmt.Errorf("moto: open %s: parse %s: %w", stateDir, pidFileName, err)
	}
	if pf.Host == "" {
		pf.Host = "127.0.0.1"
	}
	return &Server{stateDir: stateDir, host: pf.Host, port: pf.Port, logPath: pf.LogPath, pid: pf.PID, memoized: pf.Memoized, actionLevel: pf.ActionLevel}, nil
}

// JSONPathMemoized reports whether the start-up hook took effect: without
// it (a moto without jsonpath_ng, or an interpreter that ignores
// PYTHONPATH) every EventBridge delivery costs moto some 285 ms of CPU.
func (s *Server) JSONPathMemoized() bool { return s.memoized }

// logHas reports whether the log at path holds line past offset from.
func logHas(path string, from int64, line string) bool {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return bytes.Contains(b[from:], []byte(line))
}

// Endpoint returns the URL AWS SDK clients use for every service and region,
// such as "http://127.0.0.1:5000".
func (s *Server) Endpoint() string {
	return "http://" + net.JoinHostPort(s.Host(), strconv.Itoa(s.port))
}

// Host returns the address moto listens on.
func (s *Server) Host() string {
	if s.host == "" {
		return "127.0.0.1"
	}
	return s.host
}

// Port returns the TCP port moto listens on at Host.
func (s *Server) Port() int { return s.port }

// LogPath returns the file moto's output goes to.
func (s *Server) LogPath() string { return s.logPath }

// PID returns the moto_server process id, or 0 when it is not running.
func (s *Server) PID() int {
	if !s.Running() {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// Running reports whether the moto_server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	pid, child := s.pid, s.child
	s.mu.Unlock()
	if child != nil {
		return child.Running()
	}
	return daemon.Alive(pid, "moto")
}

// Reset discards all emulated AWS state (POST /moto-api/reset).
func (s *Server) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint()+"/moto-api/reset", nil)
	if err != nil {
		return fmt.Errorf("moto: reset: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto: reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: reset: %s", resp.Status)
	}
	return nil
}

// Stop terminates moto_server's process group (SIGTERM, then SIGKILL when
// ctx ends or after 5 s), waits until no process of it is left, and removes
// the pid file. Stopping a stopped server returns nil.
func (s *Server) Stop(ctx context.Context) error {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	s.mu.Lock()
	pid := s.pid
	s.mu.Unlock()
	if s.Running() {
		_ = daemon.SignalGroup(pid, syscall.SIGTERM)
		deadline := time.Now().Add(5 * time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if !daemon.WaitGone(deadline, func() bool { return s.Running() || !s.child.Reaped() || daemon.GroupAlive(pid) }) {
			if err := s.kill(); err != nil {
				return fmt.Errorf("moto: stop: %w", err)
			}
		}
	}
	if err := os.Remove(filepath.Join(s.stateDir, pidFileName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("moto: stop: %w", err)
	}
	return nil
}

// kill sends SIGKILL to the process group and waits (bounded) until it is
// gone.
func (s *Server) kill() error {
	s.mu.Lock()
	pid := s.pid
	s.mu.Unlock()
	_ = daemon.SignalGroup(pid, syscall.SIGKILL)
	if !daemon.WaitGone(time.Now().Add(10*time.Second), func() bool { return s.Running() || !s.child.Reaped() || daemon.GroupAlive(pid) }) {
		return fmt.Errorf("process group %d still alive 10s after SIGKILL", pid)
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint()+"/moto-api/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		last = err
		select {
		case <-exited:
			return errors.New("moto_server exited")
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// findBin resolves the moto_server executable.
func findBin(explicit string) (string, error) {
	name := explicit
	if name == "" {
		name = os.Getenv(EnvBin)
	}
	if name == "" {
		name = "moto_server"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("moto: find %s: %w: %w; install it with `pip install 'moto[server]>=5.2,<5.3'` or set %s to its path",
			name, ErrNotInstalled, err, EnvBin)
	}
	return p, nil
}

// EnforceIAM switches IAM enforcement on or off through moto's
// /moto-api/reset-auth. On, every request from then on must be signed by a
// known identity (an IAM user's access key, or credentials from STS
// AssumeRole) and be allowed by its policies; moto's default "test"
// credentials are refused. Off, nothing is checked: moto's default.
// Resetting the emulator's state (Reset) removes every identity, so IAM is
// switched off before it.
func (s *Server) EnforceIAM(ctx context.Context, on bool) error {
	count := "inf"
	if on {
		count = "0"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint()+"/moto-api/reset-auth", strings.NewReader(count))
	if err != nil {
		return fmt.Errorf("moto: enforce IAM: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("moto: enforce IAM %v at %s: %w", on, s.Endpoint(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moto: enforce IAM %v at %s: /moto-api/reset-auth answered %s", on, s.Endpoint(), resp.Status)
	}
	return nil
}

// ActionLevelIAM reports whether the start-up hook's third part is in force
// in the server's log (HookActionLevelIAM): without it, enforcing IAM
// refuses every request of an identity whose policies name resources.
func (s *Server) ActionLevelIAM() bool { return s.actionLevel }
