package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"paydr/internal/bundle"
	"paydr/internal/dr"
	"paydr/internal/dr/drill"
	"paydr/internal/local"
)

// Backends are the parts of the command line that call AWS APIs through the
// AWS SDK: the DR backends of paydr dr and the payment processor of paydr
// serve. Go initialises every package a binary links before main runs,
// whichever command runs, and the SDK's service clients take tens of
// milliseconds to initialise; so the paydr binary links none of them and
// runs these commands in a second binary, paydr-aws (ExecBackends), which
// is the same command line with the real Backends
// (paydr/internal/cli/awsapi). Every other command, and the help and flag
// checks of these, run in paydr itself.
type Backends interface {
	// LocalDR opens the DR backend of the local environment in stateDir.
	LocalDR(ctx context.Context, stateDir string) (LocalDR, error)
	// LocalJournal opens the DR journal and lock of the local environment
	// in stateDir, without needing the environment to run.
	LocalJournal(ctx context.Context, stateDir string) (*dr.Journal, dr.Locker, error)
	// AWSDR connects to the deployed stack, acting from o.Region.
	AWSDR(ctx context.Context, o AWSOptions) (dr.Backend, dr.Locker, error)
	// Identities makes the identities of a local environment whose
	// emulator enforces IAM (paydr up's iam step).
	Identities(ctx context.Context) (local.Identities, error)
	// Serve serves the payment processor over HTTP on listen (PAYDR_LISTEN
	// when empty), configured from PAYDR_* environment variables, logging
	// to log, until ctx ends.
	Serve(ctx context.Context, listen string, log io.Writer) error
}

// LocalDR is the local environment's DR backend, opened.
type LocalDR struct {
	Backend dr.Backend
	Journal *dr.Journal
	Locker  dr.Locker
	Drill   drill.Env
}

// AWSOptions say which deployed stack paydr dr acts on.
type AWSOptions struct {
	Suffix   string // the stack's environment suffix
	Region   string // the region to act from
	Endpoint string // an emulator endpoint for every service, or empty
}

// AWSBinary is the name of the binary ExecBackends runs.
const AWSBinary = "paydr-aws"

// EnvAWSBin, when set, is the path of the paydr-aws binary.
const EnvAWSBin = "PAYDR_AWS_BIN"

// ExecBackends returns the Backends of the paydr binary: each call replaces
// the process (execve: same pid, standard streams and signals) with
// paydr-aws run with this process's arguments (os.Args), which runs the
// whole command again with the real Backends. It returns only when
// paydr-aws cannot be found or started. Use it only from a main whose
// command line is os.Args.
//
// paydr-aws is, in this order: $PAYDR_AWS_BIN; the paydr-aws beside the
// running paydr (go build -o DIR/ ./cmd/paydr ./cmd/paydr-aws, as ./dev.sh
// does); or, when paydr runs in its checkout, .paydr/bin/paydr-aws there,
// built on first use and rebuilt when the module's files change (the build
// cache of paydr/internal/bundle).
func ExecBackends(progress io.Writer) Backends { return execBackends{progress: progress} }

type execBackends struct{ progress io.Writer }

func (e execBackends) LocalDR(ctx context.Context, _ string) (LocalDR, error) {
	return LocalDR{}, e.exec(ctx)
}

func (e execBackends) LocalJournal(ctx context.Context, _ string) (*dr.Journal, dr.Locker, error) {
	return nil, nil, e.exec(ctx)
}

func (e execBackends) AWSDR(ctx context.Context, _ AWSOptions) (dr.Backend, dr.Locker, error) {
	return nil, nil, e.exec(ctx)
}

func (e execBackends) Serve(ctx context.Context, _ string, _ io.Writer) error { return e.exec(ctx) }

func (e execBackends) Identities(ctx context.Context) (local.Identities, error) {
	return nil, e.exec(ctx)
}

func (e execBackends) exec(ctx context.Context) error {
	path, err := findAWSBinary(ctx, e.progress)
	if err != nil {
		return err
	}
	argv := append([]string{path}, os.Args[1:]...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil // not reached
}

// findAWSBinary returns the path of paydr-aws (see ExecBackends).
func findAWSBinary(ctx context.Context, progress io.Writer) (string, error) {
	if p := os.Getenv(EnvAWSBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvAWSBin, p, err)
		}
		return p, nil
	}
	var beside string
	if exe, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(exe); err == nil {
			exe = resolved
		}
		beside = filepath.Join(filepath.Dir(exe), AWSBinary)
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() {
			return beside, nil
		}
	}
	root, err := bundle.ModuleRoot("")
	if err != nil {
		return "", fmt.Errorf("%s not found beside paydr (%s) and paydr is not run in its checkout (%w): build both with go build -o DIR/ ./cmd/paydr ./cmd/paydr-aws, or set %s",
			AWSBinary, beside, err, EnvAWSBin)
	}
	p, err := bundle.BuildTool(ctx, bundle.ToolOptions{
		ModuleDir: root, Package: "paydr/cmd/" + AWSBinary, OutDir: filepath.Join(root, ".paydr", "bin"), Name: AWSBinary, Progress: progress,
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", AWSBinary, err)
	}
	return p, nil
}
