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
// paydr/internal/dr/awsdr (Aurora Global Database, Lambda, Route 53).
//
// Safety rules, checked while planning, refuse with a *Refusal that says
// why and what would make the operation safe:
//   - never two writable regions: a region is fenced before the other is
//     promoted, and nothing is planned while two writers are observed;
//   - a planned switchover needs both regions reachable and the standby
//     streaming within MaxSwitchoverLag; it loses nothing;
//   - a failover is for a lost writer: it refuses while the writer is
//     healthy (use switchover), and refuses without AllowDataLoss whenever
//     data may be lost, reporting the estimated loss window;
//   - a failback keeps the old writer's final state before rebuilding it.
//
// Drills (Drill) send steady payment traffic through the failover name,
// inject a fault, let detection and failover run, and classify every payment
// against the new writer's ledger as Jepsen does (Classify), reporting
// detection, promotion, RTO, RPO, client errors and duplicates as text,
// JSON and an SVG timeline. With DrillOptions.CutReplication a drill cuts
// replication before the fault so the failover must lose data, and checks
// the loss against the lag measured at the fault and against the estimate
// the failover's plan gave before it acted.
package dr
