package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"paydr/internal/apikey"
	"paydr/internal/payment"
	"paydr/internal/processor"
)

// Bounds on what bad input can make the processor write: an error body at
// most maxErrorBody bytes, a log line at most maxLogLine.
const (
	maxErrorBody = 4 << 10
	maxLogLine   = 8 << 10
)

// unset in a test's headers removes that header.
const unset = "<unset>"

// badRequest is one bad (or borderline) request to POST /payments.
type badRequest struct {
	name    string
	before  []string          // bodies posted (as JSON) first
	method  string            // default POST
	path    string            // default /payments
	headers map[string]string // set on top of Content-Type: application/json and the API key; unset removes
	body    string
	status  int
	// code is the "error" member of the answer ("" for a 201).
	code string
	// contains and excludes are substrings the body must and must not hold.
	contains, excludes []string
}

func (b badRequest) request() *http.Request {
	r := httptest.NewRequest(or(b.method, http.MethodPost), or(b.path, processor.PathPayments), strings.NewReader(b.body))
	r.Header.Set(processor.HeaderRequestID, "req-test-1")
	r.Header.Set("Content-Type", "application/json")
	apikey.Set(r.Header, testKey)
	for k, v := range b.headers {
		if v == unset {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	return r
}

const (
	// validBody is the first request of a payment.
	validBody = `{"payment_id":"pay_1","amount":"12.50","currency":"USD","session_id":"s-1"}`
)

// manyUnknownFields is a body of n unknown fields, each named by name(i),
// after a valid payment.
func manyUnknownFields(n int, name func(int) string) string {
	var b strings.Builder
	b.WriteString(`{"payment_id":"p","amount":"1","currency":"USD"`)
	for i := range n {
		k, _ := json.Marshal(name(i))
		fmt.Fprintf(&b, `,%s:0`, k)
	}
	b.WriteString("}")
	return b.String()
}

// fill returns a body of unknown fields named name(i) as close to
// payment.MaxBodyBytes as they fit.
func fill(name func(int) string) string {
	n := 0
	for len(manyUnknownFields(n+1, name)) <= payment.MaxBodyBytes {
		n++
	}
	return manyUnknownFields(n, name)
}

// badInputs is the table of issue 12, item 6: bad input gets a clear,
// bounded 4xx, and borderline input that is fine gets its 201.
var badInputs = []badRequest{
	// Duplicate keys: last-wins would let one body mean two payments.
	{name: "duplicate-key", body: `{"payment_id":"p","amount":"1.00","amount":"9999.00","currency":"USD"}`,
		status: 400, code: payment.CodeMalformed, contains: []string{`"field":"amount"`}, excludes: []string{"9999"}},
	{name: "duplicate-key-escaped", body: `{"payment_id":"p","amount":"1.00","\u0061mount":"9999.00","currency":"USD"}`,
		status: 400, code: payment.CodeMalformed, contains: []string{`"field":"amount"`}},
	{name: "duplicate-key-payment-id", body: `{"payment_id":"p","amount":"1.00","currency":"USD","payment_id":"q"}`,
		status: 400, code: payment.CodeMalformed, contains: []string{`"field":"payment_id"`}},
	{name: "duplicate-key-nested", body: `{"payment_id":"p","amount":"1","currency":"USD","meta":{"a":[{"b":1,"b":2}]}}`,
		status: 400, code: payment.CodeMalformed, contains: []string{`"field":"meta.a[0].b"`}},
	{name: "same-key-in-two-objects", body: `{"payment_id":"p","amount":"1","currency":"USD","x":{"a":1},"y":{"a":1}}`,
		status: 422, code: payment.CodeInvalid, contains: []string{`"field":"x"`, `"field":"y"`}},

	// Content-Type: only JSON, and only UTF-8 JSON.
	{name: "content-type-missing", headers: map[string]string{"Content-Type": unset}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-text-plain", headers: map[string]string{"Content-Type": "text/plain"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-form", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-json-lookalike", headers: map[string]string{"Content-Type": "application/jsonp"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-unparsable", headers: map[string]string{"Content-Type": "application/json; charset"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-latin1", headers: map[string]string{"Content-Type": "application/json; charset=iso-8859-1"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},
	{name: "content-type-charset-utf8", headers: map[string]string{"Content-Type": "application/json; charset=UTF-8"}, body: validBody,
		status: 201},
	{name: "content-type-upper-case", headers: map[string]string{"Content-Type": "Application/JSON"}, body: validBody,
		status: 201},
	{name: "content-encoding-gzip", headers: map[string]string{"Content-Encoding": "gzip"}, body: validBody,
		status: 415, code: payment.CodeUnsupportedMediaType},

	// A 409 says the payment_id was used for something else, and no more.
	{name: "conflict-amount", before: []string{validBody}, body: `{"payment_id":"pay_1","amount":"13","currency":"USD","session_id":"s-1"}`,
		status: 409, code: payment.CodeConflict, excludes: []string{"12.50", `"amount"`, "session"}},
	{name: "conflict-currency", before: []string{validBody}, body: `{"payment_id":"pay_1","amount":"12.50","currency":"EUR","session_id":"s-1"}`,
		status: 409, code: payment.CodeConflict, excludes: []string{"USD", `"currency"`, "session"}},
	{name: "conflict-session", before: []string{validBody}, body: `{"payment_id":"pay_1","amount":"12.50","currency":"USD"}`,
		status: 409, code: payment.CodeConflict, excludes: []string{"session", "s-1"}},

	// Unknown fields are refused, a bounded list of them.
	{name: "unknown-field", body: `{"payment_id":"p","amount":"1","currency":"USD","sesion_id":"s-1"}`,
		status: 422, code: payment.CodeInvalid, contains: []string{`"field":"sesion_id"`}},
	{name: "unknown-fields-16k", body: fill(func(i int) string { return fmt.Sprintf("f%04d", i) }),
		status: 422, code: payment.CodeInvalid, contains: []string{`"field":"f0000"`, "more unknown fields"}, excludes: []string{"f0005"}},
	{name: "unknown-field-long-name", body: manyUnknownFields(1, func(int) string { return strings.Repeat("n", 1000) }),
		status: 422, code: payment.CodeInvalid, excludes: []string{strings.Repeat("n", 65)}},

	// 404 and 405 never echo what the caller sent.
	{name: "not-found-huge-path", path: "/" + strings.Repeat("a", 500<<10), body: validBody,
		status: 404, code: payment.CodeNotFound, excludes: []string{"aaaa"}},
	{name: "not-found-script-path", path: "/%3Cscript%3E", body: validBody,
		status: 404, code: payment.CodeNotFound, excludes: []string{"script"}},

	// Idempotency-Key: payment_id is the key; the header may repeat it, never contradict it.
	{name: "idempotency-key-equal", headers: map[string]string{"Idempotency-Key": "pay_1"}, body: validBody,
		status: 201},
	{name: "idempotency-key-structured-string", headers: map[string]string{"Idempotency-Key": `"pay_1"`}, body: validBody,
		status: 201},
	{name: "idempotency-key-differs", headers: map[string]string{"Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}, body: validBody,
		status: 422, code: payment.CodeInvalid, contains: []string{`"field":"Idempotency-Key"`}, excludes: []string{"8e03978e"}},
	{name: "idempotency-key-empty", headers: map[string]string{"Idempotency-Key": ""}, body: validBody,
		status: 422, code: payment.CodeInvalid, contains: []string{`"field":"Idempotency-Key"`}},
}

// TestBadInput: each bad request gets its 4xx with a golden body, records
// nothing, and is logged once within bounds.
func TestBadInput(t *testing.T) {
	for _, tt := range badInputs {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			for _, b := range tt.before {
				if w := do(t, e.h, http.MethodPost, processor.PathPayments, b); w.Code != 201 {
					t.Fatalf("setup POST %s = %d %s", b, w.Code, w.Body)
				}
			}
			before, _ := e.ledger.Payments(context.Background())
			e.logs.Reset()
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, tt.request())
			checkAnswer(t, tt, w.Code, w.Body.String())
			if after, _ := e.ledger.Payments(context.Background()); tt.status != 201 && len(after) != len(before) {
				t.Errorf("ledger rows after a %d = %d, want %d: a refused request must record nothing", w.Code, len(after), len(before))
			}
			checkLogs(t, e.logs.String())
			checkGolden(t, "bad-input-"+tt.name, w.Code, w.Header(), w.Body.Bytes())
		})
	}
}

// TestBadInputLambda: the Lambda adapter applies the same rules to API
// Gateway events, whose header names arrive in any case.
func TestBadInputLambda(t *testing.T) {
	for _, tt := range badInputs {
		if len(tt.path) > 1<<10 {
			continue // in TestErrorBodiesBounded
		}
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			for _, b := range tt.before {
				if w := do(t, e.h, http.MethodPost, processor.PathPayments, b); w.Code != 201 {
					t.Fatalf("setup POST %s = %d %s", b, w.Code, w.Body)
				}
			}
			resp, err := e.h.Invoke(context.Background(), apiGatewayEvent(t, tt))
			if err != nil {
				t.Fatalf("Invoke error = %v", err)
			}
			checkAnswer(t, tt, resp.StatusCode, resp.Body)
			checkLogs(t, e.logs.String())
		})
	}
}

