// Package payment is the transport-independent core of the paydr payment
// processor: exact money (integer minor units, an ISO 4217 table), request
// parsing and validation, error shapes, and the idempotent Service.
//
// The Service consumes four small interfaces defined here: Ledger (the
// PostgreSQL system of record, implemented by paydr/internal/ledger), Sessions
// (the DynamoDB session store and response cache, paydr/internal/sessions),
// Events (the EventBridge publisher, paydr/internal/events) and Clock.
// In-memory implementations live in paydr/internal/payment/memory, and
// paydr/internal/payment/paymenttest holds the contract tests every
// implementation runs.
//
// # Idempotency
//
// payment_id is the idempotency key and the ledger's unique key decides
// whether a payment is new; the DynamoDB cache never does. A request's
// fingerprint (SHA-256 of its canonical form: payment_id, session_id, amount
// in minor units, currency) is stored with the payment and the exact response
// bytes. A retry with the same fingerprint gets those bytes back, marked
// replayed (the processor answers 201 with Idempotent-Replayed: true); a
// retry with another fingerprint is a conflict and changes nothing. Because the ledger
// is a single-writer Aurora global database, this holds in both regions
// before and after a switchover; after a failover with data loss, payments
// inside the lost replication window are gone from the ledger and a retry of
// one is recorded again as new (unless the response cache still has it while
// the ledger is unreachable).
//
// # Errors
//
// Errors carry codes, not transport statuses: malformed (body not a JSON
// object), invalid (fields, each named), conflict (idempotency),
// unavailable (this region cannot take writes; retry) and internal;
// ErrorResponse builds their bodies and never exposes internal text. The
// processor maps codes to HTTP statuses.
package payment
