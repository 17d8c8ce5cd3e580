package dr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	return fmt.Sprintf("dr: lock: %s holds the DR lock (%s by %s on %s, pid %d, since %s); wait for it to finish, or, if that process is gone, remove the lock (%s)",
		e.Where, e.Holder.Op, e.Holder.Owner, e.Holder.Host, e.Holder.PID, e.Holder.Time.UTC().Format(time.RFC3339), e.Where)
}

// ErrLocked is matched by *LockedError.
var ErrLocked = errors.New("dr: lock held")

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// FileLock is a Locker on one machine: a file created with O_EXCL holding
// LockInfo as JSON. A lock left by a dead process on the same host is taken
// over.
type FileLock struct {
	Path string
}

// Lock implements Locker.
func (l FileLock) Lock(ctx context.Context, info LockInfo) (func(context.Context) error, error) {
	if err := os.MkdirAll(filepath.Dir(l.Path), 0o755); err != nil {
		return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(l.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, werr := f.Write(b)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(l.Path)
				return nil, fmt.Errorf("dr: lock %s: %w", l.Path, werr)
			}
			return func(context.Context) error {
				if err := os.Remove(l.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("dr: unlock %s: %w", l.Path, err)
				}
				return nil
			}, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("dr: lock %s: %w", l.Path, err)
		}
		held, rerr := os.ReadFile(l.Path)
		var holder LockInfo
		if rerr != nil || json.Unmarshal(held, &holder) != nil {
			return nil, &LockedError{Holder: LockInfo{Owner: "unknown (unreadable lock file)"}, Where: l.Path}
		}
		if attempt == 0 && holder.Host == info.Host && holder.PID > 0 && !alive(holder.PID) {
			// The holder died without unlocking; its journal says what it
			// did, and the operation resumes from there.
			os.Remove(l.Path)
			continue
		}
		return nil, &LockedError{Holder: holder, Where: l.Path}
	}
	return nil, fmt.Errorf("dr: lock %s: could not take over a stale lock", l.Path)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
