package tfcli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindMirror(t *testing.T) {
	empty := t.TempDir()
	unpacked := t.TempDir()
	if err := os.MkdirAll(filepath.Join(unpacked, "registry.terraform.io/hashicorp/aws/5.100.0/linux_arm64"), 0o755); err != nil {
		t.Fatal(err)
	}
	packed := t.TempDir()
	dir := filepath.Join(packed, "registry.terraform.io/hashicorp/aws")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "terraform-provider-aws_5.100.0_linux_arm64.zip"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"unpacked wins in order", []string{empty, unpacked, packed}, unpacked},
		{"packed zip", []string{empty, packed}, packed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findMirror(tt.candidates, "linux_arm64")
			if err != nil || got != tt.want {
				t.Errorf("findMirror() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	_, err := findMirror([]string{empty}, "linux_arm64")
	if !errors.Is(err, ErrNoMirror) || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "PAYDR_PROVIDER_MIRROR") {
		t.Errorf("findMirror(empty) = %v, want ErrNoMirror naming where it looked and PAYDR_PROVIDER_MIRROR", err)
	}
}

func TestCLIConfigHasNoNetworkInstaller(t *testing.T) {
	c := CLIConfig("/mirror")
	if !strings.Contains(c, `path    = "/mirror"`) {
		t.Errorf("CLIConfig lacks the mirror path:\n%s", c)
	}
	if strings.Contains(c, "direct") || strings.Contains(c, "network_mirror") {
		t.Errorf("CLIConfig allows a network install:\n%s", c)
	}
}

func TestRunEnv(t *testing.T) {
	tests := []struct {
		name     string
		environ  []string
		emulator string
		extra    map[string]string
		want     map[string]string // keys that must have these values
		absent   []string
	}{
		{
			name:    "the user's CLI configuration and plugin cache are replaced",
			environ: []string{"TF_CLI_CONFIG_FILE=/home/u/.terraformrc", "TF_PLUGIN_CACHE_DIR=/home/u/cache", "PATH=/bin"},
			want:    map[string]string{"TF_CLI_CONFIG_FILE": "/run/paydr.tfrc", "CHECKPOINT_DISABLE": "1", "PATH": "/bin", "GOGC": GOGC},
			absent:  []string{"TF_PLUGIN_CACHE_DIR"},
		},
		{
			name:    "a GOGC the caller set is kept",
			environ: []string{"GOGC=50"},
			want:    map[string]string{"GOGC": "50"},
		},
		{
			name:     "against an emulator, every AWS call goes there and the caller's AWS configuration is not read",
			emulator: "http://10.1.0.1:5000",
			environ: []string{"AWS_PROFILE=prod", "AWS_ENDPOINT_URL=https://other", "AWS_ENDPOINT_URL_DYNAMODB=https://ddb",
				"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true", "AWS_ACCESS_KEY_ID=AKIA", "AWS_SECRET_ACCESS_KEY=x", "AWS_SESSION_TOKEN=y",
				"AWS_CONFIG_FILE=/home/u/.aws/config", "AWS_REGION=eu-west-1", "PATH=/bin"},
			want: map[string]string{"AWS_ENDPOINT_URL": "http://10.1.0.1:5000", "AWS_CONFIG_FILE": os.DevNull,
				"AWS_SHARED_CREDENTIALS_FILE": os.DevNull, "AWS_EC2_METADATA_DISABLED": "true", "PATH": "/bin", "AWS_REGION": "eu-west-1"},
			absent: []string{"AWS_PROFILE", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
				"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
		},
		{
			name:    "without an emulator, the caller's AWS configuration is kept",
			environ: []string{"AWS_PROFILE=prod", "AWS_ENDPOINT_URL_DYNAMODB=https://ddb"},
			want:    map[string]string{"AWS_PROFILE": "prod", "AWS_ENDPOINT_URL_DYNAMODB": "https://ddb"},
			absent:  []string{"AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"},
		},
		{
			name:  "extra variables win",
			extra: map[string]string{"AWS_REGION": "us-west-2", "GOGC": "off"},
			want:  map[string]string{"AWS_REGION": "us-west-2", "GOGC": "off"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runEnv(tt.environ, "/run/paydr.tfrc", tt.emulator, tt.extra)
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			for _, k := range tt.absent {
				if v, ok := got[k]; ok {
					t.Errorf("%s = %q, want it unset", k, v)
				}
			}
		})
	}
}
