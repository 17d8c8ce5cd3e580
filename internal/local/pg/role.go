package pg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"paydr/internal/local/daemon"
)

// A data directory's role is its files' business: PostgreSQL starts a
// server as a read-only standby exactly when standby.signal is present, and
// as a writer otherwise. StartStandby and StartPrimary check it before
// running postgres, so no caller can start a former primary's data directory
// as a "standby" and get a second writer, nor a standby's as a "primary".

// ErrNotStandby is matched (errors.Is) by the error StartStandby returns for
// a data directory that holds a cluster but no standby.signal: a primary's,
// typically a fenced or superseded writer's. Started, it would accept writes.
var ErrNotStandby = errors.New("not a standby's data directory")

// ErrIsStandby is matched (errors.Is) by the error StartPrimary returns for a
// data directory configured as a standby (standby.signal): started, it would
// be read-only.
var ErrIsStandby = errors.New("a standby's data directory, not a primary's")

// FollowError reports why a standby's data directory cannot stream from a
// primary: another database system, or a timeline or position the primary's
// history does not contain.
type FollowError struct {
	// Primary names the primary: its data directory's base name, which is
	// the server's name unless Options.Name said otherwise.
	Primary string
	// Reason says what stands in the way, such as "its WAL reaches 0/3000148
	// on timeline 1, past 0/3000110, where secondary's history left timeline
	// 1: it holds writes secondary never had".
	Reason string
}

func (e *FollowError) Error() string { return "cannot stream from " + e.Primary + ": " + e.Reason }

// TimelineSwitch is one line of a timeline history file: Timeline ended at
// End, where its successor began.
type TimelineSwitch struct {
	Timeline int
	End      LSN
}

// Inspection is what a data directory holds, read from its files (the
// control file through pg_controldata, standby.signal, the timeline history
// files in pg_wal) without connecting to a server, so that it can be checked
// before anything starts.
type Inspection struct {
	// DataDir is the absolute data directory.
	DataDir string
	// Initialized is false for a missing or empty directory; nothing below
	// is set then.
	Initialized bool
	// Running reports whether a postmaster runs from the directory.
	Running bool
	// Standby reports whether standby.signal is present: started, the server
	// is a read-only standby; without it, a writer.
	Standby bool
	// SystemID is the database system identifier; a standby streams only
	// from a primary with the same one.
	SystemID uint64
	// State is the cluster state pg_controldata reports: "shut down",
	// "shut down in recovery", "in production", "in archive recovery", ...
	State string
	// Timeline is the newest timeline the cluster has reached: its last
	// checkpoint's, or a newer one whose history file a promotion wrote.
	Timeline int
	// Position is how far the cluster's WAL reaches at least: the later of
	// its last checkpoint and its minimum recovery point. PositionTimeline is
	// the timeline of that position.
	Position         LSN
	PositionTimeline int
	// History is Timeline's history, oldest first: where each earlier
	// timeline ended. It is nil on timeline 1, and when the history file is
	// missing (then HistoryKnown is false).
	History      []TimelineSwitch
	HistoryKnown bool
}

// Inspect reads what the data directory dataDir holds.
func Inspect(ctx context.Context, dataDir string) (*Inspection, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("pg: inspect %s: %w", dataDir, err)
	}
	in := &Inspection{DataDir: abs}
	if !initialized(abs) {
		return in, nil
	}
	in.Initialized = true
	if pid, err := readPostmasterPID(abs); err == nil && daemon.Alive(pid, "postgres") {
		in.Running = true
	}
	in.Standby = hasStandbySignal(abs)
	cd, err := controlData(ctx, abs)
	if err != nil {
		return nil, fmt.Errorf("pg: inspect %s: %w", abs, err)
	}
	in.State = cd["Database cluster state"]
	if in.SystemID, err = strconv.ParseUint(cd["Database system identifier"], 10, 64); err != nil {
		return nil, fmt.Errorf("pg: inspect %s: database system identifier %q: %w", abs, cd["Database system identifier"], err)
	}
	ckpt, err := ParseLSN(cd["Latest checkpoint location"])
	if err != nil {
		return nil, fmt.Errorf("pg: inspect %s: %w", abs, err)
	}
	ckptTLI, err := strconv.Atoi(cd["Latest checkpoint's TimeLineID"])
	if err != nil {
		return nil, fmt.Errorf("pg: inspect %s: checkpoint timeline %q: %w", abs, cd["Latest checkpoint's TimeLineID"], err)
	}
	in.Position, in.PositionTimeline = ckpt, ckptTLI
	// A standby's minimum recovery point is how far it must replay before it
	// is consistent: it has WAL at least that far.
	if minRec, err := ParseLSN(cd["Minimum recovery ending location"]); err == nil && minRec > ckpt {
		if tli, err := strconv.Atoi(cd["Min recovery ending loc's timeline"]); err == nil && tli > 0 {
			in.Position, in.PositionTimeline = minRec, tli
		}
	}
	// A promotion writes the new timeline's history file at once; the
	// control file learns the timeline only at the next checkpoint.
	in.Timeline = ckptTLI
	if newest := newestHistory(abs); newest > in.Timeline {
		in.Timeline = newest
	}
	if in.Timeline == 1 {
		in.HistoryKnown = true
	} else if h, err := readHistory(abs, in.Timeline); err == nil {
		in.History, in.HistoryKnown = h, true
	}
	return in, nil
}

