package localdr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"paydr/internal/dr"
	"paydr/internal/dr/drill"
	"paydr/internal/ledger"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/router"
)

// DrillEnv is the local environment as a drill sees it: the router as the
// failover name, faults done to local processes, health events from the
// router, and the writer's ledger.
type DrillEnv struct {
	b *Backend
}

// DrillEnv returns the backend's environment for drills.
func (b *Backend) DrillEnv() *DrillEnv { return &DrillEnv{b: b} }

// FailoverURL implements drill.Env: the router.
func (e *DrillEnv) FailoverURL() string {
	m, err := e.b.manifest()
	if err != nil {
		return ""
	}
	return m.Router.URL
}

// InjectFault implements drill.Env:
//   - kill-db: SIGKILL to the region's postmaster and its process group;
//   - kill-processor: SIGKILL to the region's processor (lifted by starting
//     it again from the manifest);
//   - cut-region: SIGSTOP to the region's database and processor process
//     groups: clients and health checks time out, replication pauses, and
//     nothing in the region can act (lifted by SIGCONT). It models AWS FIS
//     "Cross-Region: Connectivity" honestly enough for timing and loss;
//     unlike a network partition the region cannot act on its own
//     meanwhile.
func (e *DrillEnv) InjectFault(ctx context.Context, kind, region string) (func(context.Context) error, error) {
	slot, r, srv, err := e.region(region)
	if err != nil {
		return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
	}
	switch kind {
	case drill.FaultKillDB:
		if err := srv.Kill(); err != nil {
			return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
		}
		return func(context.Context) error { return nil }, nil
	case drill.FaultKillProcessor:
		pid := r.Processor.PID
		if !daemon.Alive(pid, "serve") {
			return nil, fmt.Errorf("localdr: inject %s: processor of %s (pid %d) is not running", kind, region, pid)
		}
		if err := daemon.SignalGroup(pid, syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
		}
		// The fault is real only once nothing answers on the processor's port.
		port := r.Processor.Port
		if !daemon.WaitGone(time.Now().Add(5*time.Second), func() bool { return daemon.Alive(pid, "") || daemon.Listening(port) }) {
			return nil, fmt.Errorf("localdr: inject %s: processor of %s still answers on port %d after SIGKILL to pid %d", kind, region, port, pid)
		}
		return func(ctx context.Context) error {
			m, err := e.b.manifest()
			if err != nil {
				return err
			}
			_, err = e.b.ensureProcessor(ctx, m, slot)
			return err
		}, nil
	case drill.FaultCutRegion:
		dbPID, procPID := srv.PID(), r.Processor.PID
		for _, pid := range []int{dbPID, procPID} {
			if err := daemon.SignalGroup(pid, syscall.SIGSTOP); err != nil {
				return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
			}
		}
		return func(context.Context) error {
			var errs []error
			for _, pid := range []int{dbPID, procPID} {
				if err := daemon.SignalGroup(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}, nil
	}
	return nil, fmt.Errorf("localdr: inject: unknown fault %q", kind)
}

// CutReplication implements drill.Env: region's standby server stops
// receiving WAL (pg.Server.DisconnectReplication) until restore.
func (e *DrillEnv) CutReplication(ctx context.Context, region string) (func(context.Context) error, error) {
	_, _, srv, err := e.region(region)
	if err != nil {
		return nil, fmt.Errorf("localdr: cut replication: %w", err)
	}
	if err := srv.DisconnectReplication(ctx); err != nil {
		return nil, fmt.Errorf("localdr: cut replication: %w", err)
	}
	return func(ctx context.Context) error {
		if !srv.Running() {
			return nil // a rebuild rewrites its replication settings
		}
		return srv.ReconnectReplication(ctx)
	}, nil
}

// region returns the named region's slot, manifest entry and database.
func (e *DrillEnv) region(name string) (env.Slot, *env.Region, *pg.Server, error) {
	m, err := e.b.manifest()
	if err != nil {
		return "", nil, nil, err
	}
	slot, r, err := slotOf(m, name)
	if err != nil {
		return "", nil, nil, err
	}
	srv, err := pg.Open(r.Database.DataDir)
	if err != nil {
		return "", nil, nil, err
	}
	return slot, r, srv, nil
}

// HealthEvents implements drill.Env from the router's events.
func (e *DrillEnv) HealthEvents(ctx context.Context) ([]drill.Event, error) {
	m, err := e.b.manifest()
	if err != nil {
		return nil, err
	}
	evs, err := e.b.routerClient(m.Router.URL).Events(ctx)
	if err != nil {
		return nil, fmt.Errorf("localdr: %w", err)
	}
	out := make([]drill.Event, 0, len(evs))
	for _, ev := range evs {
		kind := "route"
		if ev.Kind == router.HealthChange {
			kind = "unhealthy"
			if ev.Healthy {
				kind = "healthy"
			}
		}
		out = append(out, drill.Event{Time: ev.Time, Kind: kind, Region: ev.Target, Detail: ev.Reason})
	}
	return out, nil
}

// LedgerRows implements drill.Env: the payments with the prefix in the
// current writer's ledger.
func (e *DrillEnv) LedgerRows(ctx context.Context, prefix string) ([]drill.LedgerRow, error) {
	m, err := e.b.manifest()
	if err != nil {
		return nil, err
	}
	for _, r := range m.Regions {
		_, role, _, _ := dbState(ctx, r)
		if role != dr.RoleWriter {
			continue
		}
		l, err := ledger.Open(ledger.Options{DSN: r.Database.DSN, Region: r.Name, MaxConns: 1})
		if err != nil {
			return nil, fmt.Errorf("localdr: ledger of %s: %w", r.Name, err)
		}
		defer l.Close()
		ps, err := l.Payments(ctx)
		if err != nil {
			return nil, fmt.Errorf("localdr: ledger of %s: %w", r.Name, err)
		}
		var rows []drill.LedgerRow
		for _, p := range ps {
			if strings.HasPrefix(p.PaymentID, prefix) {
				rows = append(rows, drill.LedgerRow{PaymentID: p.PaymentID, AmountMinor: p.AmountMinor})
			}
		}
		return rows, nil
	}
	return nil, errors.New("localdr: no running writer to read the ledger from; run paydr dr status")
}

var _ drill.Env = (*DrillEnv)(nil)
