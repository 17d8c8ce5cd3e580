package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WALProgress is a primary's WAL position and how far one of its standbys
// has flushed it, read in one query: what a bound on loss is judged by.
type WALProgress struct {
	// InRecovery is set when the server is a standby; the other fields are
	// then zero.
	InRecovery bool
	// Current is the primary's WAL write position (pg_current_wal_lsn).
	Current LSN
	// Flushed is how far the standby has flushed WAL to its disk: the
	// flush_lsn of its walsender (pg_stat_replication), else, when it has
	// none (it disconnected), the restart_lsn of its replication slot,
	// which a physical slot advances to the flushed position. Only
	// FlushedKnown says whether it is known.
	Flushed      LSN
	FlushedKnown bool
	// Connected says whether the standby has a walsender. Under a network
	// partition it keeps one, its TCP connection hanging, and Flushed just
	// stops advancing.
	Connected bool
	// ReplyTime is when the standby last reported its position (zero
	// without a walsender).
	ReplyTime time.Time
	// SynchronousStandby is synchronous_standby_names as the server applies
	// it: empty when commits wait for no standby.
	SynchronousStandby string
}

// WALProgress reads the server's WAL position and how far the standby
// named standby (its application_name and slot) has flushed it.
func (s *Server) WALProgress(ctx context.Context, standby string) (WALProgress, error) {
	var p WALProgress
	var cur, flush, slot *string
	var reply *time.Time
	err := s.queryRowArgs(ctx, `
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       (SELECT max(flush_lsn)::text FROM pg_stat_replication WHERE application_name = $1),
       (SELECT max(reply_time) FROM pg_stat_replication WHERE application_name = $1),
       (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $2),
       EXISTS (SELECT 1 FROM pg_stat_replication WHERE application_name = $1),
       current_setting('synchronous_standby_names')`,
		[]any{standby, slotName(standby)},
		&p.InRecovery, &cur, &flush, &reply, &slot, &p.Connected, &p.SynchronousStandby)
	if err != nil {
		return WALProgress{}, fmt.Errorf("pg: wal progress %s: %w", s.name, err)
	}
	if p.InRecovery {
		return WALProgress{InRecovery: true, SynchronousStandby: p.SynchronousStandby}, nil
	}
	if p.Current, err = ParseLSN(*cur); err != nil {
		return WALProgress{}, fmt.Errorf("pg: wal progress %s: %w", s.name, err)
	}
	for _, v := range []*string{flush, slot} {
		if v != nil {
			if p.Flushed, err = ParseLSN(*v); err != nil {
				return WALProgress{}, fmt.Errorf("pg: wal progress %s: %w", s.name, err)
			}
			p.FlushedKnown = true
			break
		}
	}
	if reply != nil {
		p.ReplyTime = *reply
	}
	return p, nil
}

// SetSynchronousStandby makes every commit on the server wait until the
// standby named name has flushed it (synchronous_standby_names, with
// synchronous_commit at its default "on"), or, with name empty, wait for no
// standby. A commit already waiting is released when the standby catches
// up or the setting is emptied. On a running server it uses ALTER SYSTEM
// and pg_reload_conf (a standby takes them too: they write no WAL) and
// waits until a new session sees the value; on a stopped one it edits
// postgresql.auto.conf, which the next start reads. Setting the value in
// force is a no-op.
func (s *Server) SetSynchronousStandby(ctx context.Context, name string) error {
	want := ""
	if name != "" {
		want = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	if !s.Running() {
		if err := s.setAutoConf("synchronous_standby_names", want); err != nil {
			return fmt.Errorf("pg: set synchronous standby %s: %w", s.name, err)
		}
		return nil
	}
	stmt := "ALTER SYSTEM RESET synchronous_standby_names"
	if want != "" {
		stmt = "ALTER SYSTEM SET synchronous_standby_names = " + quote(want)
	}
	if err := s.exec(ctx, stmt, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pg: set synchronous standby %s: %w", s.name, err)
	}
	// The postmaster rereads its configuration when it handles SIGHUP; a
	// session started after that sees the new value.
	var got string
	for {
		err := s.queryRow(ctx, "SELECT current_setting('synchronous_standby_names')", &got)
		if err == nil && got == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pg: set synchronous standby %s: synchronous_standby_names is %q, want %q: %w (last error: %v)", s.name, got, want, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// setAutoConf sets key to value in postgresql.auto.conf of the stopped
// server, or removes it when value is empty.
func (s *Server) setAutoConf(key, value string) error {
	p := filepath.Join(s.dataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		k, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		if strings.TrimSpace(k) == key || line == "" {
			continue
		}
		keep = append(keep, line)
	}
	if value != "" {
		keep = append(keep, key+" = "+quote(value))
	}
	if err := os.WriteFile(p, []byte(strings.Join(keep, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	return s.as.chown(p)
}

// queryRowArgs runs one query with arguments on a new connection and
// scans its row into dest.
func (s *Server) queryRowArgs(ctx context.Context, sql string, args []any, dest ...any) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql, args...).Scan(dest...)
}
