package local

import (
	"os"
	"testing"

	"paydr/internal/stack"
)

func TestZZProbeSynth(t *testing.T) {
	dir := os.Getenv("PROBE_DIR")
	if dir == "" {
		t.Skip()
	}
	cfg := stack.Defaults()
	cfg.EnvironmentSuffix = "local"
	cfg.Target = stack.TargetLocal
	cfg.Endpoint = os.Getenv("PROBE_EP")
	cfg.LocalStatePath = dir + "/terraform.tfstate"
	st, err := stack.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Synth()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(dir+"/cdk.tf.json", b, 0o644)
	for _, n := range st.Notes {
		t.Log(n)
	}
}
