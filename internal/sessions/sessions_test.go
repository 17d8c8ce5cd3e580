package sessions_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/moto/mototest"
	"paydr/internal/payment/paymenttest"
	"paydr/internal/sdkhttp"
	"paydr/internal/sessions"
)

// newTable starts moto, creates a table with the stack's exact key design
// and returns a client and the table name.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	srv := mototest.Start(t)
	client := dynamodb.New(dynamodb.Options{
		APIOptions:   sdkhttp.APIOptions(),
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	ctx := context.Background()
	table := "paydr-sessions"
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(sessions.AttrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(sessions.AttrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(sessions.AttrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(sessions.AttrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode:         types.BillingModePayPerRequest,
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatalf("CreateTable error = %v", err)
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(sessions.AttrExpiresAt), Enabled: aws.Bool(true)},
	})
	if err != nil {
		t.Fatalf("UpdateTimeToLive error = %v", err)
	}
	return client, table
}

func TestDynamoDBContract(t *testing.T) {
	client, table := newTable(t)
	store := sessions.New(client, table, sessions.Options{})
	paymenttest.TestSessions(t, func(*testing.T) paymenttest.InspectableSessions { return store })
}

func TestKeysAndTTL(t *testing.T) {
	client, table := newTable(t)
	ctx := context.Background()
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	store := sessions.New(client, table, sessions.Options{TTL: time.Hour, Now: func() time.Time { return now }}) // raised to 24 h
	rec := paymenttest.NewRecord(t, "pay_keys", 1250, now)
	if err := store.Save(ctx, rec); err != nil {
		t.Fatalf("Save error = %v", err)
	}
	wantExpiry := strconv.FormatInt(now.Add(sessions.MinTTL).Unix(), 10)
	for _, key := range [][2]string{{"PAYMENT#pay_keys", "RESPONSE"}, {"SESSION#sess-pay_keys", "PAYMENT#pay_keys"}} {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: key[0]}, "sk": &types.AttributeValueMemberS{Value: key[1]},
		}})
		if err != nil {
			t.Fatalf("GetItem(%v) error = %v", key, err)
		}
		exp, ok := out.Item["expires_at"].(*types.AttributeValueMemberN)
		if !ok {
			t.Fatalf("item %v has no numeric expires_at: %v", key, out.Item)
		}
		if exp.Value != wantExpiry {
			t.Errorf("item %v expires_at = %s, want %s (now + 24 h)", key, exp.Value, wantExpiry)
		}
	}
	ids, err := store.SessionPayments(ctx, "sess-pay_keys")
	if err != nil {
		t.Fatalf("SessionPayments error = %v", err)
	}
	if diff := cmp.Diff([]string{"pay_keys"}, ids); diff != "" {
		t.Errorf("SessionPayments mismatch (-want +got):\n%s", diff)
	}
	// An expired item that DynamoDB has not deleted yet reads as absent.
	later := sessions.New(client, table, sessions.Options{Now: func() time.Time { return now.Add(25 * time.Hour) }})
	if _, found, err := later.Lookup(ctx, "pay_keys"); found || err != nil {
		t.Errorf("Lookup(expired) = found %v, err %v; want not found", found, err)
	}
}

func TestPing(t *testing.T) {
	client, table := newTable(t)
	ctx := context.Background()
	if err := sessions.New(client, table, sessions.Options{}).Ping(ctx); err != nil {
		t.Errorf("Ping(existing table) error = %v", err)
	}
	if err := sessions.New(client, "missing", sessions.Options{}).Ping(ctx); err == nil {
		t.Errorf("Ping(missing table) error = nil, want an error")
	}
}
