// Package payment is the transport-independent core of the paydr payment
// processor: exact money (integer minor units, an ISO 4217 table), request
// parsing and validation, error shapes, and the idempotent Service.
//
// The Service consumes four small interfaces defined here: Ledger (the
// PostgreSQL system of record, implemented by paydr/internal/ledger), Sessions
// (the DynamoDB session store and response cache, written after the commit
// and never read to answer, paydr/internal/sessions),
// Events (the EventBridge publisher, paydr/internal/events) and Clock.
// In-memory implementations live in paydr/internal/payment/memory, and
// paydr/internal/payment/paymenttest holds the contract tests every
// implementation runs.
//
// # Idempotency
//
// payment_id is the idempotency key and the ledger's unique key decides
// whether a payment is new; the DynamoDB cache never does, and never
// answers for a payment either: no success unless this region's ledger
// holds the committed row. A request's fingerprint (SHA-256 of its
// canonical form: payment_id, session_id, amount in minor units, currency)
// is stored with the payment and the exact response bytes. A retry with the same fingerprint gets those bytes back, marked
// replayed (the processor answers 201 with Idempotent-Replayed: true); a
// retry with another fingerprint is a conflict and changes nothing. Because the ledger
// is a single-writer Aurora global database, this holds in both regions
// before and after a switchover; after a failover with data loss, payments
// inside the lost replication window are gone from the ledger and a retry of
// one is recorded again as new; while the new writer's ledger cannot be
// reached, the retry is refused (unavailable), even though the global
// response cache may still hold the lost payment.
//
// # Errors
//
// Errors carry codes, not transport statuses: malformed (body not a JSON
// object, or a key twice in one of its objects), invalid (fields, each
// named; unknown ones up to a bound), conflict (idempotency: says only that
// the payment_id is taken), unsupported media type (set by the transport),
// unavailable (this region cannot take writes and this request recorded
// nothing; retry), outcome unknown (the write was sent and its answer lost:
// the payment may or may not be recorded; a retry with the same payment_id
// is safe and settles it) and internal; ErrorResponse builds their bodies,
// which never expose internal text or stored values and stay under
// MaxErrorBodyBytes whatever the request. The processor maps codes to HTTP
// statuses.
package payment
