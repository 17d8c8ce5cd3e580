package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/events"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/payment"
	"paydr/internal/sdkhttp"
)

var pay = payment.Payment{
	PaymentID: "pay_ev", SessionID: "s-1", AmountMinor: 1005, Currency: "KWD",
	Region: "us-east-1", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC),
}

type fakeAPI struct {
	in  *eventbridge.PutEventsInput
	out *eventbridge.PutEventsOutput
}

func (f *fakeAPI) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.in = in
	return f.out, nil
}

func TestPublishEntry(t *testing.T) {
	api := &fakeAPI{out: &eventbridge.PutEventsOutput{}}
	if err := events.New(api, "paydr-us-east-1").Publish(context.Background(), pay); err != nil {
		t.Fatalf("Publish error = %v", err)
	}
	if len(api.in.Entries) != 1 {
		t.Fatalf("PutEvents entries = %d, want 1", len(api.in.Entries))
	}
	e := api.in.Entries[0]
	got := map[string]string{"bus": aws.ToString(e.EventBusName), "source": aws.ToString(e.Source), "detail-type": aws.ToString(e.DetailType), "detail": aws.ToString(e.Detail)}
	want := map[string]string{
		"bus": "paydr-us-east-1", "source": "paydr.payments", "detail-type": "PaymentProcessed",
		"detail": `{"payment_id":"pay_ev","session_id":"s-1","amount":"1.005","amount_minor":1005,"currency":"KWD","created_at":"2026-01-02T03:04:05.000006Z","origin_region":"us-east-1"}`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("PutEvents entry mismatch (-want +got):\n%s", diff)
	}
}

func TestPublishRejectedEntryIsError(t *testing.T) {
	api := &fakeAPI{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure")}}}}
	if err := events.New(api, "b").Publish(context.Background(), pay); err == nil {
		t.Errorf("Publish with a failed entry error = nil, want an error")
	}
}

// sqs calls moto's SQS JSON protocol (no SQS module needed for a test).
func sqs(t *testing.T, endpoint, op string, in any, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(http.MethodPost, endpoint, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AmazonSQS."+op)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("sqs %s: %v", op, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("sqs %s = %d %s", op, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("sqs %s: %v in %s", op, err, body)
		}
	}
}

// TestPublishThroughMoto publishes on a bus in moto and reads the event back
// through a rule matching the stack's forwarding pattern, targeting a queue.
func TestPublishThroughMoto(t *testing.T) {
	srv := mototest.Start(t)
	ctx := context.Background()
	client := eventbridge.New(eventbridge.Options{
		APIOptions: sdkhttp.APIOptions(),
		Region:     "us-east-1", BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	bus := "paydr-us-east-1"
	if _, err := client.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String(bus)}); err != nil {
		t.Fatalf("CreateEventBus error = %v", err)
	}
	var q struct{ QueueUrl string }
	sqs(t, srv.Endpoint(), "CreateQueue", map[string]string{"QueueName": "forwarded"}, &q)
	pattern := `{"source":["paydr.payments"],"detail-type":["PaymentProcessed"],"detail":{"origin_region":["us-east-1"]}}`
	if _, err := client.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("forward"), EventBusName: aws.String(bus), EventPattern: aws.String(pattern)}); err != nil {
		t.Fatalf("PutRule error = %v", err)
	}
	_, err := client.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("forward"), EventBusName: aws.String(bus), Targets: []types.Target{
		{Id: aws.String("q"), Arn: aws.String("arn:aws:sqs:us-east-1:123456789012:forwarded")},
	}})
	if err != nil {
		t.Fatalf("PutTargets error = %v", err)
	}
	pub := events.New(client, bus)
	if err := pub.Publish(ctx, pay); err != nil {
		t.Fatalf("Publish error = %v", err)
	}
	other := pay
	other.PaymentID, other.Region = "pay_from_west", "us-west-2" // must not match: no loop back
	if err := pub.Publish(ctx, other); err != nil {
		t.Fatalf("Publish(other origin) error = %v", err)
	}
	var msgs struct{ Messages []struct{ Body string } }
	sqs(t, srv.Endpoint(), "ReceiveMessage", map[string]any{"QueueUrl": q.QueueUrl, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1}, &msgs)
	if len(msgs.Messages) != 1 {
		t.Fatalf("forwarded messages = %d, want 1 (only origin us-east-1): %+v", len(msgs.Messages), msgs.Messages)
	}
	var ev struct {
		Source     string        `json:"source"`
		DetailType string        `json:"detail-type"`
		Detail     events.Detail `json:"detail"`
	}
	if err := json.Unmarshal([]byte(msgs.Messages[0].Body), &ev); err != nil {
		t.Fatalf("event body %s: %v", msgs.Messages[0].Body, err)
	}
	if diff := cmp.Diff(events.NewDetail(pay), ev.Detail); diff != "" || ev.Source != events.Source || ev.DetailType != events.DetailType {
		t.Errorf("delivered event %s/%s mismatch (-want +got):\n%s", ev.Source, ev.DetailType, diff)
	}
}
