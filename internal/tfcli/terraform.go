// Package tfcli runs the Terraform CLI for paydr through
// hashicorp/terraform-exec, offline.
//
// paydr's own Terraform runs never download a provider: [New] writes a CLI
// configuration of its own (never the user's ~/.terraformrc, whatever
// TF_CLI_CONFIG_FILE says) whose only installation method is a filesystem
// mirror that holds the pinned hashicorp/aws provider. [FindMirror] says where
// it looked when there is none.
package tfcli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-exec/tfexec"
)

// Provider identifies the provider paydr's stacks use and the mirror must hold.
const (
	ProviderHost      = "registry.terraform.io"
	ProviderNamespace = "hashicorp"
	ProviderType      = "aws"
	ProviderVersion   = "5.100.0"
)

// ErrNoTerraform is returned when no terraform binary can be found.
var ErrNoTerraform = errors.New("terraform binary not found: install Terraform >= 1.11 and put it on PATH, or set PAYDR_TERRAFORM to its path")

// ErrNoMirror is wrapped by the error [FindMirror] returns when no filesystem
// mirror holds the provider.
var ErrNoMirror = errors.New("no provider mirror")

// MirrorCandidates returns the directories [FindMirror] looks in, in order:
// $PAYDR_PROVIDER_MIRROR, then Terraform's implied local mirror directories.
func MirrorCandidates() []string {
	var dirs []string
	if d := os.Getenv("PAYDR_PROVIDER_MIRROR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/opt/tf-plugins")
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		dirs = append(dirs, filepath.Join(d, "terraform", "plugins"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".terraform.d", "plugins"), filepath.Join(home, ".local", "share", "terraform", "plugins"))
	}
	return append(dirs, "/usr/local/share/terraform/plugins", "/usr/share/terraform/plugins")
}

// FindMirror returns the first candidate directory that holds the pinned
// provider for this platform, unpacked or as a zip.
func FindMirror() (string, error) {
	return findMirror(MirrorCandidates(), platform())
}

func findMirror(candidates []string, plat string) (string, error) {
	rel := filepath.Join(ProviderHost, ProviderNamespace, ProviderType)
	for _, dir := range candidates {
		if fi, err := os.Stat(filepath.Join(dir, rel, ProviderVersion, plat)); err == nil && fi.IsDir() {
			return dir, nil
		}
		zip := fmt.Sprintf("terraform-provider-%s_%s_%s.zip", ProviderType, ProviderVersion, plat)
		if _, err := os.Stat(filepath.Join(dir, rel, zip)); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: hashicorp/aws %s for %s is in none of %s; "+
		"put it in a filesystem mirror (terraform providers mirror DIR on a connected machine) and set PAYDR_PROVIDER_MIRROR=DIR",
		ErrNoMirror, ProviderVersion, plat, strings.Join(candidates, ", "))
}

func platform() string {
	return runtime.GOOS + "_" + runtime.GOARCH
}

// CLIConfig returns the text of a Terraform CLI configuration that installs
// hashicorp/aws only from mirror and nothing from the network.
func CLIConfig(mirror string) string {
	return fmt.Sprintf(`# Written by paydr: providers come only from the filesystem mirror below.
provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["%s/%s/%s"]
  }
}
disable_checkpoint = true
`, mirror, ProviderHost, ProviderNamespace, ProviderType)
}

// Options configure a [Runner].
type Options struct {
	// Binary is the terraform executable; empty means $PAYDR_TERRAFORM, then PATH.
	Binary string
	// Mirror is the provider mirror; empty means [FindMirror].
	Mirror string
	// Emulator, when set, is the URL of an AWS API emulator that every AWS
	// call of the runs' providers goes to: see [EmulatorEnv].
	Emulator string
	// Env adds environment variables to every run; they win over the rest.
	Env map[string]string
	// Stdout and Stderr, when set, receive Terraform's output as it runs.
	Stdout, Stderr interface{ Write([]byte) (int, error) }
}

// Runner runs Terraform in one working directory.
type Runner struct {
	*tfexec.Terraform
	dir string
}

// LookPath returns the terraform binary paydr will run.
func LookPath() (string, error) {
	if p := os.Getenv("PAYDR_TERRAFORM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("PAYDR_TERRAFORM=%s does not exist: %w", p, ErrNoTerraform)
		}
		return p, nil
	}
	p, err := exec.LookPath("terraform")
	if err != nil {
		return "", ErrNoTerraform
	}
	return p, nil
}