// apiGatewayEvent is the HTTP API (payload 2.0) event API Gateway sends for
// b: header names lower-cased (API Gateway's way) or, for every other
// header, upper-cased (a hand-written event), to show case does not matter.
func apiGatewayEvent(t *testing.T, b badRequest) json.RawMessage {
	t.Helper()
	var ev map[string]any
	if err := json.Unmarshal(readFixture(t, "apigw-v2-post-payment.json"), &ev); err != nil {
		t.Fatal(err)
	}
	r := b.request()
	headers := map[string]string{}
	for i, k := range slices.Sorted(maps.Keys(r.Header)) {
		v := strings.Join(r.Header[k], ",") // API Gateway joins repeated headers with commas
		if i%2 == 0 {
			k = strings.ToLower(k)
		} else {
			k = strings.ToUpper(k)
		}
		headers[k] = v
	}
	ev["headers"] = headers
	ev["body"] = b.body
	ev["rawPath"] = r.URL.EscapedPath()
	rc := ev["requestContext"].(map[string]any)
	rc["http"].(map[string]any)["method"] = r.Method
	rc["http"].(map[string]any)["path"] = r.URL.Path
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func checkAnswer(t *testing.T, tt badRequest, status int, body string) {
	t.Helper()
	if status != tt.status {
		t.Errorf("%s = %d, want %d; body %.300s", tt.name, status, tt.status, body)
	}
	var eb payment.ErrorBody
	if tt.code != "" {
		if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error != tt.code || eb.Message == "" {
			t.Errorf("%s body = %.300s (%v), want a payment.ErrorBody with error %q and a message", tt.name, body, err, tt.code)
		}
	}
	if len(body) > maxErrorBody {
		t.Errorf("%s body is %d bytes, want at most %d", tt.name, len(body), maxErrorBody)
	}
	for _, s := range tt.contains {
		if !strings.Contains(body, s) {
			t.Errorf("%s body = %.300s, want it to contain %s", tt.name, body, s)
		}
	}
	for _, s := range tt.excludes {
		if strings.Contains(body, s) {
			t.Errorf("%s body = %.300s, want it not to contain %.80s", tt.name, body, s)
		}
	}
}

// checkLogs checks every log line is within maxLogLine.
func checkLogs(t *testing.T, logs string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		if len(line) > maxLogLine {
			t.Errorf("log line is %d bytes, want at most %d: %.300s...", len(line), maxLogLine, line)
		}
	}
}

