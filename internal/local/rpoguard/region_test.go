package rpoguard

import (
	"errors"
	"os"
	"testing"
	"time"

	"paydr/internal/local/env"
)

// TestForSlotSettings: a guard reads its settings from env.json, waits for
// it while paydr up has not written it yet, and stops once paydr down
// removed it.
func TestForSlotSettings(t *testing.T) {
	dir := t.TempDir()
	g := ForSlot(dir, env.SlotPrimary)
	if _, err := g.Settings(); err == nil || errors.Is(err, ErrStop) {
		t.Fatalf("Settings() before env.json exists = %v, want an error that is not ErrStop", err)
	}
	m := &env.Manifest{StateDir: dir, Regions: map[env.Slot]*env.Region{
		env.SlotPrimary:   {Slot: env.SlotPrimary, Name: "us-east-1", Database: env.Database{Name: "primary", Role: env.RoleWriter}},
		env.SlotSecondary: {Slot: env.SlotSecondary, Name: "us-west-2", Database: env.Database{Name: "secondary", Role: env.RoleStandby}},
	}}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Settings(); err != nil || got != (Settings{Standby: "secondary"}) {
		t.Errorf("Settings() without an rpo = %+v, %v; want nothing enforced, standby secondary", got, err)
	}
	m.RPO = &env.RPO{Bound: env.Duration(2 * time.Second), Enforced: []env.Slot{env.SlotPrimary}}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if got, err := g.Settings(); err != nil || got != (Settings{Enforce: true, Bound: 2 * time.Second, Standby: "secondary"}) {
		t.Errorf("Settings() = %+v, %v; want enforced, 2s, standby secondary", got, err)
	}
	if got, err := ForSlot(dir, env.SlotSecondary).Settings(); err != nil || got != (Settings{Bound: 2 * time.Second, Standby: "primary"}) {
		t.Errorf("secondary's Settings() = %+v, %v; want not enforced, 2s, standby primary", got, err)
	}
	if err := os.Remove(env.Path(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Settings(); !errors.Is(err, ErrStop) {
		t.Errorf("Settings() after env.json was removed = %v, want ErrStop", err)
	}
}
