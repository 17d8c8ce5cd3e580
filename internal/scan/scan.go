// Package scan checks the stack as a security reviewer's scanner would:
// Trivy's misconfiguration rules run on the JSON of a terraform plan of
// the AWS target, made offline. The plan is computed against a throwaway
// AWS API emulator (the synthesized configuration is left as it is; an
// override file beside it points both providers at the emulator and keeps
// the state local), so no AWS account, credentials or network are needed,
// and what is scanned is what terraform would create on AWS: every
// resource with its planned values, not the local target's gaps.
//
// Findings come back with the reason paydr keeps each one (Explained):
// HIGH and CRITICAL findings, and any finding without a reason, fail the
// scan.
package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-exec/tfexec"

	"paydr/internal/stack"
	"paydr/internal/tfcli"
)

// OverrideFile is the file PlanJSON writes beside the configuration.
// Terraform merges *_override.tf.json files into the configuration: its
// backend replaces the S3 backend, its provider blocks add the emulator's
// test credentials and account to the two providers. The emulator's URL
// reaches the providers as AWS_ENDPOINT_URL (tfcli.Options.Emulator), not
// as an endpoints block, which costs each provider process seconds of CPU.
const OverrideFile = "paydr_scan_override.tf.json"

// Override returns the override configuration that plans the stack
// against the emulator with the provider aliases given ("" for the default
// provider).
func Override(aliases []string) ([]byte, error) {
	var providers []map[string]any
	for _, a := range aliases {
		p := map[string]any{
			// The emulator's well-known test credentials: not a secret.
			"access_key":                  "test",
			"secret_key":                  "test",
			"skip_credentials_validation": true,
			"skip_metadata_api_check":     "true",
			"s3_use_path_style":           true,
			"allowed_account_ids":         []string{stack.EmulatorAccountID},
		}
		if a != "" {
			p["alias"] = a
		}
		providers = append(providers, p)
	}
	return json.MarshalIndent(map[string]any{
		"terraform": map[string]any{"backend": map[string]any{"local": map[string]string{"path": "scan.tfstate"}}},
		"provider":  map[string]any{"aws": providers},
	}, "", "  ")
}

