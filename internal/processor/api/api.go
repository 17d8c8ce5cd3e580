// Package api is the processor's HTTP contract as its clients see it: the
// routes, the headers and the health body. It imports nothing, so a client
// (the AWS DR backend's data-plane checks, the router, tests) can read the
// processor's answers without linking the processor.
package api

// Routes the processor serves.
const (
	PathPayments = "/payments"
	PathHealth   = "/health"
)

// Request headers the processor reads besides Content-Type (which must be
// application/json), HeaderRequestID and Authorization, which must carry
// the payments API key on PathPayments (spelled in paydr/internal/apikey,
// which reads the key; this package imports nothing).
const (
	// HeaderIdempotencyKey (IETF draft "The Idempotency-Key HTTP Header
	// Field") is optional: payment_id is the idempotency key, so the
	// header, when sent, must equal it (as a token or a quoted string).
	HeaderIdempotencyKey = "Idempotency-Key"
)

// Response headers.
const (
	HeaderRequestID = "X-Request-Id"
	// HeaderReplayed is "true" on a response replayed from an earlier
	// request with the same payment_id.
	HeaderReplayed = "Idempotent-Replayed"
)

// HealthBody is the JSON body of GET /health. The status is 200 when
// DatabaseWritable, else 503; DynamoDBReachable is reported, not gating.
type HealthBody struct {
	Region            string `json:"region"`
	DatabaseWritable  bool   `json:"database_writable"`
	DynamoDBReachable bool   `json:"dynamodb_reachable"`
}
