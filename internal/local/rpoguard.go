package local

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
)

// startRPOGuards records the environment's bound on loss (UpOptions.RPOBound;
// the slots it is enforced on are kept from the last up, else the writer's)
// and starts, or adopts, each region's RPO guard (paydr rpo-guard), in the
// region's network namespace beside its database. A guard reads env.json
// at every sample, so a changed bound applies once this run writes it.
func (u *upRun) startRPOGuards(ctx context.Context) (string, error) {
	rpo := &env.RPO{Bound: env.Duration(u.o.RPOBound)}
	switch w, ok := u.m.Writer(); {
	case u.prev != nil && u.prev.RPO != nil:
		rpo.Enforced = slices.Clone(u.prev.RPO.Enforced)
	case ok:
		rpo.Enforced = []env.Slot{w}
	}
	u.m.RPO = rpo
	var parts []string
	for _, s := range env.Slots {
		d, err := u.startRPOGuard(ctx, s)
		if err != nil {
			return "", err
		}
		parts = append(parts, d)
	}
	bound := "rpo 0 (synchronous)"
	if rpo.Bound > 0 {
		bound = "bound " + time.Duration(rpo.Bound).String()
	}
	enforced := "nowhere"
	if len(rpo.Enforced) > 0 {
		var names []string
		for _, s := range rpo.Enforced {
			names = append(names, string(s))
		}
		enforced = "on " + strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s enforced %s; %s", bound, enforced, strings.Join(parts, "; ")), nil
}

// startRPOGuard starts (or adopts) the RPO guard of slot s.
func (u *upRun) startRPOGuard(ctx context.Context, s env.Slot) (string, error) {
	pidFile, logPath := u.l.RPOGuardPID(s), u.l.RPOGuardLog(s)
	ns, _ := u.place(s)
	argv, err := ns.Command(u.o.Exe, "rpo-guard", "--state-dir", u.o.StateDir, "--slot", string(s))
	if err != nil {
		return "", fmt.Errorf("up: start rpo guard %s: %w", s, err)
	}
	if pid := daemon.ReadPIDFile(pidFile); daemon.Alive(pid, "rpo-guard") {
		if g := u.prevGuard(s); g != nil && slices.Equal(g.Command, argv) {
			u.m.Regions[s].RPOGuard = &env.RPOGuard{PID: pid, PIDFile: pidFile, LogPath: logPath, Command: argv}
			return fmt.Sprintf("%s already running (pid %d)", s, pid), nil
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = daemon.Stop(cctx, pid, "rpo-guard", 5*time.Second)
		cancel()
	}
	pid, _, err := u.startDaemon(daemon.Spec{Name: "rpo guard " + string(s), Argv: argv, Env: u.exeEnv(nil), LogPath: logPath, PIDFile: pidFile})
	if err != nil {
		return "", err
	}
	u.m.Regions[s].RPOGuard = &env.RPOGuard{PID: pid, PIDFile: pidFile, LogPath: logPath, Command: argv}
	return fmt.Sprintf("%s (pid %d)", s, pid), nil
}

// prevGuard returns slot s's guard as the last up recorded it, or nil.
func (u *upRun) prevGuard(s env.Slot) *env.RPOGuard {
	if u.prev == nil || u.prev.Regions[s] == nil {
		return nil
	}
	return u.prev.Regions[s].RPOGuard
}
