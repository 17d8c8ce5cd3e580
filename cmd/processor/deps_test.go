package main

import (
	"os/exec"
	"strings"
	"testing"

	"paydr/internal/bundle"
)

// TestNoSynthesisOrCLIImports keeps the Lambda binary, as bundle builds it,
// free of the synthesis and CLI packages (large, slow to initialise, no
// business in the payment path) and of net/rpc and encoding/gob, which the
// lambda.norpc tag removes.
func TestNoSynthesisOrCLIImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags="+bundle.BuildTags, "paydr/cmd/processor").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; the check would be vacuous", len(deps))
	}
	forbidden := []string{"paydr/internal/tf", "paydr/internal/stack", "paydr/internal/cli", "github.com/spf13/cobra", "github.com/hashicorp/", "net/rpc", "encoding/gob"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || (f == "paydr/internal/tf" && strings.HasPrefix(d, f)) {
				t.Errorf("paydr/cmd/processor depends on %s (forbidden: %s)", d, f)
			}
		}
	}
}
