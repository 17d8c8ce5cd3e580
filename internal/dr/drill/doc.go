// Package drill runs game-day drills: it sends steady payment traffic
// through the failover name, injects a fault in the writer region (Env, one
// implementation per environment), lets detection and the DR operation of
// paydr/internal/dr run, and classifies every payment against the new
// writer's ledger as Jepsen does (Classify: ok, lost, duplicated,
// indeterminate, and conservation of the amounts). A Report gives
// detection, promotion, RTO, RPO, client errors and duplicates as text,
// JSON and an SVG timeline (WriteTimeline), with named checks that decide
// whether the drill passed.
//
// With Options.CutReplication a drill cuts replication before the fault so
// the failover must lose data, and checks the loss against the lag measured
// at the fault and against the estimate the failover's plan gave before it
// acted.
package drill
