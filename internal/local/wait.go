package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/router"
)

// The waits of Up: until a started process serves, and until the router
// sends traffic to a healthy writer. Each gives up early when the process
// exits (exited closes), showing the end of its log.

// waitProcessor waits up to 60 s until the processor p of slot s answers
// /health: 200 when healthy is wanted (the writer's), anything for a
// standby's (503). It returns the last status code.
func waitProcessor(ctx context.Context, s env.Slot, p env.Processor, healthy bool, exited <-chan struct{}) (int, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body, err := httpStatus(ctx, p.URL+"/health")
		if err == nil && (code == 200 || !healthy) {
			return code, nil
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("up: processor %s exited at start; log %s ends:\n%s", s, p.LogPath, logTail(p.LogPath, 15))
		case <-ctx.Done():
			return 0, fmt.Errorf("up: wait for processor %s: %w", s, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			last := fmt.Sprint(err)
			if err == nil {
				last = fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
			}
			return 0, fmt.Errorf("up: processor %s at %s not healthy after 60s (last /health: %s); see %s", s, p.URL, last, p.LogPath)
		}
	}
}

// waitRouterListening waits up to 30 s until the router accepts
// connections on port (addr is 127.0.0.1:port).
func waitRouterListening(ctx context.Context, addr string, port int, logPath string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for !daemon.Listening(port) {
		select {
		case <-exited:
			return fmt.Errorf("up: router exited at start; log %s ends:\n%s", logPath, logTail(logPath, 15))
		case <-ctx.Done():
			return fmt.Errorf("up: wait for router: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("up: router not listening on %s after 30s; see %s", addr, logPath)
		}
	}
	return nil
}

// waitRouted is Up's step waiting until the router routes to the writer.
func (u *upRun) waitRouted(ctx context.Context) (string, error) {
	return waitRouted(ctx, u.m, 90*time.Second)
}

// waitRouted waits until the router has checked the writer's processor,
// found it healthy, and sends traffic to it.
func waitRouted(ctx context.Context, m *env.Manifest, timeout time.Duration) (string, error) {
	w, ok := m.Writer()
	if !ok {
		return "", errors.New("up: wait for routing: no single writer recorded")
	}
	want := router.Primary
	if w != m.Router.Primary {
		want = router.Secondary
	}
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := routerClient(m.Router.URL).Status(ctx)
		if err == nil {
			last = fmt.Sprintf("active %s (%s)", st.Active, st.ActiveTarget)
			for _, t := range st.Targets {
				last += fmt.Sprintf("; %s healthy=%v checks=%d last=%q", t.Position, t.Healthy, t.Checks, t.LastResult)
				if t.Position == want && st.Active == want && t.Healthy && t.Checks > 0 && t.ConsecutiveFailures == 0 && !st.AllUnhealthy {
					return fmt.Sprintf("traffic -> %s %s (%s), after %d check(s)", want, t.Name, t.URL, t.Checks), nil
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("up: router %s does not route to a healthy %s after %s (%s); see %s and the processor logs", m.Router.URL, want, timeout, last, m.Router.LogPath)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("up: wait for routing: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
