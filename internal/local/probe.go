package local

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"paydr/internal/local/process"
)

// detached is a long-lived process recorded by a pid file.
type detached struct {
	Name    string
	Argv    []string
	Env     []string // full environment
	LogPath string
	PIDFile string
}

// startDetached starts p in its own session (so it outlives paydr up and a
// Ctrl-C in the terminal does not reach it), appending its output to
// p.LogPath, and writes its pid to p.PIDFile. It returns the child, reaped
// when it exits (while this process lives).
func startDetached(p detached) (*process.Child, error) {
	if err := os.MkdirAll(filepath.Dir(p.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", p.Name, err)
	}
	defer logf.Close()
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", p.Name, err)
	}
	defer devnull.Close()
	fmt.Fprintf(logf, "--- %s paydr starts %s: %s\n", time.Now().UTC().Format(time.RFC3339), p.Name, strings.Join(p.Argv, " "))
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Env = p.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: run %s: %w", p.Name, p.Argv[0], err)
	}
	child := process.Watch(cmd)
	err = os.MkdirAll(filepath.Dir(p.PIDFile), 0o755)
	if err == nil {
		err = os.WriteFile(p.PIDFile, []byte(strconv.Itoa(child.PID)+"\n"), 0o644)
	}
	if err != nil {
		_ = process.SignalGroup(child.PID, syscall.SIGKILL)
		return nil, fmt.Errorf("start %s: write pid file: %w", p.Name, err)
	}
	return child, nil
}

// readPIDFile returns the pid recorded in path, or 0.
func readPIDFile(path string) int {
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

// stopProcess stops a process we started (SIGTERM to its group, SIGKILL
// after grace) and waits until it is gone, at most until ctx ends.
func stopProcess(ctx context.Context, pid int, want string, grace time.Duration) error {
	if !process.Alive(pid, want) {
		return nil
	}
	_ = process.SignalGroup(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for process.Alive(pid, want) {
		if time.Now().After(deadline) {
			_ = process.SignalGroup(pid, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-ctx.Done():
			_ = process.SignalGroup(pid, syscall.SIGKILL)
			return fmt.Errorf("stop pid %d: %w", pid, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// httpStatus GETs url with a short timeout and returns the status code, or
// 0 and the error.
func httpStatus(ctx context.Context, url string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes(), nil
}

// logTail returns the last n lines of the file at path, indented.
func logTail(path string, n int) string {
	return "  " + strings.ReplaceAll(process.LogTail(path, 0, n), "\n", "\n  ")
}
