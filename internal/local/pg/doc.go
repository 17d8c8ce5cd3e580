// Package pg runs local PostgreSQL 15 servers as real processes standing in
// for an Aurora PostgreSQL Global Database: a primary for the writer region
// and hot standbys, fed by streaming replication through replication slots,
// for the secondary region. Replication lag is real WAL lag, read from
// pg_stat_replication (Server.ReplicationStatus) on the primary and from
// pg_last_wal_replay_lsn/pg_last_xact_replay_timestamp (Server.StandbyStatus)
// on a standby.
//
// Every server listens on 127.0.0.1 (and a Unix socket in DataDir + ".run";
// not in the data directory, where pg_rewind would trip over it) and, when
// given Options.Host and Options.Namespace, runs inside that network
// namespace and listens on that address too: a region of a netns fabric,
// which its standby and the host reach over the fabric's bridge. It runs with
// trust authentication for the superuser "postgres"; it logs
// to DataDir + ".log". A server outlives the process that started it: Open
// adopts a server from its data directory (postmaster.pid), so paydr up can
// run twice and paydr down can stop what an earlier process started.
//
// Roles: a data directory starts as a standby exactly when it holds
// standby.signal. StartStandby refuses one without it (a former primary,
// which would be a second writer; ErrNotStandby) or one whose files show it
// cannot stream from the primary (a *FollowError), StartPrimary refuses a
// standby's (ErrIsStandby), and the start every path goes through checks the
// file again. Inspect reads a data directory's role, timeline and position
// without starting it, so callers can check before starting anything.
//
// Faults act on every process of a server, the postmaster and all its
// descendants (daemon.SignalTree), not on its process group: backends, the
// WAL writer and walsenders call setsid and would escape. Kill sends them
// SIGKILL (losing the primary); Freeze stops them with SIGSTOP (a region cut
// off: clients' connections stay open and nothing answers, which it checks
// from outside) until Thaw. SetSynchronousStandby makes commits wait for a
// standby (synchronous_standby_names), which bounds what a cut costs.
// Promote turns a standby into the writer; RebuildAsStandby turns a former
// primary into a standby of the new writer with pg_rewind (falling back to a
// fresh base backup), which DR failback needs.
//
// Binaries are found by FindBinDir ($PAYDR_PG_BIN, PATH, the Debian location
// /usr/lib/postgresql/15/bin). initdb, postgres and pg_rewind refuse to run as
// root, so when paydr runs as root every PostgreSQL binary runs as the
// unprivileged user "postgres" (or "nobody"), the data directory is given to
// that user, and every directory above it must be searchable by it.
package pg
