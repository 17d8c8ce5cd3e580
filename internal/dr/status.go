package dr

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Role is what a region's database is.
type Role string

// Database roles as observed.
const (
	// RoleWriter accepts writes.
	RoleWriter Role = "writer"
	// RoleStandby replicates from the writer and refuses writes.
	RoleStandby Role = "standby"
	// RoleDown means the database is not running (stopped, killed, fenced).
	RoleDown Role = "down"
	// RoleUnknown means the database could not be observed.
	RoleUnknown Role = "unknown"
)

// Region is one region as observed.
type Region struct {
	// Name is the AWS region name, such as "us-east-1".
	Name string `json:"name"`
	// Slot is the region's deployed place in the pair, "primary" or
	// "secondary"; it never changes, whatever Role is.
	Slot string `json:"slot"`
	// Role is what the region's database is now.
	Role Role `json:"role"`
	// Reachable reports whether the operator reaches the region: its
	// database answered (locally), its Lambda API answered (AWS).
	Reachable bool `json:"reachable"`
	// Healthy reports whether the region's processor answers /health 200
	// (its database takes writes), asked directly: the data plane, not
	// Route 53's API.
	Healthy bool `json:"healthy"`
	// Health explains Healthy.
	Health string `json:"health,omitempty"`
	// Fenced reports whether the region is known to be fenced (its
	// processor cannot write: Lambda reserved concurrency 0, or its
	// database stopped).
	Fenced bool `json:"fenced"`
	// Database names the region's database (cluster id, data dir).
	Database string `json:"database,omitempty"`
	// DatabaseARN is the cluster ARN (AWS only).
	DatabaseARN string `json:"database_arn,omitempty"`
	// Function names the region's processor (Lambda function, URL).
	Function string `json:"function,omitempty"`
	// HealthCheckID is the Route 53 health check (AWS only).
	HealthCheckID string `json:"health_check_id,omitempty"`
	// RPOBound is the bound on loss enforced on the region's writes: as a
	// writer it stops acknowledging commits while its standby lags more
	// (rds.global_db_rpo in its cluster parameter group). 0 means none, or
	// not observed (a note says why).
	RPOBound time.Duration `json:"rpo_bound_ns,omitempty"`
	// Synchronous is true when every commit of the region, as a writer,
	// waits for its standby (RPO 0: the local environment's --rpo-bound 0;
	// Aurora has no such mode).
	Synchronous bool `json:"synchronous,omitempty"`
}

// Replication is the observed replication from the writer to the standby.
type Replication struct {
	// Known is false when replication could not be observed (writer
	// unreachable, metrics missing); the other fields are then the last
	// values known, if any.
	Known bool `json:"known"`
	// Streaming reports whether the standby is receiving WAL now.
	Streaming bool `json:"streaming"`
	// State is the replication state as reported ("streaming",
	// "connected", ...).
	State string `json:"state,omitempty"`
	// LagBytes is WAL written on the writer and not yet applied on the
	// standby (local only; -1 when unknown).
	LagBytes int64 `json:"lag_bytes"`
	// ReplayLag is the commit-to-apply delay: pg_stat_replication
	// replay_lag, or AuroraGlobalDBReplicationLag.
	ReplayLag time.Duration `json:"replay_lag_ns"`
	// RPOLag is the age of the standby's data: how much recent history a
	// failover now would lose at most (AuroraGlobalDBRPOLag; locally now
	// minus the commit time of the last transaction replayed, when the
	// writer is not idle).
	RPOLag time.Duration `json:"rpo_lag_ns"`
	// LastReplayed is the commit time of the last transaction the standby
	// applied (local only).
	LastReplayed time.Time `json:"last_replayed,omitzero"`
}

