// Package dr is paydr's disaster-recovery domain: what a deployment's DR
// state is (Status), what an operation will do about it (Plan, built by the
// pure functions PlanSwitchover, PlanFailover and PlanFailback from an
// observed Status), and how a plan is carried out safely (Execute: one
// operation at a time under a Locker, every step recorded in a Journal so a
// crashed operation resumes where it stopped, every step idempotent).
//
// Deciding is separate from doing. A plan is a list of Steps in a small
// vocabulary (fence, wait-caught-up, promote, ...); a Backend observes the
// deployment, says which exact calls a step makes (Calls, pure, printed by a
// dry run) and performs a step (Do). Two backends exist: paydr/internal/dr/localdr
// (the environment of paydr up: PostgreSQL, processors, router) and
// paydr/internal/dr/awsdr (Aurora Global Database, Lambda, and the data
// plane of Route 53's failover records).
//
// One decision path. Every operation — new, resumed or dry run — starts in
// prepare: it observes the deployment afresh, and either plans a new
// operation or takes the journal's unfinished plan of the same kind and
// checks its next step now, under the options of the command that runs
// (never the journal's). The executor then observes again before every
// step that changes who may write (fence, promote, rebuild-standby,
// unfence) or whether the writer may commit (enforce-rpo), and when
// resuming also before wait-traffic and verify, and applies CheckStep. A step the rules refuse is not run: the refusal (*Refusal)
// says what the step would have done, why not, and how to give the
// operation up (paydr dr abandon, journaled, undoes nothing). A dry run
// prints the same decision from the same code.
//
// The safety rules (CheckStep, and the plans built from the same rules):
//   - never two writable regions that clients reach: a region is fenced
//     before the other is promoted; while two writers are seen, the only
//     step allowed is fencing the one that is not the operation's writer,
//     and only while the operation's writer still is one;
//   - never fence the only writer unless the standby can take over within
//     the bound: reachable, streaming, lag at most --max-lag (switchover and
//     failback share this rule); a failover fences only a writer that is
//     lost (unreachable or unhealthy);
//   - never promote with data loss unless the command that runs said
//     --allow-data-loss (the estimate is printed);
//   - never unfence a region that is not the writer;
//   - a failback keeps the old writer's final state before rebuilding it;
//   - the bound on loss (Status.RPOTarget, rds.global_db_rpo on AWS: a
//     writer whose standby lags more stops acknowledging) moves with the
//     writer: a switchover or failback relaxes it on the fenced old writer
//     before the promotion (no standby ever holds one) and enforces it on
//     the new writer once the old one replicates from it, before unfencing;
//     a failover relaxes it on the standby before promoting it (a writer
//     without a healthy standby would block every commit; a failover never
//     promotes a standby that holds one), and warns that nothing bounds the
//     loss until a failback. enforce-rpo runs only on a writer whose standby
//     streams within the bound, and is best effort: refused or failed, it is
//     owed (it waits, the writer takes writes, the operation stays open),
//     since keeping the new writer fenced for it would refuse every payment.
//
// Best-effort steps (fencing and preserving a lost region, enforcing the
// bound on loss) that fail are recorded as failed and owed: retried before
// every later guarded step as soon as their region answers (a region that
// comes back is fenced before anything else happens; enforce-rpo waits
// while the rules refuse it), and again when the operation resumes. While
// one is owed the operation stays open (*IncompleteError; the CLI exits 3).
// An owed step that no longer matters (its region is a standby now; the
// bound is enforced already) is closed. An operation whose steps are done
// is judged once more before it claims success: its writer must serve and
// take the traffic.
//
// Crashes: one operator at a time (FileLock, flock(2): takeover of a dead
// holder's lock is atomic, unlock releases only its own lock); a journal
// whose appends are single synced writes, whose torn last line is ignored
// and cut off before the next append, whose finished or abandoned
// operations are never resumed, and whose new operations never share a
// file (ids are unique even when the clock jumps back).
//
// TestSimulation checks all of this as FoundationDB's simulation tests do:
// thousands of seeded schedules drive the real Operate, Executor, Journal
// and FileLock against a model of two regions with faults injected between
// and inside steps, and named invariants are checked at every step.
//
// Game-day drills, which exercise these operations under traffic and
// faults, live in paydr/internal/dr/drill.
package dr
