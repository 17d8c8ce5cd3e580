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
