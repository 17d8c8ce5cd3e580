package stack

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/golden"
)

// allVars sets every configuration variable to a non-default value.
func allVars() Config {
	c := FromEnv(func(k string) string {
		return map[string]string{
			"ENVIRONMENT_SUFFIX":            "prod",
			"TERRAFORM_STATE_BUCKET":        "acme-tf-states",
			"TERRAFORM_STATE_BUCKET_REGION": "eu-west-1",
			"AWS_REGION":                    "eu-west-1",
			"REPOSITORY":                    "acme/payments",
			"COMMIT_AUTHOR":                 "sre-bot",
			"PR_NUMBER":                     "1234",
			"TEAM":                          "payments-sre",
			"ROUTE53_DOMAIN":                "payments.acme-corp.io",
			"CREATED_AT":                    "2026-11-25T00:00:00Z",
		}[k]
	})
	c.PrimaryRegion = "eu-west-1"
	c.SecondaryRegion = "eu-central-1"
	c.DBInstanceClass = "db.r6g.xlarge"
	c.DBEngineVersion = "16.4"
	c.RPOBoundSeconds = 60
	c.EnableDMS = false
	return c
}

// existingZoneConfig is a public domain in a zone that already exists: the
// stack creates no zone and writes its records into the given one.
func existingZoneConfig() Config {
	c := Defaults()
	c.EnvironmentSuffix = "pr42"
	c.Route53Domain = "pay.acme-corp.io"
	c.Route53ZoneID = "Z0123456789ABCDEFGHIJ"
	return c
}

func localConfig() Config {
	c := Defaults()
	c.Target = TargetLocal
	c.Endpoint = "http://127.0.0.1:5000"
	c.LocalStatePath = "terraform.tfstate"
	return c
}

func synth(t testing.TB, c Config) []byte {
	t.Helper()
	st, err := Build(c)
	if err != nil {
		t.Fatalf("Build() error: %v", err)
	}
	b, err := st.Synth()
	if err != nil {
		t.Fatalf("Synth() error: %v", err)
	}
	return b
}

// goldenConfigs are the configurations whose synthesis is kept in
// testdata/<name>.tf.json: the private failover name (defaults, local), and
// the public one in a zone the stack creates (all-vars) or in an existing
// zone (existing-zone).
func goldenConfigs() map[string]Config {
	return map[string]Config{"defaults": Defaults(), "all-vars": allVars(), "local": localConfig(), "existing-zone": existingZoneConfig()}
}

func TestGolden(t *testing.T) {
	for name, c := range goldenConfigs() {
		t.Run(name, func(t *testing.T) {
			got := synth(t, c)
			golden.Check(t, filepath.Join("testdata", name+".tf.json"), got)
			if again := synth(t, c); string(again) != string(got) {
				t.Error("two syntheses of the same config differ")
			}
		})
	}
}

// doc is a synthesized configuration, for assertions.
type doc map[string]any

func parse(t testing.TB, b []byte) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// res returns resource typ.name's body.
func (d doc) res(t testing.TB, typ, name string) map[string]any {
	t.Helper()
	m, ok := d.all(typ)[name]
	if !ok {
		t.Fatalf("no %s.%s in the configuration", typ, name)
	}
	return m.(map[string]any)
}

// all returns every resource of a type by name.
func (d doc) all(typ string) map[string]any {
	rs, _ := d["resource"].(map[string]any)
	m, _ := rs[typ].(map[string]any)
	return m
}

// block returns a resource's single nested block.
func block(t testing.TB, body map[string]any, name string) map[string]any {
	t.Helper()
	l, ok := body[name].([]any)
	if !ok || len(l) != 1 {
		t.Fatalf("block %s = %v, want exactly one", name, body[name])
	}
	return l[0].(map[string]any)
}

// policyDoc decodes a literal JSON policy or dashboard string, or returns nil
// when it is an expression.
func jsonString(t testing.TB, v any) map[string]any {
	t.Helper()
	s, _ := v.(string)
	if strings.HasPrefix(s, "${") {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	return m
}

func eq(t testing.TB, what string, got, want any) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}
