package local_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"paydr/internal/local"
	"paydr/internal/terraform"
)

// checkPlanAfterSwitchover shows that after a switchover — the writer moved
// to the secondary cluster — a plan of the stack changes nothing that would
// move it back. It copies the applied configuration and state, rewrites the
// two clusters' role fields in the state as a refresh after a switchover
// reads them (the old writer now replicates from the new one and, as
// terraform-provider-aws #42919 shows, may read with no global cluster), and
// plans without refreshing. As a control, the same plan without the stack's
// ignore_changes must want to change the clusters, so the check can fail.
func checkPlanAfterSwitchover(t *testing.T, ctx context.Context, m *local.Manifest) {
	dir := t.TempDir()
	for _, name := range []string{filepath.Base(m.Stack.File), "processor.zip"} {
		copyFile(t, filepath.Join(m.Stack.Dir, name), filepath.Join(dir, name))
	}
	state := readJSON(t, m.Stack.StatePath)
	arn := map[string]string{}
	for _, r := range state["resources"].([]any) {
		rm := r.(map[string]any)
		if rm["type"] == "aws_rds_cluster" {
			arn[rm["name"].(string)], _ = attrs(rm)["arn"].(string)
		}
	}
	if arn["primary"] == "" || arn["secondary"] == "" {
		t.Fatalf("cluster ARNs in the state = %v, want both", arn)
	}
	for _, r := range state["resources"].([]any) {
		rm := r.(map[string]any)
		if rm["type"] != "aws_rds_cluster" {
			continue
		}
		a := attrs(rm)
		switch rm["name"] {
		case "primary": // the old writer: now a secondary of the new one
			a["replication_source_identifier"] = arn["secondary"]
			a["global_cluster_identifier"] = ""
		case "secondary": // the new writer
			a["replication_source_identifier"] = ""
		}
	}
	writeJSON(t, filepath.Join(dir, "terraform.tfstate"), state)

	tf, err := terraform.New(dir, terraform.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(ctx); err != nil {
		t.Fatalf("terraform init: %v", err)
	}
	plan := func() *tfjson.Plan {
		t.Helper()
		out := filepath.Join(dir, "switchover.tfplan")
		if _, err := tf.Plan(ctx, tfexec.Refresh(false), tfexec.Out(out)); err != nil {
			t.Fatalf("terraform plan: %v", err)
		}
		p, err := tf.ShowPlanFile(ctx, out)
		if err != nil {
			t.Fatalf("terraform show: %v", err)
		}
		return p
	}
	// roleChanges lists what the plan would do to the writer role: replace
	// the global cluster or a cluster, or change a cluster's role fields.
	// (The emulator adds drift of its own to other fields — tags it does not
	// keep, scaling_configuration it returns for provisioned clusters — which
	// moves nothing.)
	roleChanges := func(p *tfjson.Plan) []string {
		var changed []string
		for _, rc := range p.ResourceChanges {
			if rc.Type != "aws_rds_cluster" && rc.Type != "aws_rds_global_cluster" && rc.Type != "aws_rds_cluster_instance" {
				continue
			}
			if rc.Change.Actions.Delete() || rc.Change.Actions.Replace() || rc.Change.Actions.Create() {
				changed = append(changed, rc.Address+" "+actions(rc.Change.Actions))
				continue
			}
			if rc.Type != "aws_rds_cluster" || rc.Change.Actions.NoOp() {
				continue
			}
			before, _ := rc.Change.Before.(map[string]any)
			after, _ := rc.Change.After.(map[string]any)
			for _, f := range []string{"global_cluster_identifier", "replication_source_identifier"} {
				if fmt.Sprint(before[f]) != fmt.Sprint(after[f]) {
					changed = append(changed, fmt.Sprintf("%s.%s %v -> %v", rc.Address, f, before[f], after[f]))
				}
			}
		}
		return changed
	}
	if changed := roleChanges(plan()); len(changed) > 0 {
		t.Errorf("after a switchover the plan would %q; it must move nothing back", changed)
	}

	// Control: without ignore_changes the same state must show the drift.
	cfg := readJSON(t, filepath.Join(dir, filepath.Base(m.Stack.File)))
	clusters := cfg["resource"].(map[string]any)["aws_rds_cluster"].(map[string]any)
	for _, c := range clusters {
		delete(c.(map[string]any), "lifecycle")
	}
	writeJSON(t, filepath.Join(dir, filepath.Base(m.Stack.File)), cfg)
	if changed := roleChanges(plan()); len(changed) == 0 {
		t.Error("control: without ignore_changes the plan moves nothing either, so this check proves nothing")
	} else {
		t.Logf("control: without ignore_changes the plan would %q", changed)
	}
}

func attrs(resource map[string]any) map[string]any {
	return resource["instances"].([]any)[0].(map[string]any)["attributes"].(map[string]any)
}

func actions(a tfjson.Actions) string {
	b, _ := json.Marshal(a)
	return string(b)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
