package processor_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
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
	for _, name := range []string{"apigw-v2-post-payment.json", "apigw-v2-post-payment-base64-stage.json", "apigw-v2-get-health.json"} {
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
