package processor

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"paydr/internal/processor/environ"
)

// Environment variable names of the processor's configuration, defined in
// paydr/internal/processor/environ (which the stack and the local
// environment use to set them).
const (
	EnvRegion         = environ.Region
	EnvSessionsTable  = environ.SessionsTable
	EnvEventBus       = environ.EventBus
	EnvDBHost         = environ.DBHost
	EnvDBPort         = environ.DBPort
	EnvDBName         = environ.DBName
	EnvDBHealthHost   = environ.DBHealthHost
	EnvDBSecretARN    = environ.DBSecretARN
	EnvDBUser         = environ.DBUser
	EnvDBPassword     = environ.DBPassword
	EnvDBPasswordFile = environ.DBPasswordFile
	EnvDBCAFile       = environ.DBCAFile
	EnvDBDSN          = environ.DBDSN
	EnvAWSEndpoint    = environ.AWSEndpoint
	EnvListen         = environ.Listen
	EnvRequestTimeout = environ.RequestTimeout
	EnvAPIKeyParam    = environ.APIKeyParam
)

// Defaults of optional settings.
const (
	DefaultDBPort         = 5432
	DefaultDBName         = "payments"
	DefaultListen         = "127.0.0.1:8080"
	DefaultRequestTimeout = 10 * time.Second
)

// MaxRequestTimeout bounds PAYDR_REQUEST_TIMEOUT. A payment's answer can
// take the deadline, then payment.RecheckTimeout to read the ledger again
// after a lost answer, or up to 2 s of after-commit side effects; all of it
// must fit, with room for a cold start, under API Gateway's 29 s
// integration timeout and the Lambda's 30 s (internal/stack), whose own
// 504 would carry no body.
const MaxRequestTimeout = 20 * time.Second

// Config is the processor's configuration. In AWS the stack sets it on the
// Lambda function; locally the local environment sets it for the server.
type Config struct {
	Region        string // PAYDR_REGION, e.g. us-east-1 (required)
	SessionsTable string // PAYDR_SESSIONS_TABLE (required)
	EventBus      string // PAYDR_EVENT_BUS, name or ARN (required)

	DBHost       string // PAYDR_DB_HOST: the writer endpoint payments go to
	DBPort       int    // PAYDR_DB_PORT (default 5432)
	DBName       string // PAYDR_DB_NAME (default payments)
	DBHealthHost string // PAYDR_DB_HEALTH_HOST: this region's own cluster endpoint (default DBHost)
	DBSecretARN  string // PAYDR_DB_SECRET_ARN: Secrets Manager JSON {"username","password"} (AWS)
	DBUser       string // PAYDR_DB_USER (local)
	DBPassword   string // PAYDR_DB_PASSWORD (local)
	// DBPasswordFile is PAYDR_DB_PASSWORD_FILE (local): a file holding the
	// password, read at each new connection; it keeps the password out of
	// the process environment.
	DBPasswordFile string
	// DBCAFile is PAYDR_DB_CA_FILE: the PEM bundle of certificate
	// authorities the database server's certificate must chain to. With it
	// every connection uses TLS and verifies the server's name against the
	// host dialled (sslmode=verify-full), and never falls back to
	// plaintext. It is required, except with PAYDR_DB_DSN: a DSN without it
	// keeps its own sslmode, which is for tests and tools only.
	DBCAFile string
	DBDSN    string // PAYDR_DB_DSN: full connection string, overrides host/port/name/user (tests, tools)

	AWSEndpoint string // PAYDR_AWS_ENDPOINT: endpoint for DynamoDB, EventBridge, Secrets Manager, SSM (emulator)
	Listen      string // PAYDR_LISTEN: address of the local HTTP server (default 127.0.0.1:8080)

	// RequestTimeout is PAYDR_REQUEST_TIMEOUT, a Go duration (default 10s,
	// at most MaxRequestTimeout): the deadline of a payment request's
	// database work, after which it answers 503 or 504.
	RequestTimeout time.Duration

	// APIKeyParam is PAYDR_API_KEY_PARAM (required): the SSM SecureString
	// holding the payments API key, /paydr/<suffix>/api/key, read in this
	// region (see APIKey). There is no way to run the processor without
	// one: a missing setting is a configuration error, not an open API.
	APIKeyParam string
}

