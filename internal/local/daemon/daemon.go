// Package daemon tells about and signals the local processes paydr runs
// detached (the emulator, PostgreSQL servers, processors, the router):
// children reaped in the background, liveness that sees through zombies and
// recycled pids, process groups, process trees (a process and all its
// descendants, which faults act on: Tree, SignalTree), loopback ports, and
// the ends of their logs.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paydr/internal/local/env"
)

// Spec is a long-lived process to start detached.
type Spec struct {
	// Name names the process in errors and in its log, such as
	// "processor primary".
	Name string
	// Argv is its command line; Argv[0] is the executable.
	Argv []string
	// Env is its whole environment (see Environ).
	Env []string
	// LogPath is the file its stdout and stderr are appended to.
	LogPath string
	// PIDFile is the file its pid is written to; empty writes none.
	PIDFile string
	// Banner is the line written to the log before it starts, followed by
	// ": " and the command line; default "paydr starts <Name>".
	Banner string
}

// Start starts s in its own session (so it outlives paydr and a Ctrl-C in
// the terminal does not reach it), with stdin from /dev/null and its output
// appended to s.LogPath, and writes its pid to s.PIDFile. It returns the
// child, reaped when it exits (while this process lives). When the pid file
// cannot be written the child is killed: a process no pid file records
// could not be stopped.
func Start(s Spec) (*Child, error) {
	if len(s.Argv) == 0 {
		return nil, fmt.Errorf("start %s: no command", s.Name)
	}
	if err := os.MkdirAll(filepath.Dir(s.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", s.Name, err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	defer devnull.Close()
	banner := s.Banner
	if banner == "" {
		banner = "paydr starts " + s.Name
	}
	fmt.Fprintf(logf, "--- %s %s: %s\n", time.Now().UTC().Format(time.RFC3339), banner, strings.Join(s.Argv, " "))
	cmd := exec.Command(s.Argv[0], s.Argv[1:]...)
	cmd.Env = s.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: run %s: %w", s.Name, s.Argv[0], err)
	}
	child := Watch(cmd)
	if s.PIDFile == "" {
		return child, nil
	}
	err = os.MkdirAll(filepath.Dir(s.PIDFile), 0o755)
	if err == nil {
		err = os.WriteFile(s.PIDFile, []byte(strconv.Itoa(child.PID)+"\n"), 0o644)
	}
	if err != nil {
		_ = SignalGroup(child.PID, syscall.SIGKILL)
		return nil, fmt.Errorf("start %s: write pid file: %w", s.Name, err)
	}
	return child, nil
}

// envStateDir is the one PAYDR_* variable Environ passes on: it says where
// the environment lives, not how a child behaves.
const envStateDir = env.EnvStateDir

// Environ returns the environment of a child that talks to the AWS
// emulator: this process's environment without AWS_* variables and without
// PAYDR_* settings (PAYDR_STATE_DIR excepted), then the emulator's
// credentials, so real ones are never handed to the emulator, then set,
// sorted by name. The child's PAYDR_* settings are exactly those in set.
func Environ(set map[string]string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PAYDR_") && k != envStateDir || strings.HasPrefix(k, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true")
	for _, k := range slices.Sorted(maps.Keys(set)) {
		env = append(env, k+"="+set[k])
	}
	return env
}

// ReadPIDFile returns the pid recorded in the file at path, or 0 when there
// is none.
func ReadPIDFile(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Stop stops a process paydr started, SIGTERM to its group and SIGKILL
// after grace, and waits until it is gone, at most until ctx ends. want is
// as for Alive; a process that is not alive is not an error.
func Stop(ctx context.Context, pid int, want string, grace time.Duration) error {
	if !Alive(pid, want) {
		return nil
	}
	_ = SignalGroup(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for Alive(pid, want) {
		if time.Now().After(deadline) {
			_ = SignalGroup(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-ctx.Done():
			_ = SignalGroup(pid, syscall.SIGKILL)
			return fmt.Errorf("stop pid %d: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Child is a process this process started, waited for in the background so
// it is reaped as soon as it exits. A nil *Child stands for a process
// started elsewhere (adopted): there is nothing to reap.
type Child struct {
	PID  int
	done chan struct{}
}

// Watch waits for the started cmd in the background and returns it.
func Watch(cmd *exec.Cmd) *Child {
	c := &Child{PID: cmd.Process.Pid, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c
}

// Done returns a channel closed once the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Reaped reports whether the child has exited and been reaped, so its pid
// and process group are free. It is true for a nil Child.
func (c *Child) Reaped() bool {
	if c == nil {
		return true
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Running reports whether the child runs: not reaped, and not a zombie
// waiting for its reaper.
func (c *Child) Running() bool { return !c.Reaped() && Alive(c.PID, "") }

// Alive reports whether pid is a live process, not a zombie (PID 1 here may
// not reap orphans), whose command line contains want when want is not
// empty, so a recycled pid is not mistaken for ours.
func Alive(pid int, want string) bool {
	if pid <= 1 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	if want == "" {
		return true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	return strings.Contains(string(cmdline), want)
}

// GroupAlive reports whether a live, non-zombie process is left in process
// group pgid.
func GroupAlive(pgid int) bool {
	if pgid <= 1 || syscall.Kill(-pgid, 0) != nil {
		return false
	}
	// Zombies still count for kill(2); look for a live member.
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && Alive(pid, "") {
			return true
		}
	}
	return false
}

// SignalGroup sends sig to the process group pid leads, or to pid alone when
// it leads none. A process that is already gone is not an error.
func SignalGroup(pid int, sig syscall.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("signal %s: no pid", sig)
	}
	target := pid
	if g, err := syscall.Getpgid(pid); err == nil && g == pid {
		target = -pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s to %d: %w", sig, target, err)
	}
	return nil
}

// WaitGone polls every 20 ms until cond reports false, and reports whether
// it did before the deadline.
func WaitGone(deadline time.Time, cond func() bool) bool {
	for {
		if !cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WithDefaultDeadline bounds ctx by d when it has no deadline of its own.
func WithDefaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// LogTail returns the last n lines of the file at path written after byte
// offset, or "" when it cannot be read.
func LogTail(path string, offset int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || offset > int64(len(b)) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b[offset:]), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
