// Package provisioner is the ledger's provisioning function in AWS: the
// processor's bootstrap binary run with PAYDR_MODE=provision, invoked by
// the stack's aws_lambda_invocation at apply. It reads the master user's
// secret and the application role's secret, connects to the writer as the
// master user over TLS that verifies the server (the RDS CA bundle in the
// package), and runs ledger.Provision: the migrations, then the
// application role with its password and grants. Locally, where the
// emulator cannot run Lambda code, paydr up calls ledger.Provision itself.
//
// Neither the invocation's input nor its result carries a secret: both are
// kept in Terraform state. The result names the role and the migrations
// applied.
package provisioner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"paydr/internal/ledger"
	"paydr/internal/processor/environ"
	"paydr/internal/sdkhttp"
)

// Config is the provisioning function's configuration, from the
// environment the stack sets.
type Config struct {
	Region          string // PAYDR_REGION
	DBHost          string // PAYDR_DB_HOST: the writer (the global writer endpoint)
	DBPort          int    // PAYDR_DB_PORT (default 5432)
	DBName          string // PAYDR_DB_NAME (default payments)
	MasterSecretARN string // PAYDR_DB_MASTER_SECRET_ARN: {"username","password"} of the master user
	AppSecretARN    string // PAYDR_DB_SECRET_ARN: {"username","password"} of the application role
	CAFile          string // PAYDR_DB_CA_FILE: the RDS CA bundle (verify-full)
	AWSEndpoint     string // PAYDR_AWS_ENDPOINT: an emulator (tests)
}

// ConfigFromEnv reads the configuration through getenv and reports every
// missing setting by its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Region: getenv(environ.Region), DBHost: getenv(environ.DBHost), DBName: getenv(environ.DBName),
		MasterSecretARN: getenv(environ.DBMasterSecretARN), AppSecretARN: getenv(environ.DBSecretARN),
		CAFile: getenv(environ.DBCAFile), AWSEndpoint: getenv(environ.AWSEndpoint), DBPort: 5432,
	}
	var errs []error
	if p := getenv(environ.DBPort); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			errs = append(errs, fmt.Errorf("provisioner: config: %s=%q is not a port number", environ.DBPort, p))
		}
		c.DBPort = n
	}
	if c.DBName == "" {
		c.DBName = "payments"
	}
	for _, req := range []struct{ name, val, what string }{
		{environ.Region, c.Region, "the region, e.g. us-east-1"},
		{environ.DBHost, c.DBHost, "the writer endpoint"},
		{environ.DBMasterSecretARN, c.MasterSecretARN, "the master user's secret"},
		{environ.DBSecretARN, c.AppSecretARN, "the application role's secret"},
		{environ.DBCAFile, c.CAFile, "the RDS CA bundle: provisioning connects with verify-full only"},
	} {
		if req.val == "" {
			errs = append(errs, fmt.Errorf("provisioner: config: %s is required (%s)", req.name, req.what))
		}
	}
	if c.MasterSecretARN != "" && c.MasterSecretARN == c.AppSecretARN {
		errs = append(errs, fmt.Errorf("provisioner: config: %s and %s name the same secret; the application role must have its own", environ.DBMasterSecretARN, environ.DBSecretARN))
	}
	return c, errors.Join(errs...)
}

// SecretsAPI is the part of the Secrets Manager client the function uses.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Handler provisions the ledger on each invocation.
type Handler struct {
	cfg     Config
	secrets SecretsAPI
}

// New returns the handler for cfg, with a Secrets Manager client from the
// environment's credentials (Lambda sets them), or static "test"
// credentials with an emulator endpoint. It does no network I/O.
func New(cfg Config) (*Handler, error) {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" && cfg.AWSEndpoint != "" {
		id, secret = "test", "test"
	}
	if id == "" || secret == "" {
		return nil, fmt.Errorf("provisioner: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them)")
	}
	awsCfg := aws.Config{Region: cfg.Region, Credentials: credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN")), APIOptions: sdkhttp.APIOptions()}
	sm := secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) {
		if cfg.AWSEndpoint != "" {
			o.BaseEndpoint = aws.String(cfg.AWSEndpoint)
		}
	})
	return NewWith(cfg, sm), nil
}

// NewWith returns the handler for cfg reading secrets through api.
func NewWith(cfg Config, api SecretsAPI) *Handler { return &Handler{cfg: cfg, secrets: api} }

// Result is what an invocation answers, kept in Terraform state: no secret.
type Result struct {
	Role    string `json:"role"`               // the application role provisioned
	Applied []int  `json:"applied_migrations"` // versions applied by this run
	Schema  int    `json:"schema_version"`     // the newest migration, now applied
}

// Invoke provisions the ledger; the payload is ignored (the stack sends a
// constant). It fails, and so fails the apply, when anything does.
func (h *Handler) Invoke(ctx context.Context, _ json.RawMessage) (Result, error) {
	master, err := h.secret(ctx, h.cfg.MasterSecretARN)
	if err != nil {
		return Result{}, err
	}
	app, err := h.secret(ctx, h.cfg.AppSecretARN)
	if err != nil {
		return Result{}, err
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(master.Username, master.Password),
		Host: net.JoinHostPort(h.cfg.DBHost, strconv.Itoa(h.cfg.DBPort)), Path: "/" + h.cfg.DBName}
	l, err := ledger.Open(ledger.Options{DSN: u.String(), Region: h.cfg.Region, MaxConns: 1, CAFile: h.cfg.CAFile})
	if err != nil {
		return Result{}, fmt.Errorf("provisioner: %w", err)
	}
	defer l.Close()
	applied, err := l.Provision(ctx, app.Username, app.Password)
	if err != nil {
		return Result{}, fmt.Errorf("provisioner: %w", err)
	}
	ms, err := ledger.Migrations()
	if err != nil {
		return Result{}, err
	}
	res := Result{Role: app.Username, Applied: applied}
	if applied == nil {
		res.Applied = []int{}
	}
	if len(ms) > 0 {
		res.Schema = ms[len(ms)-1].Version
	}
	return res, nil
}

type userPassword struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (h *Handler) secret(ctx context.Context, arn string) (userPassword, error) {
	out, err := h.secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &arn})
	if err != nil {
		return userPassword{}, fmt.Errorf("provisioner: get secret %s: %w", arn, err)
	}
	var v userPassword
	if out.SecretString == nil || json.Unmarshal([]byte(*out.SecretString), &v) != nil || v.Username == "" || v.Password == "" {
		return userPassword{}, fmt.Errorf("provisioner: secret %s: want JSON {\"username\",\"password\"}", arn)
	}
	return v, nil
}
