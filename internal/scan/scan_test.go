package scan

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"paydr/internal/local/moto/mototest"
	"paydr/internal/stack"
	"paydr/internal/tfcli"
)

func TestOverrideReplacesBackendAndHoldsEveryProviderToTheEmulator(t *testing.T) {
	b, err := Override([]string{"", "secondary"})
	if err != nil {
		t.Fatal(err)
	}
	var o struct {
		Terraform struct {
			Backend map[string]any `json:"backend"`
		} `json:"terraform"`
		Provider struct {
			AWS []struct {
				Alias             string              `json:"alias"`
				Endpoints         []map[string]string `json:"endpoints"`
				AccessKey         string              `json:"access_key"`
				AllowedAccountIDs []string            `json:"allowed_account_ids"`
			} `json:"aws"`
		} `json:"provider"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Terraform.Backend["local"]; !ok || len(o.Terraform.Backend) != 1 {
		t.Errorf("backend = %v, want only local (the S3 backend must not be touched)", o.Terraform.Backend)
	}
	if len(o.Provider.AWS) != 2 || o.Provider.AWS[0].Alias != "" || o.Provider.AWS[1].Alias != "secondary" {
		t.Fatalf("providers = %+v, want the default and secondary", o.Provider.AWS)
	}
	for _, p := range o.Provider.AWS {
		// The emulator's URL reaches the providers as AWS_ENDPOINT_URL
		// (tfcli.Options.Emulator): an endpoints block costs seconds of
		// CPU per provider process.
		if p.Endpoints != nil {
			t.Errorf("provider %q endpoints = %v, want none", p.Alias, p.Endpoints)
		}
		if p.AccessKey != "test" || len(p.AllowedAccountIDs) != 1 || p.AllowedAccountIDs[0] != stack.EmulatorAccountID {
			t.Errorf("provider %q access_key %q, allowed_account_ids %v; want the emulator's test key and account %s", p.Alias, p.AccessKey, p.AllowedAccountIDs, stack.EmulatorAccountID)
		}
	}
}

func TestParseTrivyKeepsFailuresWithReasons(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "trivy-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseTrivy(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed == 0 {
		t.Errorf("Passed = 0, want the checks that passed counted")
	}
	for _, f := range r.Findings {
		if f.ID == "" || f.Severity == "" || f.Resource == "" {
			t.Errorf("finding without id, severity or resource: %+v", f)
		}
		if f.Blocking() {
			t.Errorf("blocking finding in the recorded report of the current stack: %s %s %s (%s)", f.Severity, f.ID, f.Resource, f.Title)
		}
	}
	// A HIGH finding nobody explained fails.
	extra := `{"Results":[{"Target":"plan.json","Misconfigurations":[{"ID":"AWS-9999","AVDID":"AVD-AWS-9999","Title":"t","Message":"m","Severity":"HIGH","Status":"FAIL","CauseMetadata":{"Resource":"aws_s3_bucket.x"}}]}]}`
	bad, err := ParseTrivy([]byte(extra))
	if err != nil {
		t.Fatal(err)
	}
	if got := bad.Blocking(); len(got) != 1 || !strings.Contains(BlockingSummary(got), "HIGH AWS-9999 aws_s3_bucket.x") {
		t.Errorf("Blocking() = %+v, want the unexplained HIGH finding", got)
	}
}

// TestScanOfThePlan plans the AWS target against a throwaway emulator and
// scans it with trivy: no HIGH or CRITICAL finding, none unexplained. It
// needs terraform and its provider mirror, and trivy, which the test
// suite does not build (a cold build takes minutes): without trivy it
// stops after the plan, saying so.
func TestScanOfThePlan(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: plans the whole stack")
	}
	if _, err := tfcli.LookPath(); err != nil {
		t.Skipf("terraform: %v", err)
	}
	if _, err := tfcli.FindMirror(); err != nil {
		t.Skipf("provider mirror: %v", err)
	}
	srv := mototest.Start(t)
	st, err := stack.Build(stack.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	zip := filepath.Join(t.TempDir(), "processor.zip")
	if err := os.WriteFile(zip, []byte("not a real zip: nothing is applied"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.WriteDir(dir, zip); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	plan, err := PlanJSON(ctx, dir, srv.Endpoint(), tfcli.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		PlannedValues struct {
			RootModule struct {
				Resources []struct{ Address string } `json:"resources"`
			} `json:"root_module"`
		} `json:"planned_values"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if got, want := len(p.PlannedValues.RootModule.Resources), st.Resources(); got != want {
		t.Errorf("the plan has %d resources, want the stack's %d", got, want)
	}
	trivy, err := FindTrivy()
	if errors.Is(err, ErrNoTrivy) {
		t.Skipf("the plan is made; %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Trivy(ctx, trivy, plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Blocking() {
		t.Errorf("%s %s %s: %s (%s)", f.Severity, f.ID, f.Resource, f.Title, f.Message)
	}
}
