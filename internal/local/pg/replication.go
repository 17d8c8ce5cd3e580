package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"paydr/internal/local/daemon"
)

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// String renders l as PostgreSQL does, such as "0/3000148".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// ParseLSN parses the "X/Y" text form of an LSN.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("pg: parse lsn %q: want X/Y", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("pg: parse lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("pg: parse lsn %q: %w", s, err)
	}
	return LSN(h<<32 | l), nil
}

// Replica is one standby as its primary sees it in pg_stat_replication.
type Replica struct {
	// ApplicationName is the standby's name (Server.Name).
	ApplicationName string
	// State is the WAL sender state: "startup", "catchup", "streaming", ...
	State string
	// SyncState is "async" for every paydr standby, as in Aurora Global Database.
	SyncState string
	// SentLSN, WriteLSN, FlushLSN and ReplayLSN are how far the standby has
	// been sent, written, flushed and applied WAL.
	SentLSN, WriteLSN, FlushLSN, ReplayLSN LSN
	// CurrentLSN is the primary's current WAL write position when sampled.
	CurrentLSN LSN
	// LagBytes is CurrentLSN - ReplayLSN: WAL written on the primary and not
	// yet applied on the standby.
	LagBytes int64
	// ReplayLag is the time between a commit on the primary and its replay on
	// the standby, as last measured; it is 0 when the standby is idle and
	// caught up (PostgreSQL reports NULL then).
	ReplayLag time.Duration
}

// ReplicationStatus returns every standby connected to this server, from
// pg_stat_replication, sorted by application name. The local equivalent of
// Aurora's AuroraGlobalDBReplicationLag is ReplayLag; of the RPO lag, LagBytes.
func (s *Server) ReplicationStatus(ctx context.Context) ([]Replica, error) {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return nil, fmt.Errorf("pg: replication status %s: %w", s.name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `
SELECT coalesce(application_name, ''), coalesce(state, ''), coalesce(sync_state, ''),
       coalesce(sent_lsn, '0/0')::text, coalesce(write_lsn, '0/0')::text,
       coalesce(flush_lsn, '0/0')::text, coalesce(replay_lsn, '0/0')::text,
       cur::text,
       coalesce(pg_wal_lsn_diff(cur, replay_lsn), 0)::bigint,
       coalesce(extract(epoch FROM replay_lag), 0)::float8
FROM pg_stat_replication,
     LATERAL (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                          ELSE pg_current_wal_lsn() END AS cur) c
ORDER BY application_name`)
	if err != nil {
		return nil, fmt.Errorf("pg: replication status %s: %w", s.name, err)
	}
	var out []Replica
	for rows.Next() {
		var r Replica
		var sent, write, flush, replay, cur string
		var lag float64
		if err := rows.Scan(&r.ApplicationName, &r.State, &r.SyncState, &sent, &write, &flush, &replay, &cur, &r.LagBytes, &lag); err != nil {
			return nil, fmt.Errorf("pg: replication status %s: %w", s.name, err)
		}
		for _, p := range []struct {
			dst *LSN
			src string
		}{{&r.SentLSN, sent}, {&r.WriteLSN, write}, {&r.FlushLSN, flush}, {&r.ReplayLSN, replay}, {&r.CurrentLSN, cur}} {
			if *p.dst, err = ParseLSN(p.src); err != nil {
				return nil, fmt.Errorf("pg: replication status %s: %w", s.name, err)
			}
		}
		r.ReplayLag = time.Duration(lag * float64(time.Second))
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pg: replication status %s: %w", s.name, err)
	}
	return out, nil
}

