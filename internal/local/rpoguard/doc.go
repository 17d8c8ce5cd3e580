// Package rpoguard bounds what losing the writer region costs, locally, the
// way Aurora's rds.global_db_rpo does: while the standby keeps up, commits
// on the writer are acknowledged at once (asynchronous replication); once
// the oldest WAL the standby has not flushed reaches the bound, commits
// wait for the standby (synchronous_standby_names) until it is back within
// half the bound. A bound of 0 is RPO-0: every commit waits, always.
//
// The loss window is estimated by an Estimator from samples of the
// writer's WAL position and the standby's flushed position
// (pg.Server.WALProgress) taken every Interval: the age of the oldest WAL
// the standby has not flushed, rounded up to a sample. A standby cut off by
// a network partition keeps its walsender row, its TCP connection hanging,
// and its flushed position just stops advancing; one that disconnects
// leaves its replication slot, whose restart_lsn is the same position. Both
// read the same to the estimate.
//
// Enforcement starts a safety margin before the bound: two sample
// intervals (the sample's age, and the estimate's rounding up to a sample)
// plus the time the setting took to apply last time (at first, twice the
// time a sample takes), so that no commit is acknowledged beyond the bound.
// What it cannot see: WAL written before the guard's first sample is
// counted from that sample.
//
// A Guard runs the loop for one region; paydr up starts one per region as
// paydr rpo-guard, and it acts only while its region's database is the
// writer and the bound is enforced there (Settings, read from env.json
// every tick: dr enforce-rpo and relax-rpo change it).
package rpoguard
