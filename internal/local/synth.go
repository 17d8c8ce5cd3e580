package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"paydr/internal/bundle"
	"paydr/internal/local/env"
	"paydr/internal/stack"
)

// The steps of Up that make the local stack: the processor's Lambda zip,
// then the stack synthesized for the local target and written with it into
// the stack directory (stack.WriteDir), where Terraform applies it.

// localConfig is the stack's configuration for the local target, on the
// emulator at endpoint.
func (o UpOptions) localConfig(endpoint string) stack.Config {
	cfg := stack.Defaults()
	cfg.EnvironmentSuffix = o.Suffix
	cfg.Target = stack.TargetLocal
	cfg.Endpoint = endpoint
	cfg.LocalStatePath = "terraform.tfstate"
	cfg.HealthCheckInterval = 10
	cfg.HealthCheckFailureThreshold = o.FailureThreshold
	return cfg
}

// stackDir is the directory of the local stack.
func (u *upRun) stackDir() string { return u.l.StackDir(u.cfg.StackName()) }

// buildZip builds the processor's Lambda zip in the stack directory from
// the paydr module, or takes --processor-zip's. It fixes the stack's
// configuration, which names the emulator started before it.
func (u *upRun) buildZip(ctx context.Context) (string, error) {
	u.cfg = u.o.localConfig(u.moto.Endpoint())
	dir := u.stackDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	if u.o.ProcessorZip != "" {
		if _, err := os.Stat(u.o.ProcessorZip); err != nil {
			return "", fmt.Errorf("up: --processor-zip: %w", err)
		}
		u.zip = u.o.ProcessorZip // copied into the stack directory with the stack
		return "copied " + u.o.ProcessorZip, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	art, err := bundle.Build(cctx, bundle.Options{OutDir: dir, ZipName: u.cfg.ProcessorZip, ModuleDir: u.o.ModuleDir, SharedCache: bundle.SharedCacheDir()})
	if err != nil {
		return "", fmt.Errorf("up: build processor zip: %w; run paydr up from the paydr module (or pass --processor-zip)", err)
	}
	u.zip = art.ZipPath
	return fmt.Sprintf("%s (%d KiB)", art.ZipPath, art.Size/1024), nil
}

// synthesize builds the local stack and writes it, with the zip, into the
// stack directory.
func (u *upRun) synthesize(context.Context) (string, error) {
	st, err := stack.Build(u.cfg)
	if err != nil {
		return "", fmt.Errorf("up: synthesize: %w", err)
	}
	file, err := st.WriteDir(u.stackDir(), u.zip)
	if err != nil {
		return "", fmt.Errorf("up: synthesize: %w", err)
	}
	u.st = st
	return fmt.Sprintf("%d resources -> %s", st.Resources(), file), nil
}

// recordStack prints the synthesis notes and enters the stack, with its
// hash, in the manifest.
func (u *upRun) recordStack(context.Context) error {
	for _, n := range u.st.Notes {
		fmt.Fprintf(u.o.Out, "      note: %s\n", n)
	}
	dir := u.stackDir()
	hash, err := stackHash(dir, u.cfg.ProcessorZip)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	u.m.Stack = env.Stack{Name: u.cfg.StackName(), Dir: dir, File: filepath.Join(dir, stack.FileName),
		StatePath: filepath.Join(dir, u.cfg.LocalStatePath), LogPath: u.l.TerraformLog(), Hash: hash}
	return nil
}

// stackHash is the SHA-256 of the stack's JSON and the processor zip.
func stackHash(dir, zip string) (string, error) {
	h := sha256.New()
	for _, f := range []string{stack.FileName, zip} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "", fmt.Errorf("hash stack: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
