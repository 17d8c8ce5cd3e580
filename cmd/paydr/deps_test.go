package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoAWSSDK keeps the paydr binary free of the AWS SDK and the packages
// that link it (the DR backends, the processor): Go initialises every
// linked package before main, whichever command runs, and the SDK's service
// clients took about 35 ms of the 47 ms of package initialisation of paydr
// --help. Those commands run in paydr-aws (paydr/internal/cli.ExecBackends).
func TestNoAWSSDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "paydr/cmd/paydr").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed %d packages; the check would be vacuous", len(deps))
	}
	// A name ending in / forbids everything under it; others, that package.
	forbidden := []string{"github.com/aws/", "paydr/internal/cli/awsapi", "paydr/internal/dr/awsdr", "paydr/internal/dr/localdr", "paydr/internal/processor", "paydr/internal/apikey/ssmkey", "paydr/internal/sessions", "paydr/internal/events"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
				t.Errorf("paydr/cmd/paydr depends on %s (forbidden: %s); keep it in paydr-aws, behind cli.Backends", d, f)
			}
		}
	}
}
