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
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL); <-exited })

	if !Alive(pid, "sleep") || !GroupAlive(pid) {
		t.Fatalf("Alive(%d, sleep) = %v, GroupAlive = %v; want true, true", pid, Alive(pid, "sleep"), GroupAlive(pid))
	}
	if Alive(pid, "postgres") {
		t.Errorf("Alive(%d, postgres) = true for a sleep: a recycled pid would be mistaken for ours", pid)
	}
	if err := SignalGroup(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
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
