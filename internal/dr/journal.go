package dr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Journal events.
const (
	EventPlan    = "plan"    // the operation began; Plan holds it
	EventStart   = "start"   // a step began
	EventEnd     = "end"     // a step ended; Error empty on success
	EventRefused = "refused" // a safety rule refused a step; Error says why
	EventAbandon = "abandon" // an operator gave the operation up; Error says why
	EventDone    = "done"    // the operation finished
)

// Entry is one line of a journal. Its first field is the time, so every
// line begins with {"time": (Read relies on it to recover lines).
type Entry struct {
	Time  time.Time `json:"time"`
	OpID  string    `json:"op_id"`
	Event string    `json:"event"`
	// Plan is set on EventPlan.
	Plan *Plan `json:"plan,omitempty"`
	// Step is the index of the step (EventStart, EventEnd, EventRefused).
	Step int    `json:"step"`
	Name string `json:"name,omitempty"`
	// Result is what a step did, such as where a snapshot is.
	Result string `json:"result,omitempty"`
	// Error is why a step failed or was refused, or why the operation was
	// abandoned. For a best-effort step Skipped is true: the operation
	// went on, and the step is owed.
	Error   string `json:"error,omitempty"`
	Skipped bool   `json:"skipped,omitempty"`
}

// Journal is an append-only record of DR operations in a directory: one
// file of JSON lines per operation (<dir>/<op-id>.jsonl), each step's start
// and end with its result. An operation without EventDone or EventAbandon
// is unfinished and is resumed from its journal.
//
// Appends are one write each, synced before they return; the first also
// syncs the directory. A crash in the middle of an append leaves a torn
// last line: readers ignore it and the next append cuts it off first, so
// lines are never glued together.
type Journal struct {
	Dir string
	// Now stamps entries and new operation ids; nil means time.Now.
	Now func() time.Time
}

// OpenJournal returns the journal in dir, creating dir.
func OpenJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: open %s: %w", dir, err)
	}
	return &Journal{Dir: dir}, nil
}

func (j *Journal) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

// Path returns the file of operation id.
func (j *Journal) Path(id string) string { return filepath.Join(j.Dir, id+".jsonl") }

// NewID returns an id for a new operation op that no operation in the
// journal has: NewOpID of the journal's clock, later by a millisecond at a
// time while taken (a clock that jumped back can repeat a time).
func (j *Journal) NewID(op Operation) string {
	t := j.now()
	for {
		id := NewOpID(t, op)
		if _, err := os.Lstat(j.Path(id)); errors.Is(err, os.ErrNotExist) {
			return id
		}
		t = t.Add(time.Millisecond)
	}
}

// Begin records the plan of a new operation id. It fails if id has a
// journal already: two operations never share a file.
func (j *Journal) Begin(id string, plan Plan, at time.Time) error {
	b, err := json.Marshal(Entry{Time: at, OpID: id, Event: EventPlan, Plan: &plan})
	if err != nil {
		return fmt.Errorf("journal: begin %s: %w", id, err)
	}
	f, err := os.OpenFile(j.Path(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("journal: begin %s: %w", id, err)
	}
	return j.finish(f, id, append(b, '\n'), true)
}

// Append writes e as one line, synced to disk before it returns. A torn
// last line left by a crash is cut off first.
func (j *Journal) Append(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	path := j.Path(e.OpID)
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	if err := cutTornTail(f); err != nil {
		f.Close()
		return fmt.Errorf("journal: append %s: %w", e.OpID, err)
	}
	return j.finish(f, e.OpID, append(b, '\n'), created)
}

// finish writes line at the end of f, syncs it (and the directory when the
// file is new) and closes it.
func (j *Journal) finish(f *os.File, id string, line []byte, created bool) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.WriteAt(line, end)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = syncDir(j.Dir)
	}
	if err != nil {
		return fmt.Errorf("journal: append %s: %w", id, err)
	}
	return nil
}

