// Package environ is the processor's configuration as environment
// variables: their names, spelled here once, and Vars, which the stack (with
// Terraform expressions as values, on the Lambda function) and the local
// environment (with strings, on the local server) fill to start a processor.
// It imports only the standard library, so synthesis can use it without
// linking the processor.
package environ

import "reflect"

// The variable names.
const (
	Region         = "PAYDR_REGION"
	SessionsTable  = "PAYDR_SESSIONS_TABLE"
	EventBus       = "PAYDR_EVENT_BUS"
	DBHost         = "PAYDR_DB_HOST"
	DBPort         = "PAYDR_DB_PORT"
	DBName         = "PAYDR_DB_NAME"
	DBHealthHost   = "PAYDR_DB_HEALTH_HOST"
	DBSecretARN    = "PAYDR_DB_SECRET_ARN"
	DBUser         = "PAYDR_DB_USER"
	DBPassword     = "PAYDR_DB_PASSWORD"
	DBPasswordFile = "PAYDR_DB_PASSWORD_FILE"
	DBCAFile       = "PAYDR_DB_CA_FILE"
	// DBMasterSecretARN is the provisioning function's: the secret of the
	// master user it provisions the ledger as. The processor never has it.
	DBMasterSecretARN = "PAYDR_DB_MASTER_SECRET_ARN"
	// Mode selects what the bootstrap binary runs: "" the processor,
	// ModeProvision the provisioning function (paydr/internal/provisioner).
	Mode           = "PAYDR_MODE"
	DBDSN          = "PAYDR_DB_DSN"
	AWSEndpoint    = "PAYDR_AWS_ENDPOINT"
	Listen         = "PAYDR_LISTEN"
	RequestTimeout = "PAYDR_REQUEST_TIMEOUT"
	APIKeyParam    = "PAYDR_API_KEY_PARAM"
)

// ModeProvision is the value of Mode that makes the bootstrap binary the
// provisioning function.
const ModeProvision = "provision"

// Vars is a processor's environment with values of type S. Unset (zero)
// fields are left out of Map.
type Vars[S any] struct {
	Region        S // the AWS region, e.g. us-east-1 (required)
	SessionsTable S // the DynamoDB session table (required)
	EventBus      S // the EventBridge bus, name or ARN (required)
	DBHost        S // the ledger's writer endpoint (or DBDSN)
	DBPort        S
	DBName        S
	DBHealthHost  S // this region's cluster endpoint, for /health
	DBSecretARN   S // the secret holding the database credentials (the application role's)
	DBUser        S
	DBPassword    S
	// DBPasswordFile names a file holding the password (local: kept 0600
	// in the state directory, so it is in no process environment or
	// manifest); read at each new connection.
	DBPasswordFile S
	// DBCAFile names the PEM bundle the database server's certificate must
	// chain to (sslmode=verify-full): the RDS CA bundle in the Lambda
	// package, the local CA's certificate locally.
	DBCAFile S
	// DBMasterSecretARN and Mode are the provisioning function's (the
	// same binary in another mode); a processor has neither.
	DBMasterSecretARN S
	Mode              S
	DBDSN             S // a full DSN instead of the DB* fields (local)
	AWSEndpoint       S // an emulator endpoint for every AWS service (local)
	Listen            S // the local server's address
	// RequestTimeout is the deadline of a payment request, a Go duration
	// such as 10s (default 10s).
	RequestTimeout S
	// APIKeyParam names the SSM SecureString holding the payments API key
	// (paydr/internal/apikey.ParameterName), read in this region (required).
	APIKeyParam S
}

// Map returns the set variables by name.
func (v Vars[S]) Map() map[string]S {
	out := map[string]S{}
	add := func(name string, val S) {
		if !reflect.ValueOf(&val).Elem().IsZero() {
			out[name] = val
		}
	}
	add(Region, v.Region)
	add(SessionsTable, v.SessionsTable)
	add(EventBus, v.EventBus)
	add(DBHost, v.DBHost)
	add(DBPort, v.DBPort)
	add(DBName, v.DBName)
	add(DBHealthHost, v.DBHealthHost)
	add(DBSecretARN, v.DBSecretARN)
	add(DBUser, v.DBUser)
	add(DBPassword, v.DBPassword)
	add(DBPasswordFile, v.DBPasswordFile)
	add(DBCAFile, v.DBCAFile)
	add(DBMasterSecretARN, v.DBMasterSecretARN)
	add(Mode, v.Mode)
	add(DBDSN, v.DBDSN)
	add(AWSEndpoint, v.AWSEndpoint)
	add(Listen, v.Listen)
	add(RequestTimeout, v.RequestTimeout)
	add(APIKeyParam, v.APIKeyParam)
	return out
}
