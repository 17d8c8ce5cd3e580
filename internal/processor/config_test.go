package processor

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigFromEnv(t *testing.T) {
	local := map[string]string{
		EnvRegion: "us-east-1", EnvSessionsTable: "paydr-sessions", EnvEventBus: "paydr",
		EnvDBHost: "127.0.0.1", EnvDBUser: "paydr", EnvDBPassword: "p@ss word", EnvAPIKeyParam: "/paydr/local/api/key",
		EnvDBCAFile: "/state/tls/ca.pem",
	}
	c, err := ConfigFromEnv(envOf(local))
	if err != nil {
		t.Fatalf("ConfigFromEnv(local) error = %v", err)
	}
	want := Config{
		Region: "us-east-1", SessionsTable: "paydr-sessions", EventBus: "paydr",
		DBHost: "127.0.0.1", DBPort: 5432, DBName: "payments", DBHealthHost: "127.0.0.1",
		DBUser: "paydr", DBPassword: "p@ss word", DBCAFile: "/state/tls/ca.pem", Listen: "127.0.0.1:8080",
		RequestTimeout: DefaultRequestTimeout, APIKeyParam: "/paydr/local/api/key",
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ConfigFromEnv(local) mismatch (-want +got):\n%s", diff)
	}
	if got, want := c.ledgerDSN(c.DBHost), "postgres://paydr:p%40ss%20word@127.0.0.1:5432/payments"; got != want {
		t.Errorf("ledgerDSN = %q, want %q", got, want)
	}
	aws := map[string]string{
		EnvRegion: "us-west-2", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBHost: "global.cluster-x.rds.amazonaws.com",
		EnvDBHealthHost: "west.cluster-y.rds.amazonaws.com", EnvDBSecretARN: "arn:aws:secretsmanager:us-west-2:1:secret:db", EnvDBPort: "6432",
		EnvRequestTimeout: "2500ms", EnvAPIKeyParam: "/paydr/dev/api/key", EnvDBCAFile: "/var/task/rds-ca-bundle.pem",
	}
	c, err = ConfigFromEnv(envOf(aws))
	if err != nil {
		t.Fatalf("ConfigFromEnv(aws) error = %v", err)
	}
	if got, want := c.ledgerDSN(c.DBHealthHost), "postgres://west.cluster-y.rds.amazonaws.com:6432/payments"; got != want {
		t.Errorf("ledgerDSN(health) = %q, want %q (no credentials: they come from the secret)", got, want)
	}
	if c.RequestTimeout != 2500*time.Millisecond {
		t.Errorf("RequestTimeout = %s, want 2.5s", c.RequestTimeout)
	}
}

func TestConfigValidateNamesVariables(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // variable names that must appear
	}{
		{"empty", map[string]string{}, []string{EnvRegion, EnvSessionsTable, EnvEventBus, EnvDBHost, EnvDBSecretARN, EnvAPIKeyParam}},
		// Fail closed: no key parameter is no processor, never an open API.
		{"no api key parameter", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y"}, []string{EnvAPIKeyParam}},
		{"bad port", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvDBPort: "http"}, []string{EnvDBPort}},
		{"bad endpoint", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvAWSEndpoint: "localhost:5000"}, []string{EnvAWSEndpoint}},
		{"request timeout without unit", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvRequestTimeout: "10"}, []string{EnvRequestTimeout}},
		{"request timeout zero", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvRequestTimeout: "0s"}, []string{EnvRequestTimeout}},
		{"request timeout past API Gateway's", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvRequestTimeout: "29s"}, []string{EnvRequestTimeout}},
		// TLS that verifies the server is not optional: only a DSN (tests,
		// tools) may go without a CA.
		{"no CA bundle", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBHost: "h", EnvDBSecretARN: "arn", EnvAPIKeyParam: "/k"}, []string{EnvDBCAFile, "verify-full"}},
		{"password twice", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBHost: "h", EnvDBUser: "u", EnvDBPassword: "p", EnvDBPasswordFile: "/f", EnvDBCAFile: "/ca", EnvAPIKeyParam: "/k"}, []string{EnvDBPassword, EnvDBPasswordFile}},
		{"password beside the secret", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBHost: "h", EnvDBSecretARN: "arn", EnvDBPasswordFile: "/f", EnvDBCAFile: "/ca", EnvAPIKeyParam: "/k"}, []string{EnvDBSecretARN, EnvDBPasswordFile}},
		{"bad listen", map[string]string{EnvRegion: "r", EnvSessionsTable: "t", EnvEventBus: "b", EnvDBDSN: "postgres://x/y", EnvAPIKeyParam: "/k", EnvListen: "8080"}, []string{EnvListen}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigFromEnv(envOf(tt.env))
			if err == nil {
				t.Fatalf("ConfigFromEnv(%v) error = nil, want one naming %v", tt.env, tt.want)
			}
			for _, v := range tt.want {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("ConfigFromEnv error %q does not name %s", err, v)
				}
			}
		})
	}
}
