package dr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// LockInfo says who holds the DR lock.
type LockInfo struct {
	Owner string    `json:"owner"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Op    string    `json:"op"`
	Time  time.Time `json:"time"`
}

// Locker serializes DR operations: one operator, one operation at a time.
type Locker interface {
	// Lock takes the lock for info or fails with *LockedError; the
	// returned function releases it.
	Lock(ctx context.Context, info LockInfo) (unlock func(context.Context) error, err error)
}

// LockedError reports that another operation holds the lock.
type LockedError struct {
	Holder LockInfo
	Where  string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("dr: lock: %s is held (%s by %s on %s, pid %d, since %s); wait for that operation to finish: the lock of a process that died is released at once, so its holder is running",
		e.Where, e.Holder.Op, e.Holder.Owner, e.Holder.Host, e.Holder.PID, e.Holder.Time.UTC().Format(time.RFC3339))
}

// ErrLocked is matched by *LockedError.
var ErrLocked = errors.New("dr: lock held")

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// FileLock is a Locker on one machine: an exclusive flock(2) on a file that
// holds the holder's LockInfo as JSON, for people to read. The kernel gives
// the lock to exactly one open file at a time and releases it when its
// holder's process dies, so a crashed operator's lock is free at once and
// taking it over is atomic. The file is never removed: removing it while
// held would let a second operator lock a new file of the same name, so
// Lock checks that the file it locked is still the one at Path.
type FileLock struct {
	Path string
}

// Lock implements Locker. The returned unlock releases this lock only,
// once; calling it again does nothing.
func (l FileLock) Lock(ctx context.Context, info LockInfo) (func(context.Context) error, error) {
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
	}
	for attempt := 0; attempt < 3; attempt++ {
		f, err := os.OpenFile(l.Path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			holder := readHolder(f)
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, &LockedError{Holder: holder, Where: l.Path}
			}
			return nil, fmt.Errorf("dr: lock %s: flock: %w; the state directory must be on a file system with locks", l.Path, err)
		}
		if !sameFile(f, l.Path) {
			f.Close() // replaced between open and flock: lock the new one
			continue
		}
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(b, 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
		}
		var once sync.Once
		return func(context.Context) error {
			var err error
			once.Do(func() {
				// Only the holder of the flock gets here: clear the record,
				// then closing the file releases the lock.
				if sameFile(f, l.Path) {
					err = f.Truncate(0)
				}
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					err = fmt.Errorf("dr: unlock %s: %w", l.Path, err)
				}
			})
			return err
		}, nil
	}
	return nil, fmt.Errorf("dr: lock %s: the lock file keeps being replaced; stop whatever removes it", l.Path)
}

// readHolder reads the LockInfo in a lock file.
func readHolder(f *os.File) LockInfo {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<16))
	var h LockInfo
	if err != nil || json.Unmarshal(b, &h) != nil {
		return LockInfo{Owner: "unknown (the holder has not written its record yet)"}
	}
	return h
}

// sameFile reports whether path still names the file f has open.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}
