package stack

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"paydr/internal/needs"
	"paydr/internal/tfcli"
)

// TestTerraformValidates runs the real terraform validate, offline, on the
// stack for each target and configuration.
func TestTerraformValidates(t *testing.T) {
	needs.Terraform(t)
	for name, c := range goldenConfigs() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "cdk.tf.json"), synth(t, c), 0o644); err != nil {
				t.Fatal(err)
			}
			// validate evaluates filebase64sha256 on the package; any file will do.
			if err := os.WriteFile(filepath.Join(dir, c.ProcessorZip), []byte("zip"), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := tfcli.New(dir, tfcli.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Validate(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// BenchmarkSynthFullStack builds and synthesizes the whole two-region stack,
// preflight included. Target: under 50 ms and 50 MB.
func BenchmarkSynthFullStack(b *testing.B) {
	b.ReportAllocs()
	c := Defaults()
	for b.Loop() {
		st, err := Build(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Synth(); err != nil {
			b.Fatal(err)
		}
	}
}
