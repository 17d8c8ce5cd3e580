// Package processor is the payment processor's front end: the HTTP handler
// (POST /payments, GET /health) over payment.Service, its AWS Lambda adapter
// (API Gateway HTTP API v2 events and direct invocations in the earlier
// format), configuration from PAYDR_* environment variables, and the wiring
// of the real stores (New).
//
// The same Handler serves the local HTTP server and the Lambda function, so
// both behave identically, authentication included: every POST /payments
// must carry the payments API key (APIKey, paydr/internal/apikey), checked
// before anything else, while GET /health stays open. Logs are structured (slog, JSON) and every line
// of a request carries request_id and, once parsed, payment_id; response
// bodies of 5xx answers never carry internal error text.
package processor