// cutTornTail truncates f after its last newline, dropping a partial last
// line left by a crash in the middle of a write.
func cutTornTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return err
	}
	size := fi.Size()
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, size-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return err
	}
	keep := int64(bytes.LastIndexByte(data, '\n') + 1)
	if err := f.Truncate(keep); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Read returns the entries of operation id. A torn last line (a crash
// while writing it) is ignored. A line that does not parse elsewhere is an
// error, unless it is a torn line with a whole line glued after it (written
// by paydr before appends cut torn tails): then the whole line is kept.
func (j *Journal) Read(id string) ([]Entry, error) {
	data, err := os.ReadFile(j.Path(id))
	if err != nil {
		return nil, fmt.Errorf("journal: read %s: %w", id, err)
	}
	var out []Entry
	lines := bytes.Split(data, []byte("\n"))
	for n, line := range lines {
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err == nil {
			out = append(out, e)
			continue
		}
		if n == len(lines)-1 {
			break // torn last line: no newline after it
		}
		if i := bytes.LastIndex(line, []byte(`{"time":`)); i > 0 && json.Unmarshal(line[i:], &e) == nil {
			out = append(out, e)
			continue
		}
		return nil, fmt.Errorf("journal: read %s: line %d is not a journal entry (%.60q); the file is damaged: read it, and give the operation up with paydr dr abandon if it cannot go on", j.Path(id), n+1, line)
	}
	return out, nil
}

// Unfinished is an operation whose journal has neither EventDone nor
// EventAbandon.
type Unfinished struct {
	ID   string
	Plan Plan
	// Done[i] is true when step i ended successfully.
	Done []bool
	// Results are the recorded results of finished steps.
	Results []string
	// Failed[i] is the error of a best-effort step i that failed and is
	// owed ("" otherwise).
	Failed []string
	// Refused is the last refusal recorded, if any.
	Refused string
	Started time.Time
}

// Next returns the index of the first step not done, or -1.
func (u *Unfinished) Next() int {
	for i, d := range u.Done {
		if !d {
			return i
		}
	}
	return -1
}

// Unfinished returns the newest operation that has not finished, or nil.
func (j *Journal) Unfinished() (*Unfinished, error) {
	ids, err := j.IDs()
	if err != nil {
		return nil, err
	}
	for i := len(ids) - 1; i >= 0; i-- {
		if j.closed(ids[i]) {
			continue
		}
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

// closed reports, from the last whole line of its file alone, whether
// operation id finished or was abandoned (the common case, so Unfinished
// need not parse every operation ever run). Any doubt answers false.
func (j *Journal) closed(id string) bool {
	f, err := os.Open(j.Path(id))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	n := min(fi.Size(), 4096)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, fi.Size()-n); err != nil {
		return false
	}
	end := bytes.LastIndexByte(tail, '\n')
	if end < 0 {
		return false
	}
	start := bytes.LastIndexByte(tail[:end], '\n') + 1
	if start == 0 && n < fi.Size() {
		return false // a last line longer than the tail read
	}
	var e Entry
	if json.Unmarshal(tail[start:end], &e) != nil {
		return false
	}
	return e.OpID == id && (e.Event == EventDone || e.Event == EventAbandon)
}

// replay rebuilds the state of an operation from its entries; nil when it
// finished, was abandoned, or never recorded its plan.
func replay(id string, entries []Entry) *Unfinished {
	var u *Unfinished
	for _, e := range entries {
		switch e.Event {
		case EventPlan:
			if e.Plan == nil {
				return nil
			}
			n := len(e.Plan.Steps)
			u = &Unfinished{ID: id, Plan: *e.Plan, Done: make([]bool, n), Results: make([]string, n), Failed: make([]string, n), Started: e.Time}
		case EventEnd:
			if u == nil || e.Step < 0 || e.Step >= len(u.Done) {
				continue
			}
			switch {
			case e.Error == "":
				u.Done[e.Step], u.Results[e.Step], u.Failed[e.Step] = true, e.Result, ""
			case e.Skipped && !u.Done[e.Step]:
				u.Failed[e.Step] = e.Error
			}
		case EventRefused:
			if u != nil {
				u.Refused = e.Error
			}
		case EventDone, EventAbandon:
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