// New returns a runner for the configuration in dir. It writes the CLI
// configuration to dir/.terraform/paydr.tfrc and points every run at it.
func New(dir string, opts Options) (*Runner, error) {
	bin := opts.Binary
	if bin == "" {
		var err error
		if bin, err = LookPath(); err != nil {
			return nil, err
		}
	}
	mirror := opts.Mirror
	if mirror == "" {
		var err error
		if mirror, err = FindMirror(); err != nil {
			return nil, err
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(abs, ".terraform"), 0o755); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	rc := filepath.Join(abs, ".terraform", "paydr.tfrc")
	if err := os.WriteFile(rc, []byte(CLIConfig(mirror)), 0o644); err != nil {
		return nil, fmt.Errorf("terraform: write cli config: %w", err)
	}
	tf, err := tfexec.NewTerraform(abs, bin)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	if err := tf.SetEnv(tfexec.CleanEnv(runEnv(os.Environ(), rc, opts.Emulator, opts.Env))); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	if opts.Stdout != nil {
		tf.SetStdout(opts.Stdout)
	}
	if opts.Stderr != nil {
		tf.SetStderr(opts.Stderr)
	}
	return &Runner{Terraform: tf, dir: abs}, nil
}

// GOGC is the garbage collector setting of paydr's Terraform runs, and so of
// the provider processes they start, unless the caller's environment sets
// GOGC. Every walk of a plan or apply starts one hashicorp/aws process per
// provider configuration, and each spends seconds of CPU building the
// provider's schemas; with Go's default of 100 a third of that is garbage
// collection. At 400, terraform validate of the stack took 10.5 s of CPU
// instead of 15 s (three runs each), and each provider process held about
// 780 MiB at its peak instead of 640 MiB.
const GOGC = "400"

// EmulatorEnv is how paydr points a configuration's providers at an AWS API
// emulator: AWS_ENDPOINT_URL, the AWS SDKs' endpoint for every service,
// rather than the provider's endpoints block. The block is costly: the
// provider validates it for seconds of CPU each time one of its processes
// is configured, and every walk of a plan or apply starts one process per
// provider configuration. With the block, a plan of the local stack took
// 26.5 s of CPU; without it, 10.3 s, with the same planned changes.
//
// So that nothing reaches AWS instead, nothing of the caller's AWS
// configuration is read: the variables in [awsIsolated] are dropped and
// the shared config and credentials files are /dev/null (a profile's
// services section, for one, would win over AWS_ENDPOINT_URL).
func EmulatorEnv(emulator string) map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":            emulator,
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// awsIsolated are the caller's AWS variables a run against an emulator
// drops, besides every AWS_ENDPOINT_URL_<SERVICE>.
var awsIsolated = []string{
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CA_BUNDLE",
}

// runEnv returns the environment of a Terraform run: environ (KEY=VALUE
// lines) with paydr's CLI configuration rc, the checkpoint call off, no
// plugin cache, GOGC unless environ sets it, the emulator's [EmulatorEnv]
// when emulator is set, and then extra.
func runEnv(environ []string, rc, emulator string, extra map[string]string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if emulator != "" {
		for k := range env {
			if strings.HasPrefix(k, "AWS_ENDPOINT_URL_") || slices.Contains(awsIsolated, k) {
				delete(env, k)
			}
		}
		maps.Copy(env, EmulatorEnv(emulator))
	}
	env["TF_CLI_CONFIG_FILE"] = rc
	env["CHECKPOINT_DISABLE"] = "1"
	delete(env, "TF_PLUGIN_CACHE_DIR")
	if _, ok := env["GOGC"]; !ok {
		env["GOGC"] = GOGC
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// Dir returns the working directory.
func (r *Runner) Dir() string { return r.dir }

// Validate runs terraform init -backend=false and terraform validate, and
// returns the validation problems as an error naming each one's location.
func (r *Runner) Validate(ctx context.Context) error {
	if err := r.Init(ctx, tfexec.Backend(false)); err != nil {
		return fmt.Errorf("terraform init: %w", err)
	}
	out, err := r.Terraform.Validate(ctx)
	if err != nil {
		return fmt.Errorf("terraform validate: %w", err)
	}
	if out.Valid {
		return nil
	}
	var lines []string
	for _, d := range out.Diagnostics {
		loc := ""
		if d.Range != nil {
			loc = fmt.Sprintf("%s:%d: ", filepath.Base(d.Range.Filename), d.Range.Start.Line)
		}
		lines = append(lines, fmt.Sprintf("%s%s: %s %s", loc, d.Severity, d.Summary, d.Detail))
	}
	return fmt.Errorf("terraform validate: %d problems:\n  %s", out.ErrorCount, strings.Join(lines, "\n  "))
}
