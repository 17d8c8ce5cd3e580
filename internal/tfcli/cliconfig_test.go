package tfcli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paydr/internal/needs"
	"paydr/internal/tfcli"
)

// An external test: needs imports this package.
func TestNewWritesItsOwnCLIConfig(t *testing.T) {
	if _, err := tfcli.LookPath(); err != nil {
		needs.Tool(t, err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", "/nonexistent/.terraformrc")
	dir := t.TempDir()
	r, err := tfcli.New(dir, tfcli.Options{Mirror: "/some/mirror"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir(), ".terraform", "paydr.tfrc"))
	if err != nil || !strings.Contains(string(b), "/some/mirror") {
		t.Errorf("paydr.tfrc = %q, %v", b, err)
	}
}
