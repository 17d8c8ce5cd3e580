package mototest_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"paydr/internal/local/moto"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/needs"
	"paydr/internal/sdkhttp"
)

// TestChildStart is run by TestMissingBinary in a child process.
func TestChildStart(t *testing.T) {
	if os.Getenv("MOTOTEST_CHILD") == "" {
		t.Skip("run by TestMissingBinary")
	}
	mototest.Start(t)
}

func TestMissingBinary(t *testing.T) {
	if os.Getenv("MOTOTEST_CHILD") != "" {
		t.Skip("parent-only test")
	}
	needs.CheckGate(t, "TestChildStart", "MOTOTEST_CHILD", []string{"PAYDR_MOTO_SERVER=/nonexistent/moto_server"}, "pip install")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := mototest.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// TestSharedResets: the shared server is one process, and each test that
// asks for it gets it empty and with IAM not enforced, whatever the test
// before left.
func TestSharedResets(t *testing.T) {
	ctx := context.Background()
	tables := func(srv *moto.Server) *dynamodb.Client {
		return dynamodb.NewFromConfig(aws.Config{APIOptions: sdkhttp.APIOptions(), Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			BaseEndpoint: aws.String(srv.Endpoint())})
	}
	first := mototest.Shared(t)
	if _, err := tables(first).CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("left-behind"),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	}); err != nil {
		t.Fatal(err)
	}
	mototest.EnforceIAM(t, first.Endpoint(), "0")
	second := mototest.Shared(t)
	if second.PID() != first.PID() || second.PID() == 0 {
		t.Errorf("Shared() pids %d then %d, want one running server", first.PID(), second.PID())
	}
	out, err := tables(second).ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables with the test credentials after Shared() = %v; want IAM no longer enforced", err)
	}
	if len(out.TableNames) != 0 {
		t.Errorf("tables after Shared() = %v, want none", out.TableNames)
	}
}
