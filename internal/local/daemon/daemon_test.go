package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/env"
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

	// Start returns once exec began; the new command line is set a moment
	// later.
	WaitGone(time.Now().Add(5*time.Second), func() bool { return !Alive(pid, "sleep") })
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

func TestSignalGroupNeedsAPID(t *testing.T) {
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

func TestStartDetached(t *testing.T) {
	dir := t.TempDir()
	logPath, pidFile := filepath.Join(dir, "logs", "x.log"), filepath.Join(dir, "run", "x.pid")
	child, err := Start(Spec{Name: "sleeper", Argv: []string{"sleep", "30"}, LogPath: logPath, PIDFile: pidFile})
	if err != nil {
		t.Fatalf("Start error = %v", err)
	}
	pid := child.PID
	t.Cleanup(func() { _ = SignalGroup(pid, syscall.SIGKILL); <-child.Done() })
	if got := ReadPIDFile(pidFile); got != pid {
		t.Errorf("ReadPIDFile(%s) = %d, want the child %d", pidFile, got, pid)
	}
	if sid := session(t, pid); sid != pid {
		t.Errorf("session of %d = %d, want its own session %d", pid, sid, pid)
	}
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "paydr starts sleeper: sleep 30") {
		t.Errorf("log = %q, want the banner naming the command", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Stop(ctx, pid, "sleep", time.Second); err != nil {
		t.Fatalf("Stop error = %v", err)
	}
	if Alive(pid, "sleep") {
		t.Errorf("pid %d alive after Stop", pid)
	}
	if err := Stop(ctx, pid, "sleep", time.Second); err != nil {
		t.Errorf("Stop(gone) = %v, want nil", err)
	}
}

// TestStartKillsWhatNoPIDFileRecords: a child whose pid file cannot be
// written is killed, since nothing could stop it later.
func TestStartKillsWhatNoPIDFileRecords(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	arg := strconv.Itoa(1000 + os.Getpid()%1000) // tells this test's sleep from others
	_, err := Start(Spec{Name: "sleeper", Argv: []string{"sleep", arg}, LogPath: filepath.Join(dir, "x.log"), PIDFile: filepath.Join(blocker, "x.pid")})
	if err == nil || !strings.Contains(err.Error(), "start sleeper: write pid file") {
		t.Fatalf("Start with an unwritable pid file = %v, want a write pid file error", err)
	}
	running := func() bool {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			if pid, err := strconv.Atoi(e.Name()); err == nil && Alive(pid, "sleep\x00"+arg) {
				return true
			}
		}
		return false
	}
	if !WaitGone(time.Now().Add(5*time.Second), running) {
		t.Errorf("sleep %s still runs after Start failed to record it", arg)
	}
}

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"garbage": "x\n", "zero": "0\n", "negative": "-3"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := ReadPIDFile(p); got != 0 {
			t.Errorf("ReadPIDFile(%q) = %d, want 0", content, got)
		}
	}
	if got := ReadPIDFile(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("ReadPIDFile(missing) = %d, want 0", got)
	}
}

// TestEnviron: a child of the emulator gets the emulator's credentials,
// never real ones, and exactly the PAYDR_* settings it is given, besides
// the state directory.
func TestEnviron(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "real")
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("PAYDR_REGION", "eu-west-1")
	t.Setenv(env.EnvStateDir, "/state")
	t.Setenv("PAYDR_TEST_KEEP_OUT", "1")
	got := Environ(map[string]string{"PAYDR_REGION": "us-east-1", "PAYDR_DB_DSN": "postgres://x"})
	var paydr, aws []string
	for _, kv := range got {
		switch {
		case strings.HasPrefix(kv, "PAYDR_"):
			paydr = append(paydr, kv)
		case strings.HasPrefix(kv, "AWS_"):
			aws = append(aws, kv)
		}
	}
	if diff := cmp.Diff([]string{env.EnvStateDir + "=/state", "PAYDR_DB_DSN=postgres://x", "PAYDR_REGION=us-east-1"}, paydr); diff != "" {
		t.Errorf("Environ PAYDR_* mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true"}, aws); diff != "" {
		t.Errorf("Environ AWS_* mismatch (-want +got):\n%s", diff)
	}
}

// session returns the session id of pid, from /proc.
func session(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// After the parenthesised command name: state ppid pgrp session ...
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatal(err)
	}
	return sid
}
