package process

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAliveAndSignalGroup(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := Watch(cmd)
	pid := child.PID
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL); <-child.Done() })

	if !Alive(pid, "sleep") || !GroupAlive(pid) {
		t.Fatalf("Alive(%d, sleep) = %v, GroupAlive = %v; want true, true", pid, Alive(pid, "sleep"), GroupAlive(pid))
	}
	if Alive(pid, "postgres") {
		t.Errorf("Alive(%d, postgres) = true for a sleep: a recycled pid would be mistaken for ours", pid)
	}
	if err := SignalGroup(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-child.Done()
	if !WaitGone(time.Now().Add(5*time.Second), func() bool { return Alive(pid, "") || GroupAlive(pid) }) {
		t.Errorf("process %d still alive after SIGKILL", pid)
	}
	if err := SignalGroup(pid, syscall.SIGTERM); err != nil {
		t.Errorf("SignalGroup(gone) = %v, want nil", err)
	}
}

func TestAliveRefusesInitAndNonsense(t *testing.T) {
	for _, pid := range []int{-1, 0, 1} {
		if Alive(pid, "") {
			t.Errorf("Alive(%d) = true", pid)
		}
	}
	if !Alive(os.Getpid(), "") {
		t.Error("Alive(self) = false")
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil || p <= 0 {
		t.Fatalf("FreePort() = %d, %v", p, err)
	}
	if err := SignalGroup(0, syscall.SIGTERM); err == nil || !strings.Contains(err.Error(), "no pid") {
		t.Errorf("SignalGroup(0) = %v, want a no-pid error", err)
	}
}

func TestChildRunningUntilReaped(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child := Watch(cmd)
	if !child.Running() || child.Reaped() {
		t.Fatalf("started child: Running %v, Reaped %v; want true, false", child.Running(), child.Reaped())
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Between the exit and the reaping the child is a zombie: not running.
	if !WaitGone(time.Now().Add(5*time.Second), child.Running) {
		t.Fatal("killed child still running after 5s")
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("killed child not reaped after 5s")
	}
	if !child.Reaped() || child.Running() {
		t.Errorf("reaped child: Reaped %v, Running %v; want true, false", child.Reaped(), child.Running())
	}
	var adopted *Child
	if !adopted.Reaped() || adopted.Running() {
		t.Errorf("nil child: Reaped %v, Running %v; want true, false (nothing of ours to reap)", adopted.Reaped(), adopted.Running())
	}
}

func TestPortsAndLogTail(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if !PortFree(port) || Listening(port) || Listening(0) {
		t.Errorf("free port %d: PortFree %v, Listening %v, Listening(0) %v; want true, false, false", port, PortFree(port), Listening(port), Listening(0))
	}
	log := t.TempDir() + "/x.log"
	if err := os.WriteFile(log, []byte("old\na\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := LogTail(log, 4, 2); got != "b\nc" {
		t.Errorf("LogTail(after old, 2) = %q, want \"b\\nc\"", got)
	}
	if got := LogTail(log, 4, 30); got != "a\nb\nc" {
		t.Errorf("LogTail(after old, 30) = %q, want \"a\\nb\\nc\"", got)
	}
	if got := LogTail(log+".missing", 0, 5); got != "" {
		t.Errorf("LogTail(missing) = %q, want empty", got)
	}
}
