package pg

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runAs is the unprivileged identity the PostgreSQL binaries run as when
// paydr runs as root (initdb, postgres, pg_rewind refuse to run as root).
// A nil *runAs means "run as the current user".
type runAs struct {
	name     string
	uid, gid uint32
}

// resolveRunAs picks the OS user the PostgreSQL processes run as: nobody
// special unless the effective uid is 0; then the named user, or "postgres",
// or "nobody", whichever exists first.
func resolveRunAs(name string) (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	names := []string{name}
	if name == "" {
		names = []string{"postgres", "nobody"}
	}
	for _, n := range names {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &runAs{name: n, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("pg: running as root, but no unprivileged user %s exists to run PostgreSQL as; create one (useradd --system postgres) or set Options.OSUser", strings.Join(names, " or "))
}

// command builds an exec.Cmd for a PostgreSQL binary, running as r when r is
// set, in its own session so that signals to paydr's terminal do not reach it
// and its process group can be killed as one.
func (r *runAs) command(path string, args ...string) *exec.Cmd {
	cmd := exec.Command(path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if r != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: r.uid, Gid: r.gid}
		cmd.Env = append(os.Environ(), "HOME=/tmp", "USER="+r.name, "LOGNAME="+r.name)
		cmd.Dir = "/"
	}
	return cmd
}

// chown gives path to r (no-op when r is nil).
func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	return os.Chown(path, int(r.uid), int(r.gid))
}

// checkTraversable verifies that r can reach dir: every ancestor must be
// searchable by r. t.TempDir() directories are 0700 root-owned, for example.
func (r *runAs) checkTraversable(dir string) error {
	if r == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok {
			mode := fi.Mode().Perm()
			var can bool
			switch {
			case st.Uid == r.uid:
				can = mode&0o100 != 0
			case st.Gid == r.gid:
				can = mode&0o010 != 0
			default:
				can = mode&0o001 != 0
			}
			if !can {
				return fmt.Errorf("directory %s (mode %v) is not searchable by user %s (uid %d), which PostgreSQL runs as because paydr runs as root; run `chmod o+x %s`, or choose a state directory every user can search (not one made by mktemp -d, which is 0700)",
					p, mode, r.name, r.uid, p)
			}
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil
		}
	}
}

// CheckReachable reports, before anything starts, whether PostgreSQL could
// reach a data directory under dir. When paydr runs as root the servers run
// as an unprivileged user (postgres, or nobody), which must be able to
// search every directory on the way; directories that do not exist yet are
// created searchable. A state directory under a `mktemp -d` (mode 0700) is
// the usual mistake.
func CheckReachable(dir string) error {
	as, err := resolveRunAs("")
	if err != nil || as == nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	p := abs
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	return as.checkTraversable(filepath.Join(p, "data"))
}
