package processor

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"paydr/internal/payment"
)

// Invoke is the Lambda handler (pass it to lambda.Start). It accepts three
// kinds of payload:
//
//   - an API Gateway HTTP API (payload format 2.0) event, recognised by
//     "version": "2.0" and a "requestContext"; it is served like the HTTP
//     request it describes (POST /payments, GET /health; a stage prefix
//     other than $default is stripped from rawPath);
//   - a direct invocation in the earlier format, the payment itself:
//     {"payment_id": "...", "session_id": "...", "amount": "12.50", "currency": "USD"},
//     served as POST /payments with that body;
//   - an EventBridge scheduled event ("source": "aws.events",
//     "detail-type": "Scheduled Event"), the stack's outbox sweep every
//     minute: it publishes the PaymentProcessed events a crash or a bus
//     outage left unpublished and answers 200 {"published": n} (503 when
//     the ledger cannot take writes). A sweep that fails otherwise (the bus
//     refuses events) also fails the invocation, so the Errors metric and
//     the stack's processor-errors alarm show events piling up.
//
// Both are answered with the API Gateway 2.0 response shape, so callers of
// the earlier handler that read statusCode and parse body keep working:
//
//	{"statusCode": 201,
//	 "headers": {"Content-Type": "application/json", "X-Request-Id": "...",
//	             "Idempotent-Replayed": "true" (replays only)},
//	 "body": "{\"payment_id\":\"...\",\"status\":\"succeeded\",...}"}
//
// API Gateway events get exactly the Handler's rules (the API key in
// Authorization, Content-Type, Idempotency-Key and every bound), whatever
// the case of their header names: API Gateway has no authorizer, the
// processor checks the key itself, the same way in both regions and
// locally. A direct invocation has no headers: it is JSON by contract and
// needs no API key, because the Lambda service only runs it for a caller
// IAM allows to invoke the function (lambda:InvokeFunction; the stack's
// resource policy admits only API Gateway and the outbox schedule).
// Payment errors are answered the same way with their status (400, 409,
// 415, 422, 503, 504, 500; see Handler) and a payment.ErrorBody; the function
// itself does not fail, so the Lambda service does not retry the
// invocation (a client retry with the same payment_id is what settles a
// 504). The
// request id is API Gateway's for HTTP events and the Lambda request id for
// direct invocations.
func (h *Handler) Invoke(ctx context.Context, payload json.RawMessage) (events.APIGatewayV2HTTPResponse, error) {
	var probe struct {
		Version        string          `json:"version"`
		RequestContext json.RawMessage `json:"requestContext"`
		Source         string          `json:"source"`
		DetailType     string          `json:"detail-type"`
	}
	_ = json.Unmarshal(payload, &probe) // a non-object payload is a direct invocation
	if probe.Source == "aws.events" && probe.DetailType == "Scheduled Event" {
		return h.sweep(ctx)
	}
	if probe.Version == "2.0" && len(probe.RequestContext) > 0 {
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(payload, &ev); err != nil {
			return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("processor: decode api gateway event: %w", err)
		}
		return h.serveAPIGateway(ctx, ev)
	}
	reqID := newRequestID()
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		reqID = lc.AwsRequestID
	}
	r, err := http.NewRequestWithContext(withDirectInvocation(ctx), http.MethodPost, PathPayments, bytes.NewReader(payload))
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("processor: build direct request: %w", err)
	}
	r.Header.Set("Content-Type", "application/json")
	return h.record(r, reqID), nil
}

func (h *Handler) serveAPIGateway(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusBadRequest, Headers: map[string]string{"Content-Type": "application/json"},
				Body: `{"error":"malformed_request","message":"malformed request: body is not valid base64"}`}, nil
		}
	}
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if st := ev.RequestContext.Stage; st != "" && st != "$default" {
		if rest, ok := strings.CutPrefix(path, "/"+st); ok && (rest == "" || rest[0] == '/') {
			path = rest
		}
	}
	u := &url.URL{Path: path, RawQuery: ev.RawQueryString}
	method := ev.RequestContext.HTTP.Method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("processor: build request from api gateway event: %w", err)
	}
	// API Gateway lower-cases header names and joins a repeated header's
	// values with commas; Add canonicalises the names, so the Handler's
	// checks (Content-Type, Idempotency-Key) see what the HTTP server
	// would, in any case. Sorted, so names that differ only in case (a
	// hand-written event) give the same request every time.
	for _, k := range slices.Sorted(maps.Keys(ev.Headers)) {
		r.Header.Add(k, ev.Headers[k])
	}
	reqID := ev.RequestContext.RequestID
	if reqID == "" {
		reqID = requestID(r)
	}
	return h.record(r, reqID), nil
}

// sweep runs one outbox sweep for a scheduled event.
func (h *Handler) sweep(ctx context.Context) (events.APIGatewayV2HTTPResponse, error) {
	headers := map[string]string{"Content-Type": "application/json"}
	if h.opts.Outbox == nil {
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusNotImplemented, Headers: headers,
			Body: `{"error":"not_implemented","message":"this processor has no event outbox"}`}, nil
	}
	n, err := h.opts.Outbox.PublishPending(ctx, 0, 0)
	switch {
	case errors.Is(err, payment.ErrUnavailable):
		h.log.WarnContext(ctx, "outbox sweep: the ledger cannot take writes here", "published", n, "err", err)
		return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusServiceUnavailable, Headers: headers,
			Body: fmt.Sprintf(`{"error":"unavailable","message":"the ledger cannot take writes in this region","published":%d}`, n)}, nil
	case err != nil:
		h.log.ErrorContext(ctx, "outbox sweep failed", "published", n, "err", err)
		return events.APIGatewayV2HTTPResponse{}, fmt.Errorf("processor: outbox sweep failed after publishing %d events: %w", n, err)
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: http.StatusOK, Headers: headers, Body: fmt.Sprintf(`{"published":%d}`, n)}, nil
}

// record serves r in memory and returns the response in API Gateway shape.
func (h *Handler) record(r *http.Request, reqID string) events.APIGatewayV2HTTPResponse {
	w := &memoryWriter{header: http.Header{}}
	h.serve(w, r, reqID)
	headers := make(map[string]string, len(w.header))
	for k, v := range w.header {
		headers[k] = strings.Join(v, ", ")
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: w.status, Headers: headers, Body: w.body.String()}
}

// memoryWriter is an http.ResponseWriter that keeps the response.
type memoryWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (m *memoryWriter) Header() http.Header { return m.header }

func (m *memoryWriter) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
}

func (m *memoryWriter) Write(b []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	return m.body.Write(b)
}
