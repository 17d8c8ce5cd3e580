package local

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestMotoWorkaroundsReplacesReplicaKey(t *testing.T) {
	in := []byte(`{
  "resource": {
    "aws_kms_key": {"primary": {"multi_region": true, "description": "p"}},
    "aws_kms_replica_key": {"secondary": {"provider": "aws.secondary", "description": "r & <x>", "primary_key_arn": "${aws_kms_key.primary.arn}", "deletion_window_in_days": 30, "tags": {"Name": "k"}}},
    "aws_kms_alias": {"secondary": {"provider": "aws.secondary", "name": "alias/k", "target_key_id": "${aws_kms_replica_key.secondary.key_id}"}}
  }
}`)
	out, err := motoWorkarounds(in)
	if err != nil {
		t.Fatalf("motoWorkarounds error = %v", err)
	}
	if strings.Contains(string(out), "aws_kms_replica_key") {
		t.Errorf("output still mentions aws_kms_replica_key:\n%s", out)
	}
	var doc struct {
		Resource struct {
			Key   map[string]map[string]any `json:"aws_kms_key"`
			Alias map[string]map[string]any `json:"aws_kms_alias"`
		} `json:"resource"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	sec := doc.Resource.Key["secondary"]
	if sec == nil || sec["provider"] != "aws.secondary" || sec["description"] != "r & <x>" || sec["primary_key_arn"] != nil || sec["deletion_window_in_days"] != 30.0 {
		t.Errorf("aws_kms_key.secondary = %v, want the replica's arguments without primary_key_arn", sec)
	}
	if doc.Resource.Key["primary"] == nil {
		t.Errorf("aws_kms_key.primary is gone")
	}
	if got := doc.Resource.Alias["secondary"]["target_key_id"]; got != "${aws_kms_key.secondary.key_id}" {
		t.Errorf("alias target = %v, want ${aws_kms_key.secondary.key_id}", got)
	}
	again, err := motoWorkarounds(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("motoWorkarounds is not idempotent: %v", err)
	}
}

func TestApplyProgress(t *testing.T) {
	var log, out strings.Builder
	p := newApplyProgress(&log, &out)
	lines := `{"type":"change_summary","changes":{"add":2,"change":0,"remove":0,"operation":"plan"}}
{"type":"apply_start","hook":{"resource":{"addr":"aws_vpc.a"},"action":"create"}}
{"type":"apply_start","hook":{"resource":{"addr":"aws_rds_cluster.b"},"action":"create"}}
{"type":"apply_complete","hook":{"resource":{"addr":"aws_vpc.a"},"action":"create","elapsed_seconds":1}}
{"type":"apply_complete","hook":{"resource":{"addr":"data.aws_partition.x"},"action":"read","elapsed_seconds":0}}
{"type":"diagnostic","diagnostic":{"severity":"error","summary":"creating Route 53 Record: InvalidChangeBatch: Tried to create resource record set but it already exists","address":"aws_route53_record.api_primary"}}
not json
`
	p.consume(strings.NewReader(lines))
	p.tick()
	rep := p.report()
	if rep.Planned != 2 || rep.Done != 1 || len(rep.Slowest) != 1 || rep.Slowest[0].Address != "aws_vpc.a" {
		t.Errorf("report = %+v, want 1/2 done, slowest aws_vpc.a", rep)
	}
	if !strings.Contains(out.String(), "1/2 done; waiting on aws_rds_cluster.b") {
		t.Errorf("progress = %q, want 1/2 done waiting on aws_rds_cluster.b", out.String())
	}
	if strings.Count(log.String(), "\n") != 7 {
		t.Errorf("log has %d lines, want all 7", strings.Count(log.String(), "\n"))
	}
	if !alreadyExists(rep, errTest) {
		t.Errorf("alreadyExists(%v) = false, want true", rep.Errors)
	}
	rep.Errors = append(rep.Errors, "aws_x.y: some other failure")
	if alreadyExists(rep, errTest) {
		t.Errorf("alreadyExists with another failure = true, want false")
	}
	_ = time.Second
}

var errTest = &testErr{}

type testErr struct{}

func (*testErr) Error() string { return "exit status 1" }
