package provisioner_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/jackc/pgx/v5"

	"paydr/internal/ledger"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/processor/environ"
	"paydr/internal/provisioner"
	"paydr/internal/sdkhttp"
)

const appPassword = "provisioner-test-app-password-0123456789"

// TestProvisionerAgainstPostgresAndSecrets runs the provisioning function
// as the stack invokes it, against PostgreSQL serving TLS and the two
// secrets in moto: it provisions the application role, which then connects
// over verify-full; its result names the role and the migrations and holds
// no secret; a second invocation applies nothing.
func TestProvisionerAgainstPostgresAndSecrets(t *testing.T) {
	srv, caFile := pgtest.StartTLS(t)
	m := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.New(secretsmanager.Options{APIOptions: sdkhttp.APIOptions(), Region: "us-east-1", BaseEndpoint: aws.String(m.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	arn := func(name string, v map[string]string) string {
		b, _ := json.Marshal(v)
		out, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(string(b))})
		if err != nil {
			t.Fatal(err)
		}
		return *out.ARN
	}
	// The local superuser stands in for the master user (trust on loopback).
	masterARN := arn("payment-db-test", map[string]string{"username": pg.Superuser, "password": "unused-by-trust", "dbname": "payments"})
	appARN := arn("payment-db-app-test", map[string]string{"username": ledger.AppUser, "password": appPassword, "dbname": "payments"})
	badARN := arn("payment-db-bad-test", map[string]string{"user": "x"})
	env := map[string]string{
		environ.Region: "us-east-1", environ.DBHost: "127.0.0.1", environ.DBPort: strconv.Itoa(srv.Port()), environ.DBName: "payments",
		environ.DBMasterSecretARN: masterARN, environ.DBSecretARN: appARN, environ.DBCAFile: caFile, environ.AWSEndpoint: m.Endpoint(),
	}
	cfg, err := provisioner.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	h, err := provisioner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Invoke(ctx, json.RawMessage(`{"paydr":"provision"}`))
	if err != nil {
		t.Fatalf("Invoke() error = %v", err)
	}
	all, _ := ledger.Migrations()
	if res.Role != ledger.AppUser || len(res.Applied) != len(all) || res.Schema != all[len(all)-1].Version {
		t.Errorf("Invoke() = %+v, want role %s, all %d migrations applied, schema %d", res, ledger.AppUser, len(all), all[len(all)-1].Version)
	}
	out, _ := json.Marshal(res)
	if strings.Contains(string(out), appPassword) || strings.Contains(string(out), "password") {
		t.Errorf("the result %s carries a secret; it is kept in Terraform state", out)
	}
	if res, err := h.Invoke(ctx, nil); err != nil || len(res.Applied) != 0 {
		t.Errorf("Invoke() again = %+v, %v; want no migration applied", res, err)
	}
	tlsCfg, err := ledger.VerifyFull(caFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cc, err := pgx.ParseConfig("postgres://" + ledger.AppUser + ":" + appPassword + "@127.0.0.1:" + strconv.Itoa(srv.Port()) + "/payments")
	if err != nil {
		t.Fatal(err)
	}
	cc.TLSConfig, cc.Fallbacks = tlsCfg, nil
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("connect as the provisioned role: %v", err)
	}
	conn.Close(ctx)

	env[environ.DBSecretARN] = badARN
	cfg, _ = provisioner.ConfigFromEnv(func(k string) string { return env[k] })
	h, _ = provisioner.New(cfg)
	if _, err := h.Invoke(ctx, nil); err == nil || !strings.Contains(err.Error(), badARN) {
		t.Errorf("Invoke() with a malformed secret: error = %v, want one naming %s", err, badARN)
	}
}

func TestConfigFromEnvNamesWhatIsMissing(t *testing.T) {
	_, err := provisioner.ConfigFromEnv(func(k string) string {
		if k == environ.DBMasterSecretARN || k == environ.DBSecretARN {
			return "arn:same"
		}
		return ""
	})
	for _, want := range []string{environ.Region, environ.DBHost, environ.DBCAFile, "the same secret"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ConfigFromEnv(incomplete) error = %v, want it to name %q", err, want)
		}
	}
}
