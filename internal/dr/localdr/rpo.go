package localdr

// The bound on loss (dr enforce-rpo, relax-rpo) locally: env.json records
// the slots it is enforced on (env.RPO), and each region's RPO guard
// (package rpoguard, run by paydr up) acts on it within a sample.

import (
	"context"
	"fmt"
	"time"

	"paydr/internal/dr"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/rpoguard"
)

// boundText renders the environment's bound.
func boundText(r *env.RPO) string {
	if r.Bound == 0 {
		return "rpo 0 (every commit waits for the standby)"
	}
	return "bound " + time.Duration(r.Bound).String()
}

// guardRunning reports whether the region's RPO guard runs.
func guardRunning(r *env.Region) bool {
	return r.RPOGuard != nil && daemon.Alive(r.RPOGuard.PID, "rpo-guard")
}

// enforceRPO records that the bound is enforced on slot's writes, so its
// guard makes commits wait for the standby once it lags the bound. Under
// RPO 0 it also makes them wait at once.
func (b *Backend) enforceRPO(ctx context.Context, m *env.Manifest, slot env.Slot, srv *pg.Server) (string, error) {
	r := m.Regions[slot]
	if m.RPO == nil {
		return fmt.Sprintf("no bound on loss to enforce on %s: this environment has none (run paydr up to set --rpo-bound)", r.Name), nil
	}
	if !m.RPO.Enforces(slot) {
		m.RPO.SetEnforced(slot, true)
		if err := m.Save(); err != nil {
			return "", fmt.Errorf("localdr: enforce rpo %s: %w", r.Name, err)
		}
	}
	peer := m.Regions[slot.Other()].Database.Name
	if m.RPO.Bound == 0 && srv.Running() {
		if err := srv.SetSynchronousStandby(ctx, peer); err != nil {
			return "", fmt.Errorf("localdr: enforce rpo %s: %w", r.Name, err)
		}
	}
	if !guardRunning(r) {
		if m.RPO.Bound == 0 {
			return fmt.Sprintf("%s enforced on %s: commits wait for standby %s (its rpo guard is not running; paydr up starts it)", boundText(m.RPO), r.Name, peer), nil
		}
		return "", fmt.Errorf("localdr: enforce rpo %s: %s recorded as enforced, but the region's rpo guard is not running, so nothing enforces it; run paydr up to start it", r.Name, boundText(m.RPO))
	}
	return fmt.Sprintf("%s enforced on %s by its rpo guard (pid %d): commits wait for standby %s once it lags about the bound", boundText(m.RPO), r.Name, r.RPOGuard.PID, peer), nil
}

// relaxRPO records that no bound is enforced on slot's writes and lets its
// database's commits wait for no standby, running (ALTER SYSTEM) or
// stopped (postgresql.auto.conf).
func (b *Backend) relaxRPO(ctx context.Context, m *env.Manifest, slot env.Slot, srv *pg.Server) (string, error) {
	r := m.Regions[slot]
	if m.RPO.Enforces(slot) {
		m.RPO.SetEnforced(slot, false)
		if err := m.Save(); err != nil {
			return "", fmt.Errorf("localdr: relax rpo %s: %w", r.Name, err)
		}
	}
	if err := srv.SetSynchronousStandby(ctx, ""); err != nil {
		return "", fmt.Errorf("localdr: relax rpo %s: %w", r.Name, err)
	}
	if srv.Running() {
		// The guard may have read env.json just before it changed and set
		// the standby again; by its next sample it has seen the change.
		time.Sleep(2 * rpoguard.DefaultInterval)
		if err := srv.SetSynchronousStandby(ctx, ""); err != nil {
			return "", fmt.Errorf("localdr: relax rpo %s: %w", r.Name, err)
		}
		return fmt.Sprintf("no bound on loss enforced on %s: its commits wait for no standby", r.Name), nil
	}
	return fmt.Sprintf("no bound on loss enforced on %s: its commits will wait for no standby when it starts (postgresql.auto.conf)", r.Name), nil
}

// rpoCalls says what enforce-rpo and relax-rpo do, for a dry run.
func (b *Backend) rpoCalls(m *env.Manifest, s dr.Step, r *env.Region) []string {
	db := r.Database
	switch s.Action {
	case dr.ActionEnforceRPO:
		if m.RPO == nil {
			return []string{"nothing: this environment has no bound on loss"}
		}
		peer := m.Regions[r.Slot.Other()].Database.Name
		calls := []string{fmt.Sprintf("record the %s as enforced on %s in %s", boundText(m.RPO), r.Slot, env.Path(b.stateDir))}
		if m.RPO.Bound == 0 {
			return append(calls, fmt.Sprintf("ALTER SYSTEM SET synchronous_standby_names = '\"%s\"'; SELECT pg_reload_conf() on port %d", peer, db.Port))
		}
		return append(calls, fmt.Sprintf("rpo guard of %s: ALTER SYSTEM SET synchronous_standby_names = '\"%s\"' on port %d once the standby's oldest unflushed WAL is %s old (less the time that takes), RESET once it is within %s",
			r.Slot, peer, db.Port, time.Duration(m.RPO.Bound)-rpoguard.Policy{Interval: rpoguard.DefaultInterval}.Margin(), time.Duration(m.RPO.Bound)/2))
	case dr.ActionRelaxRPO:
		return []string{fmt.Sprintf("record no bound as enforced on %s in %s", r.Slot, env.Path(b.stateDir)),
			fmt.Sprintf("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf() on port %d (stopped: remove it from %s/postgresql.auto.conf)", db.Port, db.DataDir)}
	}
	return nil
}

// rpoStatus fills the bound on loss into st: the deployment's (RPOTarget,
// or RPOZero), each region's as enforced (Region.RPOBound, or
// Synchronous), and notes for what those fields cannot say: a guard that
// is not running, and commits waiting for the standby now.
func rpoStatus(st *dr.Status, m *env.Manifest, syncNow bool) {
	if m.RPO == nil {
		return
	}
	st.RPOTarget = time.Duration(m.RPO.Bound)
	st.RPOZero = m.RPO.Bound == 0
	for i := range st.Regions {
		reg := &st.Regions[i]
		slot := env.Slot(reg.Slot)
		r := m.Regions[slot]
		if r == nil || !m.RPO.Enforces(slot) {
			continue
		}
		reg.RPOBound = time.Duration(m.RPO.Bound)
		reg.Synchronous = m.RPO.Bound == 0
		if m.RPO.Bound == 0 {
			continue
		}
		if !guardRunning(r) {
			st.Notes = append(st.Notes, fmt.Sprintf("the rpo guard of %s is not running, so its bound is not enforced; run paydr up", r.Name))
		}
		if syncNow && reg.Role == dr.RoleWriter {
			st.Notes = append(st.Notes, fmt.Sprintf("commits on %s wait for its standby now: its loss window reached the bound", r.Name))
		}
	}
}
