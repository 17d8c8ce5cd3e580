package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoSynthesisOrCLIImports keeps the Lambda binary free of the synthesis
// and CLI packages: they are large, slow its init, and have no business in
// the payment path.
func TestNoSynthesisOrCLIImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "paydr/cmd/processor").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; the check would be vacuous", len(deps))
	}
	forbidden := []string{"paydr/internal/tf", "paydr/internal/stack", "paydr/internal/cli", "github.com/spf13/cobra", "github.com/hashicorp/"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || (f == "paydr/internal/tf" && strings.HasPrefix(d, f)) {
				t.Errorf("paydr/cmd/processor depends on %s (forbidden: %s)", d, f)
			}
		}
	}
}
