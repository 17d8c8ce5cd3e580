package daemon

import (
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary a helper process (see TestMain): it
// calls setsid, as PostgreSQL's backends do, then starts the children its
// value asks for and sleeps.
const helperEnv = "DAEMON_TEST_TREE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

// helper runs one process of a test tree. Modes: "leaf" sleeps; "parent"
// starts two "leaf" children and one "mid" child, which starts a "leaf";
// "forker" starts a new leaf every 5 ms, as a postmaster accepting
// connections does.
func helper(mode string) {
	_, _ = syscall.Setsid()
	spawn := func(mode string) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+mode)
		_ = cmd.Start()
		go cmd.Wait()
	}
	switch mode {
	case "parent":
		spawn("leaf")
		spawn("leaf")
		spawn("mid")
	case "mid":
		spawn("leaf")
	case "forker":
		// Light children, so the machine is not busy starting Go programs.
		argv := []string{"sleep", "60"}
		if p, err := exec.LookPath("setsid"); err == nil {
			argv = []string{p, "sleep", "60"}
		}
		go func() {
			for {
				cmd := exec.Command(argv[0], argv[1:]...)
				if cmd.Start() == nil {
					go cmd.Wait()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// A leaf whose parent is gone exits, so no test leaves orphans behind.
	ppid := os.Getppid()
	for os.Getppid() == ppid {
		time.Sleep(50 * time.Millisecond)
	}
}

// startTree starts a helper tree of mode and waits until it has at least n
// processes.
func startTree(t *testing.T, mode string, n int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := Watch(cmd)
	pid := child.PID
	t.Cleanup(func() {
		_, _ = SignalTree(pid, syscall.SIGKILL)
		<-child.Done()
	})
	// Ready once n processes run that called setsid.
	ready := func() bool {
		k := 0
		for _, p := range Tree(pid) {
			if g, err := syscall.Getpgid(p); err == nil && g == p {
				k++
			}
		}
		return k >= n
	}
	if !WaitGone(time.Now().Add(10*time.Second), func() bool { return !ready() }) {
		t.Fatalf("helper tree %s: %d processes after 10s, want %d", mode, len(Tree(pid)), n)
	}
	return pid
}

// TestSignalTreeReachesSetsidDescendants: a signal to the process group
// misses children that called setsid; SignalTree stops, continues and kills
// every one of them.
func TestSignalTreeReachesSetsidDescendants(t *testing.T) {
	root := startTree(t, "parent", 5)
	members := Tree(root) // "parent" makes exactly 5: ready means all called setsid
	if len(members) != 5 || members[0] != root {
		t.Fatalf("Tree(%d) = %v, want the root first and 4 descendants", root, members)
	}
	for _, p := range members[1:] {
		if g, _ := syscall.Getpgid(p); g == root {
			t.Fatalf("descendant %d is in the root's process group; the helpers should have called setsid", p)
		}
	}

	// The old way: the group of the root holds the root alone.
	if err := SignalGroup(root, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	var missed []int
	for _, p := range members[1:] {
		if !Stopped(p) {
			missed = append(missed, p)
		}
	}
	if len(missed) != 4 {
		t.Errorf("after SIGSTOP to the group, %v of %v still run, want all 4 descendants (the defect this replaces)", missed, members[1:])
	}
	_ = SignalGroup(root, syscall.SIGCONT)

	frozen, err := SignalTree(root, syscall.SIGSTOP)
	if err != nil {
		t.Fatalf("SignalTree(SIGSTOP) error = %v", err)
	}
	if !sameSet(frozen, members) {
		t.Errorf("SignalTree(SIGSTOP) = %v, want %v", frozen, members)
	}
	for _, p := range members {
		if !Stopped(p) {
			t.Errorf("process %d not stopped after SignalTree(SIGSTOP)", p)
		}
	}

	if _, err := SignalTree(root, syscall.SIGCONT); err != nil {
		t.Fatalf("SignalTree(SIGCONT) error = %v", err)
	}
	ok := WaitGone(time.Now().Add(2*time.Second), func() bool {
		return slices.ContainsFunc(members, Stopped)
	})
	if !ok {
		t.Errorf("some of %v still stopped after SignalTree(SIGCONT)", members)
	}

	killed, err := SignalTree(root, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("SignalTree(SIGKILL) error = %v", err)
	}
	if !sameSet(killed, members) {
		t.Errorf("SignalTree(SIGKILL) = %v, want %v", killed, members)
	}
	if !WaitGone(time.Now().Add(5*time.Second), func() bool { return AnyAlive(members) }) {
		t.Errorf("some of %v alive 5s after SignalTree(SIGKILL)", members)
	}
	if got, err := SignalTree(root, syscall.SIGKILL); got != nil || err != nil {
		t.Errorf("SignalTree(gone) = %v, %v; want nil, nil", got, err)
	}
}

// TestSignalTreeCatchesForks: a parent that keeps forking is frozen with
// every child it made, and the frozen tree no longer grows.
func TestSignalTreeCatchesForks(t *testing.T) {
	root := startTree(t, "forker", 4)
	frozen, err := SignalTree(root, syscall.SIGSTOP)
	if err != nil {
		t.Fatalf("SignalTree(SIGSTOP) error = %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	now := Tree(root)
	if !sameSet(frozen, now) {
		t.Errorf("tree after freezing = %d processes %v, want the %d frozen %v", len(now), now, len(frozen), frozen)
	}
	for _, p := range now {
		if !Stopped(p) {
			t.Errorf("process %d of the frozen tree runs", p)
		}
	}
	killed, err := SignalTree(root, syscall.SIGKILL)
	if err != nil {
		t.Fatal(err)
	}
	if !WaitGone(time.Now().Add(5*time.Second), func() bool { return AnyAlive(killed) }) {
		t.Errorf("some of %v alive 5s after SignalTree(SIGKILL)", killed)
	}
}

func TestTreeOfNothing(t *testing.T) {
	for _, pid := range []int{-1, 0, 1} {
		if got := Tree(pid); got != nil {
			t.Errorf("Tree(%d) = %v, want nil", pid, got)
		}
	}
	if _, err := SignalTree(0, syscall.SIGSTOP); err == nil {
		t.Error("SignalTree(0) error = nil, want a no-pid error")
	}
	if got := Tree(os.Getpid()); len(got) == 0 || got[0] != os.Getpid() {
		t.Errorf("Tree(self) = %v, want self first", got)
	}
}

func sameSet(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