// StandbyStatus is a standby's own view of its replication.
type StandbyStatus struct {
	// ReceiveLSN is the last WAL position received and flushed
	// (pg_last_wal_receive_lsn).
	ReceiveLSN LSN
	// ReplayLSN is the last WAL position applied (pg_last_wal_replay_lsn).
	ReplayLSN LSN
	// LastReplayTime is the commit time, on the primary, of the last
	// transaction replayed (pg_last_xact_replay_timestamp); zero if none yet.
	LastReplayTime time.Time
	// ReceiverStatus is the WAL receiver's status ("streaming", ...) or ""
	// when no WAL receiver runs (for example, the primary is gone).
	ReceiverStatus string
	// SenderPort is the port of the server the WAL receiver streams from.
	SenderPort int
}

// StandbyStatus returns this standby's replay position and WAL receiver
// state. It fails on a server that is not in recovery.
func (s *Server) StandbyStatus(ctx context.Context) (StandbyStatus, error) {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return StandbyStatus{}, fmt.Errorf("pg: standby status %s: %w", s.name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var st StandbyStatus
	var in bool
	var recv, replay string
	var ts *time.Time
	var status *string
	var port *int32
	err = conn.QueryRow(ctx, `
SELECT pg_is_in_recovery(),
       coalesce(pg_last_wal_receive_lsn(), '0/0')::text,
       coalesce(pg_last_wal_replay_lsn(), '0/0')::text,
       pg_last_xact_replay_timestamp(),
       (SELECT status FROM pg_stat_wal_receiver),
       (SELECT sender_port FROM pg_stat_wal_receiver)`).Scan(&in, &recv, &replay, &ts, &status, &port)
	if err != nil {
		return StandbyStatus{}, fmt.Errorf("pg: standby status %s: %w", s.name, err)
	}
	if !in {
		return StandbyStatus{}, fmt.Errorf("pg: standby status %s: server is not in recovery (it is a primary); ask its standbys' primary for ReplicationStatus instead", s.name)
	}
	if st.ReceiveLSN, err = ParseLSN(recv); err != nil {
		return StandbyStatus{}, err
	}
	if st.ReplayLSN, err = ParseLSN(replay); err != nil {
		return StandbyStatus{}, err
	}
	if ts != nil {
		st.LastReplayTime = *ts
	}
	if status != nil {
		st.ReceiverStatus = *status
	}
	if port != nil {
		st.SenderPort = int(*port)
	}
	return st, nil
}

// DisconnectReplication cuts this standby off from its primary, as a broken
// link between regions would: the WAL receiver stops and stays stopped
// (primary_conninfo is overridden with ALTER SYSTEM) until
// ReconnectReplication. The standby keeps serving reads of what it has
// replayed, and its primary keeps committing without it (replication is
// asynchronous). It waits until no WAL receiver runs.
func (s *Server) DisconnectReplication(ctx context.Context) error {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if err := s.exec(ctx, "ALTER SYSTEM SET primary_conninfo = ''", "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pg: disconnect replication %s: %w", s.name, err)
	}
	for {
		st, err := s.StandbyStatus(ctx)
		if err == nil && st.ReceiverStatus == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pg: disconnect replication %s: WAL receiver still %q: %w (last: %v)", s.name, st.ReceiverStatus, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ReconnectReplication undoes DisconnectReplication: the standby's own
// primary_conninfo applies again and its WAL receiver restarts. On a server
// promoted meanwhile it only removes the override.
func (s *Server) ReconnectReplication(ctx context.Context) error {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if err := s.exec(ctx, "ALTER SYSTEM RESET primary_conninfo", "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("pg: reconnect replication %s: %w", s.name, err)
	}
	return nil
}

// exec runs statements in order on the postgres database as the superuser.
func (s *Server) exec(ctx context.Context, stmts ...string) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// timeline returns the timeline a primary writes WAL on.
func (s *Server) timeline(ctx context.Context) (int, error) {
	var name string
	if err := s.queryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())", &name); err != nil {
		return 0, err
	}
	if len(name) < 8 {
		return 0, fmt.Errorf("wal file name %q", name)
	}
	tli, err := strconv.ParseUint(name[:8], 16, 32)
	return int(tli), err
}

