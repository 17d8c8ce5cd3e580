package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"paydr/internal/dr"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/stack"
)

// dbRoles says which slot's database writes and which streams from it: as
// env.json records them, or, without a usable env.json, as the stack
// deploys them (the primary slot writes).
type dbRoles struct {
	writer, standby env.Slot
	// names are the slots' region names, for messages.
	names map[env.Slot]string
	// fromManifest is true when the roles come from env.json.
	fromManifest bool
	// manifest is env.json's path.
	manifest string
}

// rolesOf reads the roles from prev, the manifest of the last up (nil when
// there is none or it could not be read).
func rolesOf(stateDir string, prev *env.Manifest) dbRoles {
	d := stack.Defaults()
	r := dbRoles{writer: env.SlotPrimary, standby: env.SlotSecondary, manifest: env.Path(stateDir),
		names: map[env.Slot]string{env.SlotPrimary: d.PrimaryRegion, env.SlotSecondary: d.SecondaryRegion}}
	if prev == nil {
		return r
	}
	for _, s := range env.Slots {
		if reg := prev.Regions[s]; reg != nil && reg.Name != "" {
			r.names[s] = reg.Name
		}
	}
	if w, ok := prev.Writer(); ok {
		r.writer, r.standby, r.fromManifest = w, w.Other(), true
	}
	return r
}

// label names a slot with its region: "primary (us-east-1)".
func (r dbRoles) label(s env.Slot) string { return fmt.Sprintf("%s (%s)", s, r.names[s]) }

// recorded says where the roles come from: "recorded in env.json".
func (r dbRoles) recorded() string {
	if r.fromManifest {
		return "recorded in env.json"
	}
	return "given by the default roles (no usable env.json)"
}

// dbFacts is what checkDatabases found in one slot's data directory.
type dbFacts struct {
	*pg.Inspection
	// inRecovery is what a running server answers to pg_is_in_recovery().
	inRecovery bool
}

