package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"paydr/internal/cli"
	"paydr/internal/cli/awsapi"
	"paydr/internal/golden"
)

// TestMain lets testscript run paydr in-process as a command, with the
// AWS backends linked in as paydr-aws has them.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"paydr": func() { os.Exit(cli.Run(context.Background(), awsapi.Backends(), os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts drives the real CLI from the txtar scripts in testdata/script.
// go test -update rewrites their expected output, as it rewrites every
// golden file.
func TestScripts(t *testing.T) {
	_, thisFile, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(thisFile), "..", "..")
	testscript.Run(t, testscript.Params{
		Dir:           filepath.Join("testdata", "script"),
		UpdateScripts: *golden.Update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PAYDR_ROOT", root)
			for _, k := range []string{"HOME", "GOPATH", "GOCACHE", "GOMODCACHE", "GOFLAGS", "PATH", "CI", "PAYDR_PROVIDER_MIRROR"} {
				if v, ok := os.LookupEnv(k); ok {
					env.Setenv(k, v)
				}
			}
			return nil
		},
	})
}