// TestConflictsLookAlike: whatever differs from the original request, a
// 409 is the same bytes, so guessing a payment_id tells nothing about the
// payment.
func TestConflictsLookAlike(t *testing.T) {
	var first string
	for _, tt := range badInputs {
		if !strings.HasPrefix(tt.name, "conflict-") {
			continue
		}
		e := newEnv(t, fakeDB{writable: true})
		for _, b := range tt.before {
			do(t, e.h, http.MethodPost, processor.PathPayments, b)
		}
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, tt.request())
		if first == "" {
			first = w.Body.String()
		} else if w.Body.String() != first {
			t.Errorf("%s body = %s, want the same as every conflict: %s", tt.name, w.Body, first)
		}
	}
}

// TestErrorBodiesBounded: adversarial input cannot make an error body
// larger than maxErrorBody or a log line larger than maxLogLine.
func TestErrorBodiesBounded(t *testing.T) {
	long := strings.Repeat("x", 1000)
	escaped := strings.Repeat(`\u0001<>&\"`, 10)
	tests := []badRequest{
		{name: "16k of short unknown fields", body: fill(func(i int) string { return fmt.Sprint(i) })},
		{name: "16k of long unknown fields", body: fill(func(i int) string { return fmt.Sprintf("%s%d", long, i) })},
		{name: "unknown fields that escape badly", body: fill(func(i int) string { return fmt.Sprintf("\x01<>&\"\\\u2028%d", i) })},
		{name: "every field bad and unknown ones", body: `{"payment_id":"` + long + `","amount":"` + long + `","currency":"` + long + `","session_id":"` + long + `","` + long + `":1,"` + escaped + `":2}`},
		{name: "duplicate long key", body: `{"` + long + `":1,"` + long + `":2}`},
		{name: "duplicate key deep in long names", body: strings.Repeat(`{"`+long+`":`, 8) + `{"a":1,"a":2` + strings.Repeat("}", 9)},
		{name: "duplicate escaped key", body: `{"` + escaped + `":1,"` + escaped + `":2}`},
		{name: "deep nesting", body: strings.Repeat("[", payment.MaxBodyBytes-2) + "]"},
		{name: "deep nesting in a member", body: `{"x":` + strings.Repeat("[", 8000) + strings.Repeat("]", 8000) + "}"},
		{name: "deep nesting not closed", body: `{"x":` + strings.Repeat(`{"a":`, 3000)},
		{name: "body too large", body: strings.Repeat(" ", 1<<20)},
		{name: "huge path", path: "/" + strings.Repeat("p", 500<<10)},
		{name: "huge escaped path", path: "/" + strings.Repeat("%01%3C", 50<<10)},
		{name: "huge method", method: strings.Repeat("M", 100<<10)},
		{name: "huge method elsewhere", method: strings.Repeat("M", 100<<10), path: "/x"},
		{name: "huge content type", headers: map[string]string{"Content-Type": "text/" + strings.Repeat("t", 100<<10)}},
		{name: "huge idempotency key", headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 100<<10)}, body: validBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, fakeDB{writable: true})
			w := httptest.NewRecorder()
			e.h.ServeHTTP(w, tt.request())
			if w.Code < 400 || w.Code >= 500 {
				t.Errorf("%s = %d, want a 4xx", tt.name, w.Code)
			}
			if w.Body.Len() > maxErrorBody {
				t.Errorf("%s body is %d bytes, want at most %d: %.300s...", tt.name, w.Body.Len(), maxErrorBody, w.Body)
			}
			t.Logf("%d: %d-byte body, %d bytes of logs", w.Code, w.Body.Len(), e.logs.Len())
			checkLogs(t, e.logs.String())
			if tt.method != "" || len(tt.path) > 1<<20 {
				return // not an API Gateway route: it never gets past API Gateway
			}
			e.logs.Reset()
			ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "lambda-req-1"})
			resp, err := e.h.Invoke(ctx, apiGatewayEvent(t, tt))
			if err != nil {
				t.Fatalf("Invoke error = %v", err)
			}
			if resp.StatusCode < 400 || resp.StatusCode >= 500 || len(resp.Body) > maxErrorBody {
				t.Errorf("Invoke(%s) = %d with a %d-byte body, want a 4xx of at most %d bytes", tt.name, resp.StatusCode, len(resp.Body), maxErrorBody)
			}
			checkLogs(t, e.logs.String())
		})
	}
}