// CurrentLSN returns the server's current WAL position: the write position on
// a primary, the replay position on a standby.
func (s *Server) CurrentLSN(ctx context.Context) (LSN, error) {
	var text string
	err := s.queryRow(ctx, `SELECT (CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0')
	                                    ELSE pg_current_wal_lsn() END)::text`, &text)
	if err != nil {
		return 0, fmt.Errorf("pg: current lsn %s: %w", s.name, err)
	}
	return ParseLSN(text)
}

// Promote turns a standby into a primary (pg_promote) and waits until it
// leaves recovery and accepts writes. Promoting a primary returns nil.
func (s *Server) Promote(ctx context.Context) error {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	in, err := s.InRecovery(ctx)
	if err != nil {
		return fmt.Errorf("pg: promote %s: %w", s.name, err)
	}
	if !in {
		return nil
	}
	deadline, _ := ctx.Deadline()
	secs := int(time.Until(deadline) / time.Second)
	secs = max(1, min(secs, 60))
	var ok bool
	if err := s.queryRow(ctx, "SELECT pg_promote(true, "+strconv.Itoa(secs)+")", &ok); err != nil {
		return fmt.Errorf("pg: promote %s: %w", s.name, err)
	}
	for {
		in, err := s.InRecovery(ctx)
		if err == nil && !in {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pg: promote %s: still in recovery: %w; see %s", s.name, ctx.Err(), s.LogPath())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitStreaming waits until the standby's WAL receiver is streaming, and,
// when tli is not 0, has received WAL of timeline tli (a standby stuck on an
// older timeline reconnects and streams briefly, again and again).
func (s *Server) waitStreaming(ctx context.Context, tli int) error {
	var last string
	for {
		var status string
		var got int
		err := s.queryRow(ctx, `SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), ''),
       coalesce((SELECT received_tli FROM pg_stat_wal_receiver), 0)`, &status, &got)
		if err == nil && status == "streaming" && (tli == 0 || got == tli) {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("wal receiver status %q on timeline %d", status, got)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for streaming replication: %w (last: %s); see %s", ctx.Err(), last, s.LogPath())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkpointTimeline runs CHECKPOINT on a primary, so that its control file
// (which pg_rewind reads) records the timeline a recent promotion started,
// and returns that timeline.
func (s *Server) checkpointTimeline(ctx context.Context) (int, error) {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CHECKPOINT"); err != nil {
		return 0, err
	}
	var tli int
	err = conn.QueryRow(ctx, "SELECT timeline_id FROM pg_control_checkpoint()").Scan(&tli)
	return tli, err
}

// ensureSlot creates a physical replication slot on s, reserving WAL now, if
// it does not exist yet.
func (s *Server) ensureSlot(ctx context.Context, slot string) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot)
	return err
}

// DropSlot drops the replication slot of the standby named name, if it
// exists, so that the primary stops retaining WAL for it.
func (s *Server) DropSlot(ctx context.Context, name string) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("pg: drop slot %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, slotName(name))
	if err != nil {
		return fmt.Errorf("pg: drop slot %s: %w", name, err)
	}
	return nil
}

// cloneFrom fills the empty data directory with a base backup of primary and
// configures it as its standby.
func (s *Server) cloneFrom(ctx context.Context, primary *Server, port int) error {
	if primary == nil || !primary.Running() {
		return errors.New("primary is not running; start it first")
	}
	bin, err := binary(s.binDir, "pg_basebackup")
	if err != nil {
		return err
	}
	slot := slotName(s.name)
	if err := primary.ensureSlot(ctx, slot); err != nil {
		return fmt.Errorf("create replication slot %s on primary: %w", slot, err)
	}
	if err := s.run(ctx, bin, "-h", primary.Host(), "-p", strconv.Itoa(primary.Port()), "-U", Superuser,
		"-D", s.dataDir, "-X", "stream", "-S", slot, "--checkpoint=fast", "--no-sync"); err != nil {
		return fmt.Errorf("base backup from port %d: %w", primary.Port(), err)
	}
	return s.configureStandby(primary, port)
}

// configureStandby points the (stopped) server at primary: standby.signal,
// primary_conninfo and primary_slot_name, and its own port.
func (s *Server) configureStandby(primary *Server, port int) error {
	conf, err := readConf(s.dataDir)
	if err != nil {
		conf = baseConf()
	}
	if port != 0 {
		conf["port"] = strconv.Itoa(port)
	} else {
		delete(conf, "port") // copied from the primary; start picks a free one
	}
	setPlace(conf, s.host, s.ns) // the copy carries the primary's
	conf["primary_conninfo"] = quote(fmt.Sprintf("host=%s port=%d user=%s application_name=%s", primary.Host(), primary.Port(), Superuser, s.name))
	conf["primary_slot_name"] = quote(slotName(s.name))
	if err := writeConf(s.dataDir, conf, s.as); err != nil {
		return fmt.Errorf("write %s: %w", confFile, err)
	}
	// postgresql.auto.conf overrides postgresql.conf; keep no replication
	// settings there that would override ours (pg_rewind and ALTER SYSTEM
	// can leave some).
	if err := scrubAutoConf(s.dataDir); err != nil {
		return err
	}
	sig := filepath.Join(s.dataDir, "standby.signal")
	if err := os.WriteFile(sig, nil, 0o600); err != nil {
		return err
	}
	return s.as.chown(sig)
}

func scrubAutoConf(dataDir string) error {
	p := filepath.Join(dataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		k, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch strings.TrimSpace(k) {
		// synchronous_standby_names comes with a base backup or a rewind
		// of a primary that held it: promoted, the standby would wait for
		// a standby it does not have.
		case "primary_conninfo", "primary_slot_name", "port", "synchronous_standby_names":
			continue
		}
		keep = append(keep, line)
	}
	return os.WriteFile(p, []byte(strings.Join(keep, "\n")), 0o600)
}

// RebuildMethod says how RebuildAsStandby turned a server into a standby.
type RebuildMethod string

const (
	// RebuildRewind means pg_rewind resynchronised the data directory.
	RebuildRewind RebuildMethod = "pg_rewind"
	// RebuildBaseBackup means the data directory was replaced by a fresh
	// base backup of the new primary.
	RebuildBaseBackup RebuildMethod = "pg_basebackup"
)

// RebuildAsStandby turns s, a former primary (running, stopped or killed),
// into a hot standby of newPrimary: it stops s, rewinds its data directory
// onto newPrimary's timeline with pg_rewind, and starts it streaming from
// newPrimary. If pg_rewind fails, or the rewound server does not stream, the
// data directory is replaced by a fresh base backup instead. The method used
// is returned. This is the first half of a DR failback.
//
// Anything s wrote that never reached newPrimary is discarded; copy the data
// directory first if those writes must be kept.
func (s *Server) RebuildAsStandby(ctx context.Context, newPrimary *Server) (RebuildMethod, error) {
	ctx, cancel := daemon.WithDefaultDeadline(ctx, DefaultWait)
	defer cancel()
	if newPrimary == nil || !newPrimary.Running() {
		return "", fmt.Errorf("pg: rebuild %s as standby: new primary is not running; start or promote it first", s.name)
	}
	if in, err := newPrimary.InRecovery(ctx); err != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: %w", s.name, err)
	} else if in {
		return "", fmt.Errorf("pg: rebuild %s as standby: %s is itself a standby; promote it first", s.name, newPrimary.name)
	}
	if s.binDir == "" {
		dir, err := FindBinDir("")
		if err != nil {
			return "", fmt.Errorf("pg: rebuild %s as standby: %w", s.name, err)
		}
		s.binDir = dir
	}
	if s.as == nil {
		as, err := resolveRunAs("")
		if err != nil {
			return "", fmt.Errorf("pg: rebuild %s as standby: %w", s.name, err)
		}
		s.as = as
	}
	port := s.Port()
	if err := s.Stop(ctx); err != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: %w", s.name, err)
	}
	slot := slotName(s.name)
	if err := newPrimary.ensureSlot(ctx, slot); err != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: create replication slot %s: %w", s.name, slot, err)
	}
	rewindErr := s.rewind(ctx, newPrimary, port)
	if rewindErr == nil {
		return RebuildRewind, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: %w", s.name, rewindErr)
	}
	s.logNote("pg_rewind did not produce a streaming standby, falling back to a fresh base backup: %v", rewindErr)
	if err := s.Stop(ctx); err != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: after rewind failed (%v): %w", s.name, rewindErr, err)
	}
	if err := s.rebaseFrom(ctx, newPrimary, port); err != nil {
		return "", fmt.Errorf("pg: rebuild %s as standby: rewind: %v; base backup: %w", s.name, rewindErr, err)
	}
	return RebuildBaseBackup, nil
}

