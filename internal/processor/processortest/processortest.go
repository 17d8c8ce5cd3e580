// Package processortest starts the processor's real dependencies for tests
// and benchmarks: a throwaway PostgreSQL server and moto, with the sessions
// table, event bus and API key parameter created as the stack creates them.
package processortest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"paydr/internal/apikey"
	"paydr/internal/ledger"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/processor"
	"paydr/internal/sdkhttp"
)

// APIKey is the payments API key Env writes: requests to a processor
// configured by Env carry it (apikey.Set). A test value, not a secret.
const APIKey = "processortest-key-0123456789abcdefghijklmnopqrstuvwxyz"

// Suffix is the environment suffix of the API key parameter Env writes.
const Suffix = "processortest"

// EnvMasterDSN is the key, in Env's map, of the superuser DSN of the same
// database (plaintext): for tests that need the owner or a proxy that reads
// the protocol. It is not a processor variable.
const EnvMasterDSN = "PROCESSORTEST_MASTER_DSN"

// AppPassword is the application role's password Env provisions (a test
// value, not a secret).
const AppPassword = "processortest-app-password-0123456789"

// Env starts PostgreSQL serving TLS and moto, provisions the database as
// paydr up and the stack do (ledger.Provision: the migrations and the
// application role), creates the sessions table, the event bus and the API
// key parameter (a SecureString holding APIKey) as the stack would, and
// returns the processor's environment variables (PAYDR_*: the application
// role over verify-full TLS, its password in a file; static AWS
// credentials for moto; and EnvMasterDSN). Both servers stop when the test
// ends; a missing server skips the test (fails under CI).
func Env(t testing.TB) map[string]string {
	t.Helper()
	pgSrv, caFile := pgtest.StartTLS(t)
	moto := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := pgSrv.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatalf("CreateDatabase error = %v", err)
	}
	master, err := ledger.Open(ledger.Options{DSN: pgSrv.DSN("payments"), Region: "us-east-1", MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = master.Provision(ctx, ledger.AppUser, AppPassword)
	master.Close()
	if err != nil {
		t.Fatalf("Provision error = %v", err)
	}
	passwordFile := filepath.Join(t.TempDir(), "db-app-password")
	if err := os.WriteFile(passwordFile, []byte(AppPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewStaticCredentialsProvider("test", "test", "")
	ddb := dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto.Endpoint()), Credentials: creds, APIOptions: sdkhttp.APIOptions()})
	_, err = ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("paydr-sessions"),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable error = %v", err)
	}
	eb := eventbridge.New(eventbridge.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto.Endpoint()), Credentials: creds, APIOptions: sdkhttp.APIOptions()})
	if _, err := eb.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("paydr")}); err != nil {
		t.Fatalf("CreateEventBus error = %v", err)
	}
	params := ssm.New(ssm.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto.Endpoint()), Credentials: creds, APIOptions: sdkhttp.APIOptions()})
	if _, err := params.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(apikey.ParameterName(Suffix)), Type: ssmtypes.ParameterTypeSecureString,
		Value: aws.String(APIKey)}); err != nil {
		t.Fatalf("PutParameter error = %v", err)
	}
	return map[string]string{
		processor.EnvRegion: "us-east-1", processor.EnvSessionsTable: "paydr-sessions", processor.EnvEventBus: "paydr",
		processor.EnvDBHost: pgSrv.Host(), processor.EnvDBPort: strconv.Itoa(pgSrv.Port()), processor.EnvDBName: "payments",
		processor.EnvDBUser: ledger.AppUser, processor.EnvDBPasswordFile: passwordFile, processor.EnvDBCAFile: caFile,
		EnvMasterDSN:             pgSrv.DSN("payments"),
		processor.EnvAWSEndpoint: moto.Endpoint(),
		processor.EnvAPIKeyParam: apikey.ParameterName(Suffix),
		"AWS_ACCESS_KEY_ID":      "test", "AWS_SECRET_ACCESS_KEY": "test",
	}
}
