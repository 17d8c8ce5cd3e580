// Package process tells about and signals the local processes paydr runs
// detached (the emulator, PostgreSQL servers, processors, the router):
// liveness that sees through zombies and recycled pids, process groups, and
// free loopback ports.
package process

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
