// Package topology is the DR topology document: what DR automation needs to
// act on a deployment, written by the stack into the /paydr/<suffix>/dr/topology
// SSM parameter of both regions (so it can be read from whichever survives,
// without Terraform state) and read by the AWS DR backend. One type serves
// both sides: Of[string] where it is read, Of of the stack's Terraform string
// expressions where it is written, so every field is named once.
package topology

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Of is the topology document with strings of type S.
type Of[S any] struct {
	Environment     S `json:"environment"`
	GlobalClusterID S `json:"global_cluster_id"`
	ZoneID          S `json:"zone_id"`
	FailoverName    S `json:"failover_name"`
	SessionsTable   S `json:"sessions_table"`
	DRRoleName      S `json:"dr_role_name"`
	// RPOBoundSeconds is the deployment's bound on loss (the stack
	// setting): DR automation enforces it on the writer as
	// rds.global_db_rpo while its standby replicates. 0 (absent, as in
	// topologies written before it) means none.
	RPOBoundSeconds int       `json:"rpo_bound_seconds,omitempty"`
	Primary         SideOf[S] `json:"primary"`
	Secondary       SideOf[S] `json:"secondary"`
}

// SideOf is one region of the pair.
type SideOf[S any] struct {
	Region        S `json:"region"`
	ClusterID     S `json:"cluster_id"`
	FunctionName  S `json:"function_name"`
	HealthCheckID S `json:"health_check_id"`
	APIEndpoint   S `json:"api_endpoint"`
	// ClusterParameterGroup names the cluster's DB cluster parameter
	// group, where DR automation sets and resets rds.global_db_rpo as the
	// writer moves (the stack creates it and leaves its parameters to DR
	// automation after that).
	ClusterParameterGroup S `json:"cluster_parameter_group,omitempty"`
	// RecordTarget is the host name the region's failover record answers
	// with, when it is not APIEndpoint's host: in a public zone, the
	// regional target (d-….execute-api…) of the region's API Gateway
	// custom domain, to which the record is an alias, so the failover name
	// answers with its addresses rather than a CNAME.
	RecordTarget  S `json:"record_target,omitempty"`
	EventBus      S `json:"event_bus"`
	AlarmTopicARN S `json:"alarm_topic_arn"`
}

// Topology is the document as DR automation reads it.
type Topology = Of[string]

// Side is one region of a Topology.
type Side = SideOf[string]

// ParameterName returns the SSM name of the topology of environment suffix.
func ParameterName(suffix string) string { return "/paydr/" + suffix + "/dr/topology" }

// Parse reads a topology document and checks it has what DR needs.
func Parse(value string) (Topology, error) {
	var t Topology
	if err := json.Unmarshal([]byte(value), &t); err != nil {
		return Topology{}, fmt.Errorf("topology: %w", err)
	}
	if err := Validate(t); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// Validate reports every missing field DR needs, by its JSON name.
func Validate(t Topology) error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"global_cluster_id", t.GlobalClusterID}, {"zone_id", t.ZoneID}, {"failover_name", t.FailoverName},
		{"primary.region", t.Primary.Region}, {"primary.cluster_id", t.Primary.ClusterID}, {"primary.function_name", t.Primary.FunctionName},
		{"secondary.region", t.Secondary.Region}, {"secondary.cluster_id", t.Secondary.ClusterID}, {"secondary.function_name", t.Secondary.FunctionName},
		{"primary.api_endpoint", t.Primary.APIEndpoint}, {"secondary.api_endpoint", t.Secondary.APIEndpoint},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if t.RPOBoundSeconds > 0 {
		// A bound is enforced through the clusters' parameter groups.
		for _, f := range []struct{ name, v string }{
			{"primary.cluster_parameter_group", t.Primary.ClusterParameterGroup}, {"secondary.cluster_parameter_group", t.Secondary.ClusterParameterGroup},
		} {
			if f.v == "" {
				missing = append(missing, f.name)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("topology: missing %s", strings.Join(missing, ", "))
	}
	if t.RPOBoundSeconds < 0 {
		return fmt.Errorf("topology: rpo_bound_seconds is %d, want 0 (none) or more", t.RPOBoundSeconds)
	}
	return nil
}

// RPOBound returns the deployment's bound on loss (0: none).
func (t Of[S]) RPOBound() time.Duration { return time.Duration(t.RPOBoundSeconds) * time.Second }

// Lookup returns the side of region name and its slot ("primary",
// "secondary").
func Lookup(t Topology, name string) (Side, string, bool) {
	switch name {
	case t.Primary.Region:
		return t.Primary, "primary", true
	case t.Secondary.Region:
		return t.Secondary, "secondary", true
	}
	return Side{}, "", false
}
