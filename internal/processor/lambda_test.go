package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/payment"
	"paydr/internal/processor"
)

func readFixture(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFixturesRoundTrip checks the API Gateway fixtures are real v2 events:
// every field survives decoding into events.APIGatewayV2HTTPRequest.
func TestFixturesRoundTrip(t *testing.T) {
	for _, name := range []string{"apigw-v2-post-payment.json", "apigw-v2-post-payment-base64-stage.json", "apigw-v2-post-payment-no-key.json",
		"apigw-v2-post-payment-wrong-key.json", "apigw-v2-get-health.json"} {
		t.Run(name, func(t *testing.T) {
			raw := readFixture(t, name)
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var want, got map[string]any
			_ = json.Unmarshal(raw, &want)
			_ = json.Unmarshal(again, &got)
			// Marshalling adds zero-valued members; every fixture member must survive.
			for k, v := range want {
				if diff := cmp.Diff(v, got[k]); diff != "" && k != "requestContext" {
					t.Errorf("member %s changed in round trip (-fixture +again):\n%s", k, diff)
				}
			}
			if ev.Version != "2.0" || ev.RequestContext.RequestID == "" {
				t.Errorf("fixture %s decoded as version %q request id %q", name, ev.Version, ev.RequestContext.RequestID)
			}
		})
	}
}

func TestInvoke(t *testing.T) {
	tests := []struct {
		fixture string
		status  int
	}{
		{"apigw-v2-post-payment.json", 201},
		{"apigw-v2-post-payment-base64-stage.json", 201},
		{"apigw-v2-get-health.json", 200},
		// API Gateway has no authorizer: the processor checks the key.
		{"apigw-v2-post-payment-no-key.json", 401},
		{"apigw-v2-post-payment-wrong-key.json", 401},
		// A direct invocation's caller was authorized by IAM: no key.
		{"direct-invocation.json", 201},
		{"direct-invocation-invalid.json", 422},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "lambda-req-1"})
			resp, err := e.h.Invoke(ctx, readFixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("Invoke error = %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("Invoke status = %d, want %d; body %s", resp.StatusCode, tt.status, resp.Body)
			}
			// The whole response as the Lambda runtime serialises it.
			out, err := json.Marshal(resp)
			if err != nil {
				t.Fatal(err)
			}
			var asMap struct {
				StatusCode int               `json:"statusCode"`
				Headers    map[string]string `json:"headers"`
				Body       string            `json:"body"`
			}
			if err := json.Unmarshal(out, &asMap); err != nil {
				t.Fatal(err)
			}
			h := make(map[string][]string)
			for k, v := range asMap.Headers {
				h[k] = []string{v}
			}
			checkGolden(t, "lambda-"+strings.TrimSuffix(tt.fixture, ".json"), asMap.StatusCode, h, []byte(asMap.Body))
			if rows, _ := e.ledger.Payments(context.Background()); resp.StatusCode == 401 && len(rows) != 0 {
				t.Errorf("ledger rows after a 401 = %d, want 0", len(rows))
			}
		})
	}
}

func TestInvokeReplay(t *testing.T) {
	e := newEnv(t, fakeDB{writable: true})
	ctx := context.Background()
	first, err := e.h.Invoke(ctx, readFixture(t, "direct-invocation.json"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.h.Invoke(ctx, readFixture(t, "direct-invocation.json"))
	if err != nil {
		t.Fatal(err)
	}
	if again.StatusCode != 201 || again.Body != first.Body || again.Headers["Idempotent-Replayed"] != "true" {
		t.Errorf("replayed direct invocation = %d %v %s; want 201, Idempotent-Replayed, %s", again.StatusCode, again.Headers, again.Body, first.Body)
	}
}

// fakeOutbox answers PublishPending with n and err.
type fakeOutbox struct {
	n     int
	err   error
	calls int
}

func (f *fakeOutbox) PublishPending(context.Context, time.Duration, int) (int, error) {
	f.calls++
	return f.n, f.err
}

// TestInvokeScheduledSweep checks the stack's schedule rule event runs one
// outbox sweep and answers with what it did.
func TestInvokeScheduledSweep(t *testing.T) {
	raw := readFixture(t, "eventbridge-scheduled.json")
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Source != "aws.events" || ev.DetailType != "Scheduled Event" {
		t.Fatalf("fixture is not a scheduled event: %+v, %v", ev, err)
	}
	tests := []struct {
		name       string
		outbox     *fakeOutbox
		wantStatus int
		wantBody   string
		wantErr    string // the invocation fails with this, so the Errors alarm sees it
	}{
		{"published", &fakeOutbox{n: 3}, 200, `{"published":3}`, ""},
		{"ledger unavailable", &fakeOutbox{n: 0, err: fmt.Errorf("ledger: %w", payment.ErrUnavailable)}, 503, `"published":0`, ""},
		{"bus down", &fakeOutbox{n: 1, err: errors.New("put events: throttled")}, 0, "", "outbox sweep failed after publishing 1 events: put events: throttled"},
		{"no outbox", nil, 501, `this processor has no event outbox`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := processor.Options{Service: payment.NewService(payment.Deps{}), Region: "us-east-1", Logger: slog.New(slog.DiscardHandler)}
			if tt.outbox != nil {
				opts.Outbox = tt.outbox
			}
			resp, err := processor.NewHandler(opts).Invoke(context.Background(), raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Invoke error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Invoke error = %v, want nil", err)
			}
			if resp.StatusCode != tt.wantStatus || !strings.Contains(resp.Body, tt.wantBody) {
				t.Errorf("Invoke = %d %s, want %d containing %s", resp.StatusCode, resp.Body, tt.wantStatus, tt.wantBody)
			}
			if strings.Contains(resp.Body, "throttled") {
				t.Errorf("body %s carries internal error text", resp.Body)
			}
			if tt.outbox != nil && tt.outbox.calls != 1 {
				t.Errorf("PublishPending called %d times, want 1", tt.outbox.calls)
			}
		})
	}
}