func (s *Server) rewind(ctx context.Context, newPrimary *Server, port int) error {
	bin, err := binary(s.binDir, "pg_rewind")
	if err != nil {
		return err
	}
	// pg_rewind reads the source's timeline from its control file, which a
	// promotion updates only at its next checkpoint.
	tli, err := newPrimary.checkpointTimeline(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint new primary: %w", err)
	}
	src := fmt.Sprintf("host=%s port=%d user=%s dbname=postgres", newPrimary.Host(), newPrimary.Port(), Superuser)
	// pg_rewind copies the source's configuration files; keep ours.
	conf, err := readConf(s.dataDir)
	if err != nil {
		return err
	}
	// A killed server must finish crash recovery before pg_rewind accepts
	// it. pg_rewind can do that itself, but hides the server's output when
	// it fails; do it here, in single-user mode, so no client can connect.
	if _, err := os.Stat(filepath.Join(s.dataDir, "postmaster.pid")); err == nil {
		pgBin, err := binary(s.binDir, "postgres")
		if err != nil {
			return err
		}
		_ = os.Remove(filepath.Join(s.dataDir, "postmaster.pid"))
		if err := s.run(ctx, pgBin, "--single", "-F", "-D", s.dataDir, "template1"); err != nil {
			return fmt.Errorf("crash recovery in single-user mode: %w", err)
		}
	}
	if err := s.run(ctx, bin, "--target-pgdata="+s.dataDir, "--source-server="+src, "--no-sync"); err != nil {
		return err
	}
	if err := writeConf(s.dataDir, conf, s.as); err != nil {
		return err
	}
	if err := s.configureStandby(newPrimary, port); err != nil {
		return err
	}
	if err := s.start(ctx, port, true); err != nil {
		return err
	}
	streamCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return s.waitStreaming(streamCtx, tli)
}

func (s *Server) rebaseFrom(ctx context.Context, newPrimary *Server, port int) error {
	// Keep the old directory aside until the new one is in place.
	old := s.dataDir + ".old-" + time.Now().UTC().Format("20060102T150405")
	if err := os.Rename(s.dataDir, old); err != nil {
		return err
	}
	if err := os.Mkdir(s.dataDir, 0o700); err != nil {
		return err
	}
	if err := s.as.chown(s.dataDir); err != nil {
		return err
	}
	conf, err := readConf(old)
	if err != nil {
		return err
	}
	if err := s.cloneFrom(ctx, newPrimary, port); err != nil {
		return err
	}
	if port == 0 {
		port, _ = strconv.Atoi(conf["port"])
	}
	if err := s.start(ctx, port, true); err != nil {
		return err
	}
	tli, err := newPrimary.checkpointTimeline(ctx)
	if err != nil {
		return err
	}
	if err := s.waitStreaming(ctx, tli); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// logNote appends a line from paydr to the server's log.
func (s *Server) logNote(format string, args ...any) {
	f, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s paydr: %s\n", time.Now().UTC().Format("2006-01-02 15:04:05.000 MST"), fmt.Sprintf(format, args...))
}
