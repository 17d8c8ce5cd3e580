package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"paydr/internal/apikey/ssmkey"
	"paydr/internal/events"
	"paydr/internal/ledger"
	"paydr/internal/payment"
	"paydr/internal/sdkhttp"
	"paydr/internal/sessions"
)

// App is a processor wired to its real stores.
type App struct {
	Handler *Handler
	Outbox  Outbox         // the service's outbox sweep
	Ledger  *ledger.Ledger // the ledger payments are written to
	health  *ledger.Ledger // this region's own cluster, when it differs
}

// AppOptions tune New.
type AppOptions struct {
	Logger   *slog.Logger // nil: slog.Default()
	MaxConns int32        // database pool size (Lambda: 2; server: more)
	// Migrate lets the ledger apply missing migrations before its first
	// write (ledger.Options.Migrate): tests that connect as the database's
	// owner. The processor's binaries never set it; they connect as the
	// application role, which cannot.
	Migrate bool
}

// New wires the processor for cfg: the PostgreSQL ledger (credentials from
// Secrets Manager when PAYDR_DB_SECRET_ARN is set), the DynamoDB sessions
// store, the EventBridge publisher, the API key (the SSM SecureString named
// by PAYDR_API_KEY_PARAM, see APIKey) and the HTTP/Lambda handler. It does
// no network I/O: connections, the secret, the API key and the schema check
// are made on first use, which keeps a Lambda's init short. When PAYDR_AWS_ENDPOINT
// is set and AWS_ACCESS_KEY_ID is not, static emulator credentials
// ("test"/"test") are used; otherwise the credentials come from the
// environment (see awsConfig).
func New(ctx context.Context, cfg Config, opts AppOptions) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	awsCfg, err := awsConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var endpoint *string
	if cfg.AWSEndpoint != "" {
		endpoint = aws.String(cfg.AWSEndpoint)
	}
	ddb := dynamodb.NewFromConfig(awsCfg, func(o *dynamodb.Options) { o.BaseEndpoint = endpoint })
	eb := eventbridge.NewFromConfig(awsCfg, func(o *eventbridge.Options) { o.BaseEndpoint = endpoint })

	var creds ledger.Credentials
	if cfg.DBSecretARN != "" {
		sm := secretsmanager.NewFromConfig(awsCfg, func(o *secretsmanager.Options) { o.BaseEndpoint = endpoint })
		creds = (&secretCredentials{api: sm, arn: cfg.DBSecretARN, ttl: 10 * time.Minute}).get
	}
	if cfg.DBPasswordFile != "" {
		creds = passwordFile(cfg.DBUser, cfg.DBPasswordFile)
	}
	main, err := ledger.Open(ledger.Options{DSN: cfg.ledgerDSN(cfg.DBHost), Credentials: creds, Region: cfg.Region, MaxConns: opts.MaxConns, CAFile: cfg.DBCAFile, Migrate: opts.Migrate})
	if err != nil {
		return nil, fmt.Errorf("processor: %w", err)
	}
	app := &App{Ledger: main}
	probe := main
	if cfg.DBHealthHost != "" && cfg.DBHealthHost != cfg.DBHost {
		app.health, err = ledger.Open(ledger.Options{DSN: cfg.ledgerDSN(cfg.DBHealthHost), Host: cfg.DBHealthHost, Credentials: creds, Region: cfg.Region, MaxConns: 1, CAFile: cfg.DBCAFile})
		if err != nil {
			main.Close()
			return nil, fmt.Errorf("processor: %w", err)
		}
		probe = app.health
	}
	store := sessions.New(ddb, cfg.SessionsTable, sessions.Options{})
	svc := payment.NewService(payment.Deps{
		Ledger:   main,
		Sessions: store,
		Events:   events.New(eb, cfg.EventBus),
		Region:   cfg.Region,
		Logger:   log,
	})
	app.Outbox = svc
	params := ssm.NewFromConfig(awsCfg, func(o *ssm.Options) { o.BaseEndpoint = endpoint })
	key := NewAPIKey(func(ctx context.Context) (string, error) { return ssmkey.Read(ctx, params, cfg.APIKeyParam) }, APIKeyOptions{Logger: log})
	app.Handler = NewHandler(Options{Service: svc, Outbox: svc, Database: probe, Sessions: store, Region: cfg.Region, Logger: log,
		RequestTimeout: cfg.RequestTimeout, APIKey: key})
	return app, nil
}

// Close releases the database pools.
func (a *App) Close() {
	a.Ledger.Close()
	if a.health != nil {
		a.health.Close()
	}
}

// awsConfig returns the SDK configuration from the environment's
// credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN:
// Lambda always sets them), or static "test" credentials for the emulator
// when PAYDR_AWS_ENDPOINT is set. It deliberately avoids the SDK's default
// chain (config.LoadDefaultConfig): that package links the SSO, STS, sign-in
// and IMDS clients, whose package initialisation alone cost the Lambda init
// about 20 ms on a loaded 2-core machine, for providers never used there.
func awsConfig(_ context.Context, cfg Config) (aws.Config, error) {
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if id == "" && cfg.AWSEndpoint != "" {
		id, secret = "test", "test"
	}
	if id == "" || secret == "" {
		return aws.Config{}, fmt.Errorf("processor: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them), or %s for the emulator", EnvAWSEndpoint)
	}
	return aws.Config{
		Region:      cfg.Region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN")),
		APIOptions:  sdkhttp.APIOptions(),
	}, nil
}

// passwordFile returns credentials of user whose password is read from
// path at each new connection, so a password rotated by paydr up is picked
// up without a restart.
func passwordFile(user, path string) ledger.Credentials {
	return func(context.Context) (string, string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", "", fmt.Errorf("read %s (%s): %w", path, EnvDBPasswordFile, err)
		}
		return user, strings.TrimRight(string(b), "\r\n"), nil
	}
}

// SecretsAPI is the part of the Secrets Manager client used for database
// credentials.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// secretCredentials reads {"username","password"} from a secret and caches
// it for ttl, so a rotated password is picked up by new connections.
type secretCredentials struct {
	api  SecretsAPI
	arn  string
	ttl  time.Duration
	mu   sync.Mutex
	user string
	pass string
	at   time.Time
}

func (s *secretCredentials) get(ctx context.Context) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.at.IsZero() && time.Since(s.at) < s.ttl {
		return s.user, s.pass, nil
	}
	out, err := s.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &s.arn})
	if err != nil {
		return "", "", fmt.Errorf("get secret %s: %w", s.arn, err)
	}
	var v struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if out.SecretString == nil || json.Unmarshal([]byte(*out.SecretString), &v) != nil || v.Username == "" {
		return "", "", fmt.Errorf("get secret %s: want JSON {\"username\",\"password\"}", s.arn)
	}
	s.user, s.pass, s.at = v.Username, v.Password, time.Now()
	return s.user, s.pass, nil
}
