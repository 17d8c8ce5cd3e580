package rpoguard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"paydr/internal/local/env"
	"paydr/internal/local/pg"
)

// DataDir is the database in a data directory, opened again at each call
// (pg.Open), so a guard follows it through restarts, rebuilds and port
// changes.
type DataDir string

// WALProgress implements Database.
func (d DataDir) WALProgress(ctx context.Context, standby string) (pg.WALProgress, error) {
	srv, err := pg.Open(string(d))
	if err != nil {
		return pg.WALProgress{}, err
	}
	return srv.WALProgress(ctx, standby)
}

// SetSynchronousStandby implements Database.
func (d DataDir) SetSynchronousStandby(ctx context.Context, name string) error {
	srv, err := pg.Open(string(d))
	if err != nil {
		return err
	}
	return srv.SetSynchronousStandby(ctx, name)
}

// NoManifestGrace is how long a guard waits for env.json to appear before
// it gives up: paydr up starts the guards before it writes env.json.
const NoManifestGrace = 10 * time.Minute

// ForSlot returns the guard of slot's database in the environment in
// stateDir, its settings read from env.json at every sample: the bound
// (Manifest.RPO), whether it is enforced on the slot, and the other slot's
// database as the standby. It stops (Run returns) once env.json, having
// been read, is gone (paydr down), or has not appeared within
// NoManifestGrace.
func ForSlot(stateDir string, slot env.Slot) *Guard {
	l := env.Layout{Root: stateDir}
	start, seen := time.Now(), false
	settings := func() (Settings, error) {
		m, err := env.Load(stateDir)
		if errors.Is(err, env.ErrNoManifest) && (seen || time.Since(start) > NoManifestGrace) {
			return Settings{}, fmt.Errorf("%w: %v", ErrStop, err)
		}
		if err != nil {
			return Settings{}, err
		}
		seen = true
		peer := m.Regions[slot.Other()]
		if m.Regions[slot] == nil || peer == nil {
			return Settings{}, fmt.Errorf("rpoguard: env.json has no region in slot %s or %s", slot, slot.Other())
		}
		set := Settings{Enforce: m.RPO.Enforces(slot), Standby: peer.Database.Name}
		if m.RPO != nil {
			set.Bound = time.Duration(m.RPO.Bound)
		}
		return set, nil
	}
	return &Guard{DB: DataDir(l.DataDir(slot)), Settings: settings}
}