// providerAliases reads the aliases of the aws providers of the
// configuration file in dir ("" for the default one).
func providerAliases(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Provider struct {
			AWS []struct {
				Alias string `json:"alias"`
			} `json:"aws"`
		} `json:"provider"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(cfg.Provider.AWS) == 0 {
		return nil, fmt.Errorf("%s: no aws provider", file)
	}
	var out []string
	for _, p := range cfg.Provider.AWS {
		out = append(out, p.Alias)
	}
	return out, nil
}

// PlanJSON plans the configuration in dir (cdk.tf.json) against the
// emulator at endpoint and returns the path of the plan's JSON
// (dir/plan.json, terraform show -json). Nothing is applied.
func PlanJSON(ctx context.Context, dir, endpoint string, opts tfcli.Options) (string, error) {
	opts.Emulator = endpoint
	aliases, err := providerAliases(filepath.Join(dir, "cdk.tf.json"))
	if err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	o, err := Override(aliases)
	if err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, OverrideFile), o, 0o644); err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	tf, err := tfcli.New(dir, opts)
	if err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	if err := tf.Init(ctx); err != nil {
		return "", fmt.Errorf("scan: terraform init: %w", err)
	}
	if _, err := tf.Plan(ctx, tfexec.Out("plan.bin"), tfexec.Refresh(false), tfexec.Lock(false)); err != nil {
		return "", fmt.Errorf("scan: terraform plan: %w", err)
	}
	plan, err := tf.ShowPlanFile(ctx, "plan.bin")
	if err != nil {
		return "", fmt.Errorf("scan: terraform show -json: %w", err)
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	out := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(out, raw, 0o644); err != nil {
		return "", fmt.Errorf("scan: %w", err)
	}
	return out, nil
}

// EnvTrivy names the environment variable that overrides the trivy
// executable.
const EnvTrivy = "PAYDR_TRIVY"

// ErrNoTrivy is wrapped by FindTrivy's error when trivy is not installed.
var ErrNoTrivy = errors.New("trivy not installed")

// TrivyVersion is the version paydr's scan is written against.
const TrivyVersion = "v0.74.0"

// InstallHint says how to install trivy offline, from the Go module proxy.
const InstallHint = "GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@" + TrivyVersion + " (a cold build takes about 6 minutes), or set " + EnvTrivy

// FindTrivy returns the trivy executable: $PAYDR_TRIVY, trivy on PATH, or
// the one go install put in $(go env GOPATH)/bin.
func FindTrivy() (string, error) {
	if p := os.Getenv(EnvTrivy); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvTrivy, p, ErrNoTrivy)
		}
		return p, nil
	}
	if p, err := exec.LookPath("trivy"); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var dirs []string
		if len(lines) > 0 && lines[0] != "" {
			dirs = append(dirs, lines[0])
		}
		if len(lines) > 1 && lines[1] != "" {
			dirs = append(dirs, filepath.Join(strings.Split(lines[1], string(os.PathListSeparator))[0], "bin"))
		}
		for _, d := range dirs {
			p := filepath.Join(d, "trivy")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNoTrivy, InstallHint)
}

// Finding is one failed misconfiguration check.
type Finding struct {
	// ID is Trivy's check id (AWS-0104), AVDID its older one (AVD-AWS-0104).
	ID    string `json:"id"`
	AVDID string `json:"avd_id,omitempty"`
	// Severity is LOW, MEDIUM, HIGH or CRITICAL.
	Severity string `json:"severity"`
	Title    string `json:"title"`
	Message  string `json:"message"`
	// Resource is the Terraform address the finding is about.
	Resource string `json:"resource"`
	URL      string `json:"url,omitempty"`
	// Reason is why paydr keeps it (Explained); empty when nothing says.
	Reason string `json:"reason,omitempty"`
}

// Blocking reports whether f fails the scan: HIGH or CRITICAL, or kept
// without a reason.
func (f Finding) Blocking() bool {
	return f.Severity == "HIGH" || f.Severity == "CRITICAL" || f.Reason == ""
}

// Report is a scan's outcome.
type Report struct {
	// Passed counts the checks that passed, Findings the ones that failed.
	Passed   int       `json:"passed"`
	Findings []Finding `json:"findings"`
}

// Blocking returns the findings that fail the scan.
func (r Report) Blocking() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Blocking() {
			out = append(out, f)
		}
	}
	return out
}

// trivyReport is the part of trivy's JSON report a scan reads.
type trivyReport struct {
	Results []struct {
		Target            string `json:"Target"`
		MisconfSummary    *struct{ Successes, Failures int }
		Misconfigurations []struct {
			ID            string `json:"ID"`
			AVDID         string `json:"AVDID"`
			Title         string `json:"Title"`
			Message       string `json:"Message"`
			Severity      string `json:"Severity"`
			Status        string `json:"Status"`
			PrimaryURL    string `json:"PrimaryURL"`
			CauseMetadata struct {
				Resource string `json:"Resource"`
			} `json:"CauseMetadata"`
		} `json:"Misconfigurations"`
	} `json:"Results"`
}

// ParseTrivy reads trivy's JSON report (trivy config --format json) and
// attaches each finding's reason from Explained.
func ParseTrivy(b []byte) (Report, error) {
	var tr trivyReport
	if err := json.Unmarshal(b, &tr); err != nil {
		return Report{}, fmt.Errorf("scan: trivy's report: %w", err)
	}
	var r Report
	for _, res := range tr.Results {
		if res.MisconfSummary != nil {
			r.Passed += res.MisconfSummary.Successes
		}
		for _, m := range res.Misconfigurations {
			if m.Status != "" && m.Status != "FAIL" {
				continue
			}
			f := Finding{ID: m.ID, AVDID: m.AVDID, Severity: m.Severity, Title: m.Title, Message: m.Message,
				Resource: m.CauseMetadata.Resource, URL: m.PrimaryURL}
			f.Reason = Explain(f)
			r.Findings = append(r.Findings, f)
		}
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if sa, sb := severityRank(a.Severity), severityRank(b.Severity); sa != sb {
			return sa > sb
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Resource < b.Resource
	})
	return r, nil
}

func severityRank(s string) int {
	switch s {
	case "CRITICAL":
		return 4
	case "HIGH":
		return 3
	case "MEDIUM":
		return 2
	case "LOW":
		return 1
	}
	return 0
}

// Trivy runs trivy's misconfiguration scan on planJSON, offline (its
// built-in checks; no update is fetched), and returns the report.
func Trivy(ctx context.Context, bin, planJSON string) (Report, error) {
	cmd := exec.CommandContext(ctx, bin, "config", "--format", "json", "--quiet", "--skip-check-update", planJSON)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Report{}, fmt.Errorf("scan: %s config %s: %w: %s", bin, planJSON, err, strings.TrimSpace(stderr.String()))
	}
	return ParseTrivy(out)
}

// Render prints r: a summary line, then each finding with its reason.
func Render(w io.Writer, r Report) {
	counts := map[string]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	fmt.Fprintf(w, "trivy: %d checks passed, %d findings (critical %d, high %d, medium %d, low %d), %d blocking\n",
		r.Passed, len(r.Findings), counts["CRITICAL"], counts["HIGH"], counts["MEDIUM"], counts["LOW"], len(r.Blocking()))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "\n%s %s %s\n  %s\n  %s\n", f.Severity, f.ID, f.Resource, f.Title, f.Message)
		switch {
		case f.Blocking() && f.Reason != "":
			fmt.Fprintf(w, "  BLOCKING (%s): %s\n", f.Severity, f.Reason)
		case f.Blocking():
			fmt.Fprintf(w, "  BLOCKING: no reason recorded; fix it, or say why it stays in internal/scan/explained.go\n")
		default:
			fmt.Fprintf(w, "  kept: %s\n", f.Reason)
		}
	}
}

// BlockingSummary is the error text of a scan with blocking findings.
func BlockingSummary(b []Finding) string {
	var ids []string
	for _, f := range b {
		ids = append(ids, f.Severity+" "+f.ID+" "+f.Resource)
	}
	return fmt.Sprintf("scan: %d blocking findings: %s", len(b), strings.Join(ids, "; "))
}
