package localdr

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependsOnTheManifestNotOnUp keeps the local DR backend light: it needs
// env.json (package env), process control, the PostgreSQL pair and the
// router's client, not paydr up (package local) nor the stack's synthesis and
// Terraform, which a failover has no use for.
func TestDependsOnTheManifestNotOnUp(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "paydr/internal/dr/localdr").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; the check would be vacuous", len(deps))
	}
	exact := []string{"paydr/internal/local"}
	trees := []string{"paydr/internal/stack", "paydr/internal/tf", "paydr/internal/tfcli", "paydr/internal/bundle", "paydr/internal/cli", "github.com/hashicorp/"}
	for _, d := range deps {
		for _, f := range exact {
			if d == f {
				t.Errorf("paydr/internal/dr/localdr depends on %s", d)
			}
		}
		for _, f := range trees {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("paydr/internal/dr/localdr depends on %s (forbidden: %s)", d, f)
			}
		}
	}
}