// ConfigFromEnv reads the configuration through getenv (os.Getenv in
// production), applies defaults and validates it.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Region:         getenv(EnvRegion),
		SessionsTable:  getenv(EnvSessionsTable),
		EventBus:       getenv(EnvEventBus),
		DBHost:         getenv(EnvDBHost),
		DBName:         getenv(EnvDBName),
		DBHealthHost:   getenv(EnvDBHealthHost),
		DBSecretARN:    getenv(EnvDBSecretARN),
		DBUser:         getenv(EnvDBUser),
		DBPassword:     getenv(EnvDBPassword),
		DBPasswordFile: getenv(EnvDBPasswordFile),
		DBCAFile:       getenv(EnvDBCAFile),
		DBDSN:          getenv(EnvDBDSN),
		AWSEndpoint:    getenv(EnvAWSEndpoint),
		Listen:         getenv(EnvListen),
		APIKeyParam:    getenv(EnvAPIKeyParam),
	}
	var errs []error
	if p := getenv(EnvDBPort); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%q is not a port number", EnvDBPort, p))
		}
		c.DBPort = port
	}
	c.RequestTimeout = DefaultRequestTimeout
	if v := getenv(EnvRequestTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%q is not a duration such as 10s", EnvRequestTimeout, v))
		} else {
			c.RequestTimeout = d
		}
	}
	if c.DBPort == 0 && len(errs) == 0 {
		c.DBPort = DefaultDBPort
	}
	if c.DBName == "" {
		c.DBName = DefaultDBName
	}
	if c.DBHealthHost == "" {
		c.DBHealthHost = c.DBHost
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate reports every problem of c, each naming its environment variable
// and what to set.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("config: "+format, args...)) }
	if c.Region == "" {
		add("%s is required (this processor's AWS region, e.g. us-east-1)", EnvRegion)
	}
	if c.SessionsTable == "" {
		add("%s is required (the DynamoDB sessions table name)", EnvSessionsTable)
	}
	if c.EventBus == "" {
		add("%s is required (the region's EventBridge bus name or ARN)", EnvEventBus)
	}
	if c.DBDSN == "" {
		if c.DBHost == "" {
			add("%s is required unless %s is set", EnvDBHost, EnvDBDSN)
		}
		if c.DBSecretARN == "" && c.DBUser == "" {
			add("%s (in AWS) or %s (locally) is required unless %s is set", EnvDBSecretARN, EnvDBUser, EnvDBDSN)
		}
		if c.DBCAFile == "" {
			add("%s is required: the ledger is reached over TLS that verifies the server (sslmode=verify-full); set it to the RDS CA bundle (%s in the Lambda package) or, locally, to the CA paydr up made (only %s, for tests and tools, may go without)", EnvDBCAFile, "/var/task/rds-ca-bundle.pem", EnvDBDSN)
		}
	}
	if c.DBPassword != "" && c.DBPasswordFile != "" {
		add("%s and %s are both set; set one", EnvDBPassword, EnvDBPasswordFile)
	}
	if (c.DBPassword != "" || c.DBPasswordFile != "") && c.DBSecretARN != "" {
		add("%s is set with %s, which supplies the password; unset one", EnvDBSecretARN, map[bool]string{true: EnvDBPassword, false: EnvDBPasswordFile}[c.DBPassword != ""])
	}
	if c.APIKeyParam == "" {
		add("%s is required (the SSM SecureString holding the payments API key, /paydr/<suffix>/api/key): POST /payments is never served without authentication", EnvAPIKeyParam)
	}
	if c.DBPort < 1 || c.DBPort > 65535 {
		add("%s=%d is out of range 1..65535", EnvDBPort, c.DBPort)
	}
	if c.AWSEndpoint != "" {
		if u, err := url.Parse(c.AWSEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("%s=%q must be an http(s) URL such as http://127.0.0.1:5000", EnvAWSEndpoint, c.AWSEndpoint)
		}
	}
	if c.RequestTimeout <= 0 || c.RequestTimeout > MaxRequestTimeout {
		add("%s=%s is out of range: set a duration above 0s and at most %s, so the answer comes before API Gateway's 29 s and the Lambda's 30 s", EnvRequestTimeout, c.RequestTimeout, MaxRequestTimeout)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("%s=%q must be host:port", EnvListen, c.Listen)
	}
	return errors.Join(errs...)
}

// ledgerDSN returns the connection string for host (user and password are
// left out when they come from Secrets Manager). With PAYDR_DB_DSN set it is
// that DSN; the host is then overridden by the caller.
func (c Config) ledgerDSN(host string) string {
	if c.DBDSN != "" {
		return c.DBDSN
	}
	u := url.URL{
		Scheme: "postgres",
		Host:   net.JoinHostPort(host, strconv.Itoa(c.DBPort)),
		Path:   "/" + c.DBName,
	}
	if c.DBSecretARN == "" && c.DBUser != "" {
		u.User = url.UserPassword(c.DBUser, c.DBPassword)
	}
	return u.String()
}
