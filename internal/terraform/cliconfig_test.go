package terraform_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"paydr/internal/needs"
	"paydr/internal/terraform"
)

// An external test: needs imports this package.
func TestNewWritesItsOwnCLIConfig(t *testing.T) {
	if _, err := terraform.LookPath(); err != nil {
		needs.Tool(t, err)
	}
	t.Setenv("TF_CLI_CONFIG_FILE", "/nonexistent/.terraformrc")
	dir := t.TempDir()
	r, err := terraform.New(dir, terraform.Options{Mirror: "/some/mirror"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Dir(), ".terraform", "paydr.tfrc"))
	if err != nil || !strings.Contains(string(b), "/some/mirror") {
		t.Errorf("paydr.tfrc = %q, %v", b, err)
	}
}
