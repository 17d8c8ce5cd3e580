package stack

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"paydr/internal/apikey"
	"paydr/internal/apikey/ssmkey"
	"paydr/internal/events"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/payment"
	"paydr/internal/sdkhttp"
	"paydr/internal/sessions"
)

// enforcedPolicy returns the Allow statements of a role's policy as moto
// can enforce them: the same actions, on resource "*". moto 5.2 authorizes
// DynamoDB, SSM, EventBridge and Secrets Manager requests against the
// resource "*" (moto/core/responses.py: call_action asks a service for its
// resource and only IAM, STS and SQS say), so a statement naming an ARN
// never matches there; resources are what TestRolesGrantWhatTheCodeCalls
// and the synth goldens check. What enforcement proves is the action set:
// a call the role does not grant is an AccessDenied, as on AWS.
func enforcedPolicy(t testing.TB, doc map[string]any, without ...string) string {
	t.Helper()
	var out []map[string]any
	for _, st := range statements(t, doc) {
		if st["Effect"] != "Allow" {
			continue
		}
		var actions []string
		for _, a := range stringsOf(st["Action"]) {
			if !slices.Contains(without, a) {
				actions = append(actions, a)
			}
		}
		if len(actions) > 0 {
			out = append(out, map[string]any{"Effect": "Allow", "Action": actions, "Resource": "*"})
		}
	}
	b, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": out})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func staticConfig(endpoint, id, secret, token string) aws.Config {
	return aws.Config{APIOptions: sdkhttp.APIOptions(), Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, token)}
}

// TestProcessorCodeUnderEnforcedIAM runs the processor's own AWS adapters
// (the session cache, the event publisher, the API key read, the database
// secret) against the emulator with IAM enforced, on credentials of a role
// that holds exactly the processor policy's actions: every call must be
// allowed. The same role without dynamodb:BatchWriteItem (the grant
// sessions.Save lacked before) must fail the cache write with AccessDenied,
// and the emulator's unauthenticated test credentials must be refused, so
// the test fails when the policy misses a call, and would notice if
// enforcement were off.
func TestProcessorCodeUnderEnforcedIAM(t *testing.T) {
	d := parse(t, synth(t, Defaults()))
	policy := document(t, d.res(t, "aws_iam_role_policy", "primary_processor")["policy"])
	table := d.res(t, "aws_dynamodb_table", "sessions")
	tableName, _ := table["name"].(string)
	bus, _ := d.res(t, "aws_cloudwatch_event_bus", "primary")["name"].(string)
	if tableName == "" || bus == "" {
		t.Fatalf("no table or bus name in the synthesized stack: %q, %q", tableName, bus)
	}

	srv := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := staticConfig(srv.Endpoint(), "test", "test", "")

	// What the stack creates and the processor uses, made before IAM is
	// enforced.
	ddb := dynamodb.NewFromConfig(admin)
	if _, err := ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(tableName), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: ddbtypes.KeyTypeRange}},
	}); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	if _, err := eventbridge.NewFromConfig(admin).CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("CreateEventBus: %v", err)
	}
	keyParam := apikey.ParameterName("dev")
	if _, err := ssm.NewFromConfig(admin).PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(keyParam), Type: ssmtypes.ParameterTypeSecureString, Value: aws.String(strings.Repeat("k", 48)),
	}); err != nil {
		t.Fatalf("PutParameter: %v", err)
	}
	secret, err := secretsmanager.NewFromConfig(admin).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("payment-db-dev"), SecretString: aws.String(`{"username":"app","password":"not-a-real-one"}`)})
	if err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}

	// An operator who may assume the roles, and the roles.
	im := iam.NewFromConfig(admin)
	if _, err := im.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("operator")}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if _, err := im.AttachUserPolicy(ctx, &iam.AttachUserPolicyInput{UserName: aws.String("operator"),
		PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")}); err != nil {
		t.Fatalf("AttachUserPolicy: %v", err)
	}
	key, err := im.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("operator")})
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	operator := staticConfig(srv.Endpoint(), aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), "")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}`
	role := func(name, policy string) string {
		out, err := im.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(name), AssumeRolePolicyDocument: aws.String(trust)})
		if err != nil {
			t.Fatalf("CreateRole %s: %v", name, err)
		}
		if _, err := im.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String(name), PolicyName: aws.String("processor"), PolicyDocument: aws.String(policy)}); err != nil {
			t.Fatalf("PutRolePolicy %s: %v", name, err)
		}
		return aws.ToString(out.Role.Arn)
	}
	full := role("payment-processor", enforcedPolicy(t, policy))
	lacking := role("payment-processor-without-batchwrite", enforcedPolicy(t, policy, "dynamodb:BatchWriteItem"))

	mototest.EnforceIAM(t, srv.Endpoint(), "0")

	// Enforcement is on: the emulator's default credentials are refused.
	if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tableName)}); !mototest.Denied(err) {
		t.Fatalf("DescribeTable with unknown credentials after enforcing IAM: err = %v, want a refusal", err)
	}
	assume := func(arn string) aws.Config {
		out, err := sts.NewFromConfig(operator).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(arn), RoleSessionName: aws.String("test")})
		if err != nil {
			t.Fatalf("AssumeRole %s: %v", arn, err)
		}
		c := out.Credentials
		return staticConfig(srv.Endpoint(), aws.ToString(c.AccessKeyId), aws.ToString(c.SecretAccessKey), aws.ToString(c.SessionToken))
	}

	// With a session the cache write is two items: BatchWriteItem.
	rec := payment.Record{Payment: payment.Payment{PaymentID: "p-iam", SessionID: "s-iam", AmountMinor: 1250, Currency: "USD", Region: "us-east-1",
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, Fingerprint: [32]byte{1}, Response: []byte(`{"payment_id":"p-iam"}`)}
	proc := assume(full)
	store := sessions.New(dynamodb.NewFromConfig(proc), tableName, sessions.Options{})
	calls := []struct {
		name string
		call func() error
	}{
		{"sessions.Save (dynamodb:BatchWriteItem)", func() error { return store.Save(ctx, rec) }},
		{"sessions.Lookup (dynamodb:GetItem)", func() error { _, _, err := store.Lookup(ctx, rec.PaymentID); return err }},
		{"sessions.SessionPayments (dynamodb:Query)", func() error { _, err := store.SessionPayments(ctx, "s-iam"); return err }},
		{"sessions.Ping (dynamodb:DescribeTable)", func() error { return store.Ping(ctx) }},
		{"events.Publish (events:PutEvents)", func() error { return events.New(eventbridge.NewFromConfig(proc), bus).Publish(ctx, rec.Payment) }},
		{"ssmkey.Read (ssm:GetParameter)", func() error { _, err := ssmkey.Read(ctx, ssm.NewFromConfig(proc), keyParam); return err }},
		{"database secret (secretsmanager:GetSecretValue)", func() error {
			_, err := secretsmanager.NewFromConfig(proc).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: secret.ARN})
			return err
		}},
	}
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Errorf("%s as the processor role, IAM enforced: %v", c.name, err)
		}
	}

	err = sessions.New(dynamodb.NewFromConfig(assume(lacking)), tableName, sessions.Options{}).Save(ctx, rec)
	if !mototest.Denied(err) {
		t.Errorf("sessions.Save as a role without dynamodb:BatchWriteItem: err = %v, want AccessDenied", err)
	}
}