// Status is a deployment's DR state as observed at one moment.
type Status struct {
	// Backend names the backend that observed it ("local", "aws").
	Backend string `json:"backend"`
	// Observed is when it was observed.
	Observed time.Time `json:"observed"`
	// Regions holds the primary slot, then the secondary slot.
	Regions []Region `json:"regions"`
	// Replication is from the writer to the standby.
	Replication Replication `json:"replication"`
	// RPOTarget is the bound on loss the deployment sets (a stack
	// setting), which enforce-rpo enforces on the writer while its standby
	// replicates; 0 when the deployment sets none.
	RPOTarget time.Duration `json:"rpo_target_ns,omitempty"`
	// RPOZero is true when the deployment sets RPO 0 instead of a bound:
	// enforce-rpo makes every commit of the writer wait for its standby.
	RPOZero bool `json:"rpo_zero,omitempty"`
	// Traffic is the region the failover name sends traffic to now.
	Traffic string `json:"traffic"`
	// Sessions describes the session table's replicas.
	Sessions string `json:"sessions,omitempty"`
	// Global is the global cluster (AWS) or the state directory (local).
	Global string `json:"global,omitempty"`
	// Notes are observations that did not fit a field, such as a region
	// that could not be reached and why.
	Notes []string `json:"notes,omitempty"`
}

// Writers returns the regions whose database is a writer.
func (s Status) Writers() []Region {
	var out []Region
	for _, r := range s.Regions {
		if r.Role == RoleWriter {
			out = append(out, r)
		}
	}
	return out
}

// Region returns the region named name.
func (s Status) Region(name string) (Region, bool) {
	for _, r := range s.Regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// Slot returns the region deployed in slot ("primary", "secondary").
func (s Status) Slot(slot string) (Region, bool) {
	for _, r := range s.Regions {
		if r.Slot == slot {
			return r, true
		}
	}
	return Region{}, false
}

// Other returns the region that is not name.
func (s Status) Other(name string) (Region, bool) {
	for _, r := range s.Regions {
		if r.Name != name {
			return r, true
		}
	}
	return Region{}, false
}

// Render writes s as text for people.
func (s Status) Render(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backend:      %s", s.Backend)
	if s.Global != "" {
		fmt.Fprintf(&b, " (%s)", s.Global)
	}
	b.WriteString("\n")
	writer := "none"
	if ws := s.Writers(); len(ws) == 1 {
		writer = ws[0].Name
	} else if len(ws) > 1 {
		names := make([]string, len(ws))
		for i, r := range ws {
			names[i] = r.Name
		}
		writer = "SPLIT: " + strings.Join(names, " and ") + " are both writable"
	}
	fmt.Fprintf(&b, "writer:       %s\n", writer)
	fmt.Fprintf(&b, "traffic:      %s\n", orUnknown(s.Traffic))
	rep := s.Replication
	if rep.Known {
		lagBytes := "n/a"
		if rep.LagBytes >= 0 {
			lagBytes = fmt.Sprintf("%d bytes", rep.LagBytes)
		}
		fmt.Fprintf(&b, "replication:  %s, replay lag %s, rpo lag %s, behind %s\n",
			orUnknown(rep.State), rep.ReplayLag.Round(time.Millisecond), rep.RPOLag.Round(time.Millisecond), lagBytes)
	} else {
		b.WriteString("replication:  unknown\n")
	}
	switch {
	case s.RPOZero:
		b.WriteString("rpo bound:    0: every commit of the writer waits for its standby while it replicates\n")
	case s.RPOTarget > 0:
		fmt.Fprintf(&b, "rpo bound:    %s, enforced on the writer while its standby replicates\n", s.RPOTarget)
	}
	if s.Sessions != "" {
		fmt.Fprintf(&b, "sessions:     %s\n", s.Sessions)
	}
	for _, r := range s.Regions {
		health := "unhealthy"
		if r.Healthy {
			health = "healthy"
		}
		if r.Health != "" {
			health += " (" + r.Health + ")"
		}
		fenced := ""
		if r.Fenced {
			fenced = ", fenced"
		}
		reach := ""
		if !r.Reachable {
			reach = ", unreachable"
		}
		bound := ""
		if r.RPOBound > 0 {
			bound = ", rpo bound " + r.RPOBound.String()
		}
		if r.Synchronous {
			bound = ", rpo 0 (commits wait for the standby)"
		}
		fmt.Fprintf(&b, "%-14s%s: %s%s%s%s, %s\n", r.Slot+":", r.Name, r.Role, reach, fenced, bound, health)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "note:         %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