// Describe says in a few words what the directory holds, such as
// `cluster "shut down" on timeline 1 at 0/3000148`.
func (in *Inspection) Describe() string {
	if !in.Initialized {
		return "no cluster"
	}
	return fmt.Sprintf("cluster %q on timeline %d at %s", in.State, in.Timeline, in.Position)
}

// CanFollow reports why a standby started from in could not stream from
// the primary whose data directory is primary (a *FollowError), or nil when
// nothing in their files stands in the way. An uninitialized in can follow:
// it is cloned from the primary. The check is what PostgreSQL itself
// refuses: another database system, or a timeline the primary's history
// does not hold, or WAL on an older timeline past the point where the
// primary's history left it (writes the primary never had).
//
// Position is a lower bound of how far in's WAL reaches, so nil does not
// promise streaming: StartStandby also waits for it.
func (in *Inspection) CanFollow(primary *Inspection) error {
	if !in.Initialized {
		return nil
	}
	name := filepath.Base(primary.DataDir)
	refuse := func(format string, args ...any) error {
		return &FollowError{Primary: name, Reason: fmt.Sprintf(format, args...)}
	}
	if !primary.Initialized {
		return refuse("%s holds no cluster", primary.DataDir)
	}
	if in.SystemID != primary.SystemID {
		return refuse("it is another database system (identifier %d, %s's %d): it was never copied from %s", in.SystemID, name, primary.SystemID, name)
	}
	tli := in.PositionTimeline
	if tli == primary.Timeline {
		return nil
	}
	if tli > primary.Timeline {
		return refuse("it is on timeline %d, newer than %s's %d", tli, name, primary.Timeline)
	}
	if !primary.HistoryKnown {
		return nil // cannot tell from the files; the start will
	}
	for _, sw := range primary.History {
		if sw.Timeline != tli {
			continue
		}
		if in.Position > sw.End {
			return refuse("its WAL reaches %s on timeline %d, past %s, where %s's history left timeline %d: it holds writes %s never had",
				in.Position, tli, sw.End, name, tli, name)
		}
		return nil
	}
	return refuse("its timeline %d is not in %s's history (timeline %d)", tli, name, primary.Timeline)
}

// hasStandbySignal reports whether dataDir holds standby.signal.
func hasStandbySignal(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, "standby.signal"))
	return err == nil
}

// checkSignal is the last check before postgres runs from dataDir: a server
// started as a standby must find standby.signal, one started as a primary
// must not.
func checkSignal(dataDir string, standby bool) error {
	switch has := hasStandbySignal(dataDir); {
	case standby && !has:
		return fmt.Errorf("%w: %s has no standby.signal; started, it would accept writes", ErrNotStandby, dataDir)
	case !standby && has:
		return fmt.Errorf("%w: %s has standby.signal; started, it would be read-only", ErrIsStandby, dataDir)
	}
	return nil
}

// controlData runs pg_controldata on dataDir and returns its fields.
func controlData(ctx context.Context, dataDir string) (map[string]string, error) {
	binDir, err := FindBinDir("")
	if err != nil {
		return nil, err
	}
	bin, err := binary(binDir, "pg_controldata")
	if err != nil {
		return nil, err
	}
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-D", dataDir)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("pg_controldata: %w: %s", err, bytes.TrimSpace(out))
	}
	fields := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return fields, nil
}

// newestHistory returns the highest timeline with a history file in
// dataDir's pg_wal, or 0.
func newestHistory(dataDir string) int {
	names, _ := filepath.Glob(filepath.Join(dataDir, "pg_wal", "*.history"))
	newest := 0
	for _, n := range names {
		tli, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(n), ".history"), 16, 32)
		if err == nil && int(tli) > newest {
			newest = int(tli)
		}
	}
	return newest
}

// readHistory parses the history file of timeline tli: one line per earlier
// timeline, "<timeline>\t<switch point>\t<reason>".
func readHistory(dataDir string, tli int) ([]TimelineSwitch, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", fmt.Sprintf("%08X.history", tli)))
	if err != nil {
		return nil, err
	}
	var out []TimelineSwitch
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		t, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("timeline history %d: %q: %w", tli, line, err)
		}
		end, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history %d: %w", tli, err)
		}
		out = append(out, TimelineSwitch{Timeline: t, End: end})
	}
	return out, nil
}
