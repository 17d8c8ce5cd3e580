package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/moto"
	"paydr/internal/local/pg"
)

// DownReport is what Down stopped.
type DownReport struct {
	// Stopped names each stopped piece with its pid.
	Stopped []string
	// Ports are the ports the environment used, all free afterwards.
	Ports []int
	// Elapsed is Down's wall time.
	Elapsed time.Duration
}

// Down stops everything the environment in stateDir runs: the router,
// processors and fault proxy (pid files), the PostgreSQL servers (pg.Open on the data
// directories), and moto (moto.Open), deletes the regions' network
// namespaces and bridge (package netns, by the names the state directory
// gives them), then discards what only made sense
// while they ran: moto's resources live in its memory and are gone with it,
// so the Terraform state, the data directories, pid files and env.json are
// removed too. Logs stay. It does not run terraform destroy: against moto it
// is slow and fragile, and stopping the emulator leaves nothing behind.
//
// Down works from the pid files and data directories even when env.json is
// missing or damaged (an up that was killed), and is a no-op on an empty
// state directory.
func Down(ctx context.Context, stateDir string, out io.Writer) (*DownReport, error) {
	if out == nil {
		out = io.Discard
	}
	begin := time.Now()
	if stateDir == "" {
		stateDir = env.DefaultStateDir
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("down: %w", err)
	}
	l := env.Layout{Root: abs}
	m, _ := env.Load(abs)
	rep := &DownReport{}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var errs []error
	ports := map[int]bool{}
	if m != nil {
		ports[m.Router.Port] = true
		ports[m.Moto.Port] = true
		if m.FaultProxy != nil {
			ports[m.FaultProxy.Port] = true
		}
		for _, r := range m.Regions {
			ports[r.Processor.Port] = true
			ports[r.Database.Port] = true
		}
	}

	// Router and processors first, so no request reaches a stopping
	// database; then the fault proxy they sent AWS calls through.
	type proc struct {
		name, pidFile, want string
	}
	procs := []proc{{"router", l.RouterPID(), "router"}}
	for _, s := range env.Slots {
		procs = append(procs, proc{"processor " + string(s), l.ProcessorPID(s), "serve"},
			proc{"rpo guard " + string(s), l.RPOGuardPID(s), "rpo-guard"})
	}
	procs = append(procs, proc{"fault proxy", l.FaultProxyPID(), faultProxyCmd})
	for _, p := range procs {
		pid := daemon.ReadPIDFile(p.pidFile)
		if pid != 0 && daemon.Alive(pid, p.want) {
			if err := daemon.Stop(ctx, pid, p.want, 5*time.Second); err != nil {
				errs = append(errs, fmt.Errorf("down: stop %s: %w", p.name, err))
			} else {
				rep.Stopped = append(rep.Stopped, fmt.Sprintf("%s (pid %d)", p.name, pid))
				fmt.Fprintf(out, "stopped %s (pid %d)\n", p.name, pid)
			}
		}
		_ = os.Remove(p.pidFile)
	}

	// Databases: the data directories of both slots, and any other left in
	// the pg directory.
	dirs := map[string]bool{}
	for _, s := range env.Slots {
		dirs[l.DataDir(s)] = true
	}
	if m != nil {
		for _, r := range m.Regions {
			if r.Database.DataDir != "" {
				dirs[r.Database.DataDir] = true
			}
		}
	}
	if ents, err := os.ReadDir(l.PGDir()); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs[filepath.Join(l.PGDir(), e.Name())] = true
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		srv, err := pg.Open(d)
		if err != nil {
			continue
		}
		ports[srv.Port()] = true
		if pid := srv.PID(); pid != 0 {
			if err := srv.Stop(ctx); err != nil {
				if kerr := srv.Kill(); kerr != nil {
					errs = append(errs, fmt.Errorf("down: stop database %s: %w", d, errors.Join(err, kerr)))
					continue
				}
			}
			rep.Stopped = append(rep.Stopped, fmt.Sprintf("postgres %s (pid %d)", filepath.Base(d), pid))
			fmt.Fprintf(out, "stopped postgres %s (pid %d)\n", filepath.Base(d), pid)
		}
	}

	// Moto: kill it; its state is in memory and goes with it.
	if ms, err := moto.Open(l.MotoDir()); err == nil {
		ports[ms.Port()] = true
		if pid := ms.PID(); ms.Running() {
			if err := ms.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("down: stop moto: %w", err))
			} else {
				rep.Stopped = append(rep.Stopped, fmt.Sprintf("moto (pid %d)", pid))
				fmt.Fprintf(out, "stopped moto (pid %d)\n", pid)
			}
		}
	}
	// The regions' network namespaces and bridge, by name, once nothing
	// runs in them.
	if len(errs) == 0 {
		if deleted, err := deleteNetwork(ctx, abs); err != nil {
			errs = append(errs, fmt.Errorf("down: %w", err))
		} else if deleted {
			rep.Stopped = append(rep.Stopped, "network namespaces")
			fmt.Fprintf(out, "deleted the regions' network namespaces and bridge\n")
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("%w; the state directory %s is kept, run paydr down again", errors.Join(errs...), abs)
	}

	// Discard state that described the stopped processes.
	_ = os.RemoveAll(l.PGDir())
	_ = os.RemoveAll(l.RunDir())
	_ = os.Remove(filepath.Join(l.MotoDir(), "moto.json"))
	if stacks, err := filepath.Glob(filepath.Join(l.StackRoot(), "stacks", "*")); err == nil {
		for _, d := range stacks {
			for _, f := range []string{"terraform.tfstate", "terraform.tfstate.backup", "paydr-applied.json"} {
				_ = os.Remove(filepath.Join(d, f))
			}
		}
	}
	_ = os.Remove(l.Manifest())
	delete(ports, 0)
	for p := range ports {
		rep.Ports = append(rep.Ports, p)
	}
	sort.Ints(rep.Ports)
	rep.Elapsed = time.Since(begin)
	if len(rep.Stopped) == 0 {
		fmt.Fprintf(out, "nothing was running in %s\n", abs)
	}
	fmt.Fprintf(out, "down in %s; logs kept in %s\n", round(rep.Elapsed), l.LogDir())
	return rep, nil
}
