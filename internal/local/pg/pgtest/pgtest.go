// Package pgtest starts local PostgreSQL servers for tests: a primary, or a
// primary with a streaming hot standby, on free loopback ports in the test's
// temporary directory, stopped when the test ends.
//
// When the PostgreSQL binaries are missing the test is skipped with the
// reason, unless the environment variable CI is set: then it fails, because CI
// must run every tier.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paydr/internal/local/certs"
	"paydr/internal/local/pg"
	"paydr/internal/needs"
)

// startTimeout bounds starting one server; stopTimeout stopping one.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = 30 * time.Second
)

// Start starts a primary server on a free loopback port in t.TempDir() and
// stops it when the test ends.
func Start(t testing.TB) *pg.Server {
	t.Helper()
	return start(t, TempDir(t), nil)
}

// StartTLS starts a primary like Start that serves TLS (pg.TLS: roles other
// than the superuser need TLS and a password) with a certificate for
// 127.0.0.1 issued by a CA made for the test, and returns the server and the
// CA's certificate file (what a client verifies the server against).
func StartTLS(t testing.TB) (srv *pg.Server, caFile string) {
	t.Helper()
	requireBinaries(t)
	dir := TempDir(t)
	f, _, err := certs.Ensure(filepath.Join(dir, "tls"), "pgtest CA", []string{"127.0.0.1"})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return start(t, dir, &pg.TLS{CertFile: f.CertFile(), KeyFile: f.KeyFile()}), f.CAFile()
}

func start(t testing.TB, dir string, tls *pg.TLS) *pg.Server {
	t.Helper()
	requireBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	srv, err := pg.StartPrimary(ctx, pg.Options{DataDir: filepath.Join(dir, "primary"), TLS: tls})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	stopOnCleanup(t, srv)
	return srv
}

// StartPair starts a primary and a hot standby streaming from it (the
// standby's name, application_name and slot are "standby"), each on a free
// loopback port in t.TempDir(), and stops both when the test ends.
func StartPair(t testing.TB) (primary, standby *pg.Server) {
	t.Helper()
	primary = Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	standby, err := pg.StartStandby(ctx, primary, pg.Options{DataDir: filepath.Join(filepath.Dir(primary.DataDir()), "standby")})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	stopOnCleanup(t, standby)
	return primary, standby
}

func stopOnCleanup(t testing.TB, srv *pg.Server) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
}

// requireBinaries skips (or, under CI, fails) the test when the PostgreSQL
// binaries are missing.
func requireBinaries(t testing.TB) {
	t.Helper()
	if _, err := pg.FindBinDir(""); err != nil {
		if errors.Is(err, pg.ErrNotInstalled) {
			needs.Tool(t, fmt.Errorf("pgtest: %w", err))
		}
		t.Fatalf("pgtest: %v", err)
	}
}

// TempDir returns t.TempDir(), made searchable by the unprivileged user the
// servers run as when the test runs as root (t.TempDir directories are 0700).
func TempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	root := filepath.Clean(os.TempDir())
	for p := dir; strings.HasPrefix(p, root+string(filepath.Separator)); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o711); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	return dir
}