// checkDatabases compares each slot's data directory with the role r gives
// it, before any server starts, and refuses what would start a database in
// another role: above all a fenced or superseded writer started writable
// beside the writer. It starts and stops nothing. It returns a summary of
// what it found.
func checkDatabases(ctx context.Context, l env.Layout, r dbRoles) (string, error) {
	facts := map[env.Slot]dbFacts{}
	for _, s := range env.Slots {
		in, err := pg.Inspect(ctx, l.DataDir(s))
		if err != nil {
			return "", fmt.Errorf("up: check database %s: %w", r.label(s), err)
		}
		f := dbFacts{Inspection: in}
		if in.Running {
			srv, err := pg.Open(in.DataDir)
			if err != nil {
				return "", fmt.Errorf("up: check database %s: %w", r.label(s), err)
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			f.inRecovery, err = srv.InRecovery(qctx)
			cancel()
			if err != nil {
				return "", fmt.Errorf("up: check database %s: it runs but does not answer: %w; see %s, or stop it (paydr down) and run paydr up again", r.label(s), err, srv.LogPath())
			}
		}
		facts[s] = f
	}
	if err := decideDatabases(r, facts[r.writer], facts[r.standby], l); err != nil {
		return "", err
	}
	return fmt.Sprintf("writer %s: %s; standby %s: %s (%s)",
		r.label(r.writer), summarize(facts[r.writer]), r.label(r.standby), summarize(facts[r.standby]), r.recorded()), nil
}

func summarize(f dbFacts) string {
	switch {
	case !f.Initialized:
		return "to be created"
	case f.Running:
		return fmt.Sprintf("running, timeline %d", f.Timeline)
	}
	return fmt.Sprintf("stopped, timeline %d", f.Timeline)
}

// decideDatabases is checkDatabases' judgement on what it found in the
// writer's and the standby's slots.
func decideDatabases(r dbRoles, w, s dbFacts, l env.Layout) error {
	wl, sl := r.label(r.writer), r.label(r.standby)
	nothing := "No database was started or stopped."
	stale := fmt.Sprintf("Run paydr dr status to see which database writes; if %s is stale (a DR operation stopped between promoting a database and recording it), set each regions.<slot>.database.role there to what the databases are, then run paydr up again.", r.manifest)
	// The standby slot's remedy: rebuild it from the writer, keeping its data.
	aside := l.PreservedDir()
	mv := fmt.Sprintf("mkdir -p %s && mv %s %s", aside, s.DataDir, filepath.Join(aside, "up-"+string(r.standby)))
	rebuild := fmt.Sprintf("Run paydr dr failback, which keeps a copy of it and rebuilds it as a standby of %s; or move it aside, which keeps its data (%s), and run paydr up again, which clones a fresh standby from %s.", wl, mv, wl)
	if !w.Running {
		rebuild = fmt.Sprintf("Move it aside, which keeps its data (%s), and run paydr up again, which clones a fresh standby from %s. (paydr dr failback, which keeps a copy of it and rebuilds it in place, needs %s running.)", mv, wl, wl)
	}

	// The writer's slot.
	switch {
	case w.Running && w.inRecovery:
		return fmt.Errorf("up: database %s, %s as the writer, runs as a standby (pg_is_in_recovery() is true), so no region would write. %s %s", wl, r.recorded(), nothing, stale)
	case !w.Initialized && s.Initialized:
		return fmt.Errorf("up: database %s, %s as the writer, has no cluster in %s while %s holds one: paydr up will not create an empty writer that %s cannot follow. %s Restore %s, or run paydr down (which removes both data directories) and paydr up to start afresh.",
			wl, r.recorded(), w.DataDir, sl, sl, nothing, w.DataDir)
	case w.Initialized && !w.Running && w.Standby:
		return fmt.Errorf("up: database %s, %s as the writer, has a standby's data directory (standby.signal; %s): started, it would be read-only and no region would write. %s %s", wl, r.recorded(), w.Describe(), nothing, stale)
	}

	// The standby's slot.
	switch {
	case !s.Initialized:
		return nil // cloned from the writer at start
	case s.Running && !s.inRecovery:
		return fmt.Errorf("up: database %s, %s as the standby, runs as a writer (pg_is_in_recovery() is false) beside %s: two writers. paydr up touches neither. %s", sl, r.recorded(), wl, stale)
	case s.Running:
		return nil // a running standby is adopted as it is
	case !s.Standby:
		// A promoted standby whose promotion was never recorded: the
		// recorded writer's history is part of its own, and it went further.
		if w.Initialized && s.Timeline > w.Timeline && w.CanFollow(s.Inspection) == nil {
			return fmt.Errorf("up: database %s, %s as the writer, is superseded: %s was promoted after it (timeline %d, %s's is %d) and holds everything it wrote, so starting %s writable would bring back a stale writer. %s %s",
				wl, r.recorded(), sl, s.Timeline, r.writer, w.Timeline, r.writer, nothing, stale)
		}
		return fmt.Errorf("up: database %s, %s as the standby, has a former writer's data directory (no standby.signal; %s): started, it would be a second writer beside %s. %s %s",
			sl, r.recorded(), s.Describe(), wl, nothing, rebuild)
	}
	if err := s.CanFollow(w.Inspection); err != nil {
		why := err.Error()
		var fe *pg.FollowError
		if errors.As(err, &fe) {
			why = fe.Reason
		}
		return fmt.Errorf("up: database %s, %s as the standby, cannot stream from %s, the writer: %s (%s). %s %s", sl, r.recorded(), wl, why, s.Describe(), nothing, rebuild)
	}
	return nil
}

// checkRoles is Up's step checking the data directories against the roles
// env.json records (checkDatabases), after refusing while a DR operation is
// unfinished.
func (u *upRun) checkRoles(ctx context.Context) (string, error) {
	if err := checkNoUnfinishedDR(u.o.StateDir); err != nil {
		return "", err
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return checkDatabases(cctx, u.l, rolesOf(u.o.StateDir, u.prev))
}

// checkNoUnfinishedDR refuses while a DR operation is unfinished in the
// state directory's journal: env.json records roles only when a promotion
// completes, so starting the databases in the middle of an operation (after
// a switchover's fence, before its promotion) would start the fenced writer
// and lift the fence.
func checkNoUnfinishedDR(stateDir string) error {
	j := &dr.Journal{Dir: env.Layout{Root: stateDir}.DRJournalDir()}
	u, err := j.Unfinished()
	if err != nil {
		return fmt.Errorf("up: read the DR journal: %w", err)
	}
	if u != nil {
		return fmt.Errorf("up: DR operation %s (%s from %s to %s) is unfinished (journal %s); starting the databases now could lift its fence: finish it with paydr dr %s, or give it up with paydr dr abandon --reason ..., then run paydr up again",
			u.ID, u.Plan.Op, u.Plan.From, u.Plan.To, j.Path(u.ID), u.Plan.Op)
	}
	return nil
}
