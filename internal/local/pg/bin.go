package pg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// EnvBinDir names the environment variable that points at the directory
// holding the PostgreSQL server binaries (initdb, postgres, pg_basebackup,
// pg_rewind). It is consulted before PATH and the Debian default location.
const EnvBinDir = "PAYDR_PG_BIN"

// ErrNotInstalled is matched (errors.Is) by every error that reports a
// missing PostgreSQL binary.
var ErrNotInstalled = errors.New("postgresql binaries not installed")

// MissingBinaryError reports a PostgreSQL binary that could not be found.
type MissingBinaryError struct {
	// Name is the binary looked for, such as "initdb".
	Name string
	// Searched lists the directories looked in, in order.
	Searched []string
}

func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("pg: find %s: not found in %s; install PostgreSQL 15 server binaries with `apt-get install postgresql-15` or set %s to the directory that holds %s",
		e.Name, strings.Join(e.Searched, ", "), EnvBinDir, e.Name)
}

// Unwrap lets errors.Is(err, ErrNotInstalled) match.
func (e *MissingBinaryError) Unwrap() error { return ErrNotInstalled }

// FindBinDir returns the directory holding the PostgreSQL server binaries.
// If explicit is set it looks only there, else if $PAYDR_PG_BIN is set only
// there; otherwise it looks, in order, in the directory
// that initdb on PATH really lives in (symlinks resolved, so a
// /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb link finds the
// siblings pg_basebackup and pg_rewind), /usr/lib/postgresql/15/bin, any other
// /usr/lib/postgresql/*/bin (newest first) and /usr/local/pgsql/bin. The first
// directory holding both initdb and postgres wins.
func FindBinDir(explicit string) (string, error) {
	var candidates []string
	switch env := os.Getenv(EnvBinDir); {
	case explicit != "":
		candidates = append(candidates, explicit)
	case env != "":
		// An explicit choice is not second-guessed with another version.
		candidates = append(candidates, env)
	default:
		if p, err := exec.LookPath("initdb"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				candidates = append(candidates, filepath.Dir(real))
			}
			candidates = append(candidates, filepath.Dir(p))
		} else {
			candidates = append(candidates, "PATH")
		}
		candidates = append(candidates, "/usr/lib/postgresql/15/bin")
		others, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
		sort.Sort(sort.Reverse(sort.StringSlice(others)))
		candidates = append(candidates, others...)
		candidates = append(candidates, "/usr/local/pgsql/bin")
	}
	var searched []string
	seen := map[string]bool{}
	for _, dir := range candidates {
		if seen[dir] {
			continue
		}
		seen[dir] = true
		searched = append(searched, dir)
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", &MissingBinaryError{Name: "initdb", Searched: searched}
}

// binary returns the path of name in binDir, or a MissingBinaryError.
func binary(binDir, name string) (string, error) {
	p := filepath.Join(binDir, name)
	if !isExecutable(p) {
		return "", &MissingBinaryError{Name: name, Searched: []string{binDir}}
	}
	return p, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
