package localdr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

// InjectFault implements drill.Env. Each fault acts on every process of
// what it hits, the root and all its descendants (daemon.SignalTree):
// PostgreSQL's backends, WAL writer and walsenders call setsid, so a
// signal to the postmaster's process group would miss them. Each is checked
// from outside before it counts as injected:
//   - kill-db: SIGKILL to the region's database (pg.Server.Kill); a query
//     must fail after;
//   - kill-processor: SIGKILL to the region's processor (lifted by starting
//     it again from the manifest); nothing may answer on its port after;
//   - cut-region: SIGSTOP to the region's database, processor and rpo
//     guard (pg.Server.Freeze): clients and health checks time out, replication
//     pauses, and nothing in the region can act (lifted by SIGCONT). No
//     query may succeed afterwards, on a connection opened before or a new
//     one, and the processor's /health must not answer. It models AWS FIS
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
		// The fault is real only once no query succeeds.
		qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		_, qerr := srv.InRecovery(qctx)
		cancel()
		if qerr == nil {
			return nil, fmt.Errorf("localdr: inject %s: the database of %s still answers a query after SIGKILL to every process of it", kind, region)
		}
		return func(context.Context) error { return nil }, nil
	case drill.FaultKillProcessor:
		pid := r.Processor.PID
		if !daemon.Alive(pid, "serve") {
			return nil, fmt.Errorf("localdr: inject %s: processor of %s (pid %d) is not running", kind, region, pid)
		}
		killed, err := daemon.SignalTree(pid, syscall.SIGKILL)
		if err != nil {
			return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
		}
		// The fault is real only once nothing answers on the processor's port.
		host, port := r.Host(), r.Processor.Port
		if !daemon.WaitGone(time.Now().Add(5*time.Second), func() bool { return daemon.AnyAlive(killed) || daemon.ListeningOn(host, port) }) {
			return nil, fmt.Errorf("localdr: inject %s: processor of %s still answers on %s:%d after SIGKILL to pid %d and its descendants", kind, region, host, port, pid)
		}
		return func(ctx context.Context) error {
			m, err := e.b.manifest()
			if err != nil {
				return err
			}
			_, err = e.b.ensureProcessor(ctx, m, slot)
			return err
		}, nil
	case drill.FaultPartition:
		return e.partition(ctx, slot, r, srv)
	case drill.FaultCutRegion:
		thaw, err := e.freezeRegion(ctx, r, srv)
		if err != nil {
			return nil, fmt.Errorf("localdr: inject %s: %w", kind, err)
		}
		return thaw, nil
	}
	return nil, fmt.Errorf("localdr: inject: unknown fault %q", kind)
}

// freezeRegion stops every process of the region's database, processor
// and rpo guard and checks that neither the database nor the processor
// answers; it returns what thaws them. On failure it thaws what it froze.
func (e *DrillEnv) freezeRegion(ctx context.Context, r *env.Region, srv *pg.Server) (func(context.Context) error, error) {
	procPID, guardPID := r.Processor.PID, 0
	if r.RPOGuard != nil && daemon.Alive(r.RPOGuard.PID, "rpo-guard") {
		guardPID = r.RPOGuard.PID
	}
	thaw := func(context.Context) error {
		var errs []error
		if err := srv.Thaw(); err != nil {
			errs = append(errs, err)
		}
		for _, pid := range []int{procPID, guardPID} {
			if daemon.Alive(pid, "") {
				if _, err := daemon.SignalTree(pid, syscall.SIGCONT); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	}
	if err := srv.Freeze(ctx); err != nil {
		return nil, err
	}
	for _, pid := range []int{procPID, guardPID} {
		if !daemon.Alive(pid, "") {
			continue
		}
		if _, err := daemon.SignalTree(pid, syscall.SIGSTOP); err != nil {
			_ = thaw(ctx)
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	if daemon.Alive(procPID, "") && e.answers(ctx, r.Processor.URL) {
		_ = thaw(ctx)
		return nil, fmt.Errorf("processor of %s still answers /health after SIGSTOP to pid %d and its descendants", r.Name, procPID)
	}
	return thaw, nil
}

// answers reports whether the processor at base answers /health, with any
// status, within half a second.
func (e *DrillEnv) answers(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := e.b.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
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
