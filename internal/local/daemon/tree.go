package daemon

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A process tree is a process and its descendants, found by parent pid in
// /proc. It is what a fault must act on: PostgreSQL's backends, WAL writer
// and walsenders call setsid, so they leave the postmaster's process group
// and session but stay its children. Walking /proc (rather than putting each
// server in a cgroup) works for servers an earlier paydr started, needs no
// root and no particular cgroup layout (these machines mount cgroup v1 with
// v2 only beside it, at /sys/fs/cgroup/unified).

// procStat is what Tree reads of one process in /proc/<pid>/stat.
type procStat struct {
	pid, ppid int
	state     byte // R, S, D, T (stopped), t (traced), Z (zombie), ...
}

// readStat parses /proc/<pid>/stat. The command name is parenthesised and
// may hold spaces and parentheses; the fields after the last ')' are
// state, ppid, ...
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procStat{}, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, false
	}
	return procStat{pid: pid, ppid: ppid, state: f[0][0]}, true
}

// processes returns every process in /proc.
func processes() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]procStat, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			out = append(out, st)
		}
	}
	return out
}

// tree returns the stats of pid and its live descendants, parents before
// children; nil when pid is gone or a zombie. Zombies have no children (the
// kernel reparents them at exit) and take no signal, so they are left out.
func tree(pid int) []procStat {
	if pid <= 1 {
		return nil
	}
	root, ok := readStat(pid)
	if !ok || root.state == 'Z' {
		return nil
	}
	children := map[int][]procStat{}
	for _, st := range processes() {
		if st.state != 'Z' && st.pid != pid {
			children[st.ppid] = append(children[st.ppid], st)
		}
	}
	out := []procStat{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].pid]...)
	}
	return out
}

// Tree returns pid and every live (non-zombie) descendant of it, by parent
// pid in /proc, parents before children; nil when pid is not a live
// process. Processes fork and exit meanwhile: it is one look.
func Tree(pid int) []int {
	var out []int
	for _, st := range tree(pid) {
		out = append(out, st.pid)
	}
	return out
}

// FreezeWait bounds how long SignalTree waits for a tree to stop.
const FreezeWait = 5 * time.Second

// SignalTree sends sig to pid and to every descendant of it, so that no
// process of a server escapes a fault the way a setsid child escapes a
// signal to the process group. It returns the processes signalled; a pid
// that is not alive is not an error (nil, nil).
//
// So that the set is complete and stays so, the tree is frozen first:
// SIGSTOP to pid, then to each descendant, walking /proc again until a walk
// finds no process not yet stopped and every one is in the stopped state
// (a stopped process forks no more, and none is reparented away from the
// tree by its parent dying). Then sig is sent to every process, children
// first: SIGSTOP leaves the tree frozen; SIGKILL kills it; any other signal
// (SIGCONT, SIGTERM) is followed by SIGCONT, so the tree runs again and
// handles it. It fails when the tree has not stopped within FreezeWait.
func SignalTree(pid int, sig syscall.Signal) ([]int, error) {
	if pid <= 1 {
		return nil, fmt.Errorf("signal tree %s: no pid", sig)
	}
	frozen, err := freeze(pid)
	if err != nil {
		// Let it run again rather than leave it half stopped.
		for _, p := range frozen {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
		return nil, err
	}
	if sig == syscall.SIGSTOP {
		return frozen, nil
	}
	var errs []error
	for _, p := range slices.Backward(frozen) {
		if err := syscall.Kill(p, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %s to %d: %w", sig, p, err))
		}
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGCONT {
		for _, p := range frozen {
			_ = syscall.Kill(p, syscall.SIGCONT)
		}
	}
	return frozen, errors.Join(errs...)
}

// freeze stops pid's tree and returns its processes, parents first, once a
// walk finds every one of them stopped and no other.
func freeze(pid int) ([]int, error) {
	stopped := map[int]bool{}
	var order []int
	deadline := time.Now().Add(FreezeWait)
	for {
		all := tree(pid)
		if all == nil && len(order) == 0 {
			return nil, nil // gone before it was stopped
		}
		settled := true
		for _, st := range all {
			if !stopped[st.pid] {
				if err := syscall.Kill(st.pid, syscall.SIGSTOP); err != nil && !errors.Is(err, syscall.ESRCH) {
					return order, fmt.Errorf("signal tree of %d: SIGSTOP to %d: %w", pid, st.pid, err)
				}
				stopped[st.pid] = true
				order = append(order, st.pid)
				settled = false
			} else if st.state != 'T' && st.state != 't' {
				settled = false // signalled, not stopped yet
			}
		}
		if settled {
			// Members that exited meanwhile are dropped.
			live := make([]int, 0, len(all))
			for _, st := range all {
				live = append(live, st.pid)
			}
			return live, nil
		}
		if time.Now().After(deadline) {
			var running []string
			for _, st := range all {
				if st.state != 'T' && st.state != 't' {
					running = append(running, fmt.Sprintf("%d (state %c)", st.pid, st.state))
				}
			}
			return order, fmt.Errorf("signal tree of %d: not stopped %s after SIGSTOP: %s", pid, FreezeWait, strings.Join(running, ", "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Stopped reports whether pid is a live process in the stopped state
// (SIGSTOP).
func Stopped(pid int) bool {
	st, ok := readStat(pid)
	return ok && (st.state == 'T' || st.state == 't')
}

// AnyAlive reports whether any of pids is still a live, non-zombie
// process.
func AnyAlive(pids []int) bool {
	for _, p := range pids {
		if Alive(p, "") {
			return true
		}
	}
	return false
}
