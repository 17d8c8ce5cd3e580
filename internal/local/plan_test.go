package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"paydr/internal/local/env"
	"paydr/internal/tfcli"
)

// planCopy is a copy of the applied stack's configuration and state in a
// temporary directory, initialized, to plan against without touching the
// environment: the state as a refresh after a DR operation would read it,
// planned without refreshing.
type planCopy struct {
	t    *testing.T
	ctx  context.Context
	dir  string
	file string // the configuration, cdk.tf.json
	tf   *tfcli.Runner
}

// newPlanCopy copies m's configuration and state, lets edit rewrite the
// state's resources, and runs terraform init.
func newPlanCopy(t *testing.T, ctx context.Context, m *env.Manifest, edit func(resources []map[string]any)) *planCopy {
	t.Helper()
	p := &planCopy{t: t, ctx: ctx, dir: t.TempDir()}
	p.file = filepath.Join(p.dir, filepath.Base(m.Stack.File))
	for _, name := range []string{filepath.Base(m.Stack.File), "processor.zip"} {
		copyFile(t, filepath.Join(m.Stack.Dir, name), filepath.Join(p.dir, name))
	}
	// The emulator enforces IAM: plan as the operator, whose key replaces
	// moto's default test credentials, which paydr up applies with while
	// enforcement is off.
	op := m.OperatorCredentials()
	cfg, err := os.ReadFile(p.file)
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.ReplaceAll(cfg, []byte(`"access_key": "test"`), []byte(`"access_key": "`+op.AccessKeyID+`"`))
	cfg = bytes.ReplaceAll(cfg, []byte(`"secret_key": "test"`), []byte(`"secret_key": "`+op.SecretAccessKey+`"`))
	if !bytes.Contains(cfg, []byte(`"access_key": "`+op.AccessKeyID+`"`)) {
		t.Fatalf("%s names no access_key \"test\" to replace with the operator's", m.Stack.File)
	}
	if err := os.WriteFile(p.file, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	state := readJSON(t, m.Stack.StatePath)
	var resources []map[string]any
	for _, r := range state["resources"].([]any) {
		resources = append(resources, r.(map[string]any))
	}
	edit(resources)
	writeJSON(t, filepath.Join(p.dir, "terraform.tfstate"), state)
	tf, err := tfcli.New(p.dir, tfcli.Options{Emulator: m.Moto.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(ctx); err != nil {
		t.Fatalf("terraform init: %v", err)
	}
	p.tf = tf
	return p
}

// plan plans without refreshing and returns the plan.
func (p *planCopy) plan() *tfjson.Plan {
	p.t.Helper()
	out := filepath.Join(p.dir, "check.tfplan")
	if _, err := p.tf.Plan(p.ctx, tfexec.Refresh(false), tfexec.Out(out)); err != nil {
		p.t.Fatalf("terraform plan: %v", err)
	}
	pl, err := p.tf.ShowPlanFile(p.ctx, out)
	if err != nil {
		p.t.Fatalf("terraform show: %v", err)
	}
	return pl
}

// stripLifecycle removes the lifecycle blocks of the resources of type typ
// named in names (all of that type when names is empty) from the copied
// configuration: the control run, without the stack's ignore_changes.
func (p *planCopy) stripLifecycle(typ string, names ...string) {
	p.t.Helper()
	cfg := readJSON(p.t, p.file)
	rs, _ := cfg["resource"].(map[string]any)[typ].(map[string]any)
	n := 0
	for name, body := range rs {
		if len(names) > 0 && !slices.Contains(names, name) {
			continue
		}
		if _, ok := body.(map[string]any)["lifecycle"]; ok {
			delete(body.(map[string]any), "lifecycle")
			n++
		}
	}
	if n == 0 {
		p.t.Fatalf("control: no lifecycle to strip from %s %v in %s", typ, names, p.file)
	}
	writeJSON(p.t, p.file, cfg)
}

// planCheck is one property a plan after a DR operation must hold: edit
// rewrites the copied state as a refresh after the operation reads it,
// changes lists what a plan would do that breaks the property, and strip
// removes the stack's ignore_changes that keep it, for the control.
type planCheck struct {
	name    string
	edit    func(t *testing.T, resources []map[string]any)
	changes func(t *testing.T, p *tfjson.Plan) []string
	strip   func(p *planCopy)
}

// checkPlansAfterDROperations shows that an ordinary plan after the DR
// operations moves nothing back (switchoverCheck) and lifts no fence
// (fenceCheck). It copies the applied configuration and state, applies every
// check's edit to the one state, and plans without refreshing: no check may
// see a change. As a control, the same plan without the stack's
// ignore_changes must show every check's change, so each check can fail.
// The checks share the two plans: each plan of this stack costs about 35 s
// of CPU, most of it the provider's start-up.
func checkPlansAfterDROperations(t *testing.T, ctx context.Context, m *env.Manifest, checks ...planCheck) {
	p := newPlanCopy(t, ctx, m, func(resources []map[string]any) {
		for _, c := range checks {
			c.edit(t, resources)
		}
	})
	plan := p.plan()
	for _, c := range checks {
		if changed := c.changes(t, plan); len(changed) > 0 {
			t.Errorf("%s: the plan would %q", c.name, changed)
		}
	}
	for _, c := range checks {
		c.strip(p)
	}
	control := p.plan()
	for _, c := range checks {
		if changed := c.changes(t, control); len(changed) == 0 {
			t.Errorf("%s: control: without ignore_changes the plan changes nothing either, so this check proves nothing", c.name)
		} else {
			t.Logf("%s: control: without ignore_changes the plan would %q", c.name, changed)
		}
	}
}

// switchoverCheck: after a switchover — the writer moved to the secondary
// cluster — a plan of the stack changes nothing that would move it back.
// The edit rewrites the two clusters' role fields as a refresh after a
// switchover reads them (the old writer now replicates from the new one
// and, as terraform-provider-aws #42919 shows, may read with no global
// cluster).
var switchoverCheck = planCheck{
	name: "after a switchover, moving the writer back",
	edit: func(t *testing.T, resources []map[string]any) {
		arn := map[string]string{}
		for _, rm := range resources {
			if rm["type"] == "aws_rds_cluster" {
				arn[rm["name"].(string)], _ = attrs(rm)["arn"].(string)
			}
		}
		if arn["primary"] == "" || arn["secondary"] == "" {
			t.Fatalf("cluster ARNs in the state = %v, want both", arn)
		}
		for _, rm := range resources {
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
	},
	// changes lists what the plan would do to the writer role: replace the
	// global cluster or a cluster, or change a cluster's role fields. (The
	// emulator adds drift of its own to other fields — tags it does not
	// keep, scaling_configuration it returns for provisioned clusters —
	// which moves nothing.)
	changes: func(_ *testing.T, p *tfjson.Plan) []string {
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
	},
	strip: func(p *planCopy) { p.stripLifecycle("aws_rds_cluster") },
}

// processorFunctions are the processor Lambda functions' resource names:
// what a DR fence throttles with PutFunctionConcurrency(0).
var processorFunctions = []string{"primary_processor", "secondary_processor"}

// fenceCheck: an ordinary apply after a DR fence keeps the region fenced.
// The fence is PutFunctionConcurrency(0) on the processor functions; a
// refresh then reads reserved_concurrent_executions = 0 while the
// configuration leaves it unset (-1), and an apply that managed it would
// call DeleteFunctionConcurrency: the fence lifted. The edit sets
// reserved_concurrent_executions = 0 on both processor functions.
var fenceCheck = planCheck{
	name: "after a fence, lifting it",
	edit: func(t *testing.T, resources []map[string]any) {
		found := map[string]any{}
		for _, rm := range resources {
			if rm["type"] == "aws_lambda_function" && slices.Contains(processorFunctions, rm["name"].(string)) {
				a := attrs(rm)
				found[rm["name"].(string)] = a["reserved_concurrent_executions"]
				a["reserved_concurrent_executions"] = 0
			}
		}
		if len(found) != len(processorFunctions) {
			t.Fatalf("processor functions in the state = %v, want %v", found, processorFunctions)
		}
		t.Logf("reserved_concurrent_executions before the fence: %v", found)
	},
	// changes lists what the plan would do to the fenced functions'
	// concurrency: replace or delete them, or change the setting.
	changes: func(t *testing.T, p *tfjson.Plan) []string {
		var changed, seen []string
		for _, rc := range p.ResourceChanges {
			if rc.Type != "aws_lambda_function" || !slices.Contains(processorFunctions, rc.Name) {
				continue
			}
			seen = append(seen, rc.Name)
			if rc.Change.Actions.Delete() || rc.Change.Actions.Replace() || rc.Change.Actions.Create() {
				changed = append(changed, rc.Address+" "+actions(rc.Change.Actions))
				continue
			}
			before, _ := rc.Change.Before.(map[string]any)
			after, _ := rc.Change.After.(map[string]any)
			if fmt.Sprint(before["reserved_concurrent_executions"]) != fmt.Sprint(after["reserved_concurrent_executions"]) {
				changed = append(changed, fmt.Sprintf("%s.reserved_concurrent_executions %v -> %v (%s)",
					rc.Address, before["reserved_concurrent_executions"], after["reserved_concurrent_executions"], actions(rc.Change.Actions)))
			}
		}
		if len(seen) != len(processorFunctions) {
			t.Fatalf("the plan covers processor functions %v, want %v", seen, processorFunctions)
		}
		return changed
	},
	strip: func(p *planCopy) { p.stripLifecycle("aws_lambda_function", processorFunctions...) },
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
