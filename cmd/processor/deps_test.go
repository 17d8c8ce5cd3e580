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

// TestNoSchemaSerde keeps the Lambda binary on the AWS SDK service clients'
// releases before schema-based (de)serialization (go.mod pins DynamoDB
// v1.68.0, EventBridge v1.48.7, Secrets Manager v1.49.0 and SSM v1.79.3,
// each the last release before its "Enable schema-based (de)serialization").
// A schema-serde client builds its whole service model as package-level
// variables when the binary starts: the four took about 14 ms of the
// Lambda's init, whether or not a request ever calls them. Moving a pin past that
// release fails here; measure BenchmarkLambdaInit before and after doing so
// on purpose.
func TestNoSchemaSerde(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags="+bundle.BuildTags, "paydr/cmd/processor").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, d := range strings.Fields(string(out)) {
		if strings.HasPrefix(d, "github.com/aws/aws-sdk-go-v2/service/") && strings.HasSuffix(d, "/schemas") {
			t.Errorf("paydr/cmd/processor links %s: its service module is past the pinned pre-schema release (see go.mod and this test)", d)
		}
	}
}
