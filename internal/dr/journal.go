package dr

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Journal events.
const (
	EventPlan  = "plan"  // the operation began; Plan holds it
	EventStart = "start" // a step began
	EventEnd   = "end"   // a step ended; Error empty on success
	EventDone  = "done"  // the operation finished; Error empty on success
)

// Entry is one line of a journal.
type Entry struct {
	Time  time.Time `json:"time"`
	OpID  string    `json:"op_id"`
	Event string    `json:"event"`
	// Plan is set on EventPlan.
	Plan *Plan `json:"plan,omitempty"`
	// Step is the index of the step (EventStart, EventEnd).
	Step int    `json:"step"`
	Name string `json:"name,omitempty"`
	// Result is what a step did, such as where a snapshot is.
	Result string `json:"result,omitempty"`
	// Error is why a step or the operation failed; for a best-effort
	// step, Skipped is true and the operation went on.
	Error   string `json:"error,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
}

// Journal is an append-only record of DR operations in a directory: one
// file of JSON lines per operation (<dir>/<op-id>.jsonl), each step's start
// and end with its result. An operation without EventDone is unfinished and
// is resumed from its journal.
type Journal struct {
	Dir string
}

// OpenJournal returns the journal in dir, creating dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	return &Journal{Dir: dir}, nil
}

// Path returns the file of operation id.
func (j *Journal) Path(id string) string { return filepath.Join(j.Dir, id+".jsonl") }

// Append writes e as one line, synced to disk before it returns.
func (j *Journal) Append(e Entry) error {
	f, err := os.OpenFile(j.Path(e.OpID), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		f.Close()
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	return f.Close()
}

// Read returns the entries of operation id. A torn last line (a crash
// while writing it) is ignored.
func (j *Journal) Read(id string) ([]Entry, error) {
	f, err := os.Open(j.Path(id))
	if err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", id, err)
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			break
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", id, err)
	}
	return out, nil
}

// Unfinished is an operation whose journal has no EventDone.
type Unfinished struct {
	ID   string
	Plan Plan
	// Done[i] is true when step i ended successfully (or was skipped as
	// best effort).
	Done []bool
	// Results are the recorded results of finished steps.
	Results []string
	Started time.Time
}

// Unfinished returns the newest operation that has not finished, or nil.
func (j *Journal) Unfinished() (*Unfinished, error) {
	ids, err := j.IDs()
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		entries, err := j.Read(ids[i])
		if err != nil {
			return nil, err
		}
		u := replay(ids[i], entries)
		if u != nil {
			return u, nil
		}
	}
	return nil, nil
}

// replay rebuilds the state of an operation from its entries; nil when it
// finished (or never recorded its plan).
func replay(id string, entries []Entry) *Unfinished {
	var u *Unfinished
	for _, e := range entries {
		switch e.Event {
		case EventPlan:
			if e.Plan == nil {
				return nil
			}
			u = &Unfinished{ID: id, Plan: *e.Plan, Done: make([]bool, len(e.Plan.Steps)), Results: make([]string, len(e.Plan.Steps)), Started: e.Time}
		case EventEnd:
			if u != nil && e.Step >= 0 && e.Step < len(u.Done) && (e.Error == "" || e.Skipped) {
				u.Done[e.Step] = true
				u.Results[e.Step] = e.Result
			}
		case EventDone:
			return nil
		}
	}
	return u
}

// IDs returns the operation ids in the journal, oldest first (ids begin
// with a UTC timestamp).
func (j *Journal) IDs() ([]string, error) {
	des, err := os.ReadDir(j.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: list %s: %w", j.Dir, err)
	}
	var ids []string
	for _, de := range des {
		if name, ok := strings.CutSuffix(de.Name(), ".jsonl"); ok && !de.IsDir() {
			ids = append(ids, name)
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// NewOpID returns an operation id: the UTC time and the operation, such as
// "20260101T120000.000Z-switchover".
func NewOpID(now time.Time, op Operation) string {
	return now.UTC().Format("20060102T150405.000Z") + "-" + string(op)
}
