package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// StatusSucceeded is the status of every recorded payment.
const StatusSucceeded = "succeeded"

// Payment is a payment as recorded in the ledger.
type Payment struct {
	PaymentID   string
	SessionID   string // "" when none
	AmountMinor int64
	Currency    string
	Region      string    // the region whose processor recorded it
	CreatedAt   time.Time // UTC, microsecond precision (what PostgreSQL keeps)
}

// Amount returns the amount as a canonical decimal string ("12.50").
func (p Payment) Amount() string {
	mu, _ := MinorUnits(p.Currency)
	return FormatAmount(p.AmountMinor, mu)
}

// Record is what the ledger stores for one payment_id: the payment, the
// fingerprint of the request that created it, and the exact response body
// that was returned, so a retry in either region gets the same bytes.
type Record struct {
	Payment
	Fingerprint [32]byte
	Response    []byte
}

// Ledger is the system of record and the arbiter of idempotency: its unique
// key on payment_id decides whether a payment is new.
type Ledger interface {
	// Insert stores rec unless a record with rec.PaymentID already exists. It
	// returns the record now stored and whether it is rec (inserted) or an
	// earlier one. A nil error with inserted=true means rec is committed.
	// An earlier record of the same request (same fingerprint) is returned
	// only once it is as durable as a new commit would be (replicated, where
	// commits wait for a standby), since the answer acknowledges it.
	// Errors meaning the store cannot take writes and rec was not recorded
	// wrap ErrUnavailable; errors after which rec may or may not be
	// committed (the write was sent, then the connection was lost or the
	// deadline passed) wrap ErrOutcomeUnknown.
	Insert(ctx context.Context, rec Record) (stored Record, inserted bool, err error)
	// Get returns the record stored for paymentID and whether there is one.
	Get(ctx context.Context, paymentID string) (Record, bool, error)

	// The ledger is also the event outbox: a payment is committed with
	// its PaymentProcessed event marked unpublished, in the same row, so no
	// committed payment can lose its event to a crash.

	// MarkPublished records that paymentID's event was published.
	MarkPublished(ctx context.Context, paymentID string) error
	// PublishUnpublished calls publish, oldest first, for at most limit
	// payments created before before whose events are not marked
	// published, and marks each one publish accepts. It stops at the first
	// error from publish and returns it with the count marked. Concurrent
	// callers (both regions' sweepers) are never handed the same payment at
	// the same time.
	PublishUnpublished(ctx context.Context, before time.Time, limit int, publish func(context.Context, Payment) error) (int, error)
}

// Sessions keeps per-session payment links and a cache of responses,
// written after the ledger commits. The Service never reads it: the
// DynamoDB global table behind it is last-writer-wins across regions and,
// after a failover that lost data, still holds payments the new writer's
// ledger does not, so only the ledger may answer for a payment.
type Sessions interface {
	// Save caches rec's response under its payment_id and, when it has a
	// session, links the payment to the session.
	Save(ctx context.Context, rec Record) error
}

// Events publishes a PaymentProcessed event for a newly recorded payment.
// Delivery is at least once: consumers deduplicate on payment_id.
type Events interface {
	Publish(ctx context.Context, p Payment) error
}

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// SystemClock is the Clock of the real world.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Result is the answer to a processed payment request: the payment is
// recorded (created, or replayed when it existed before).
type Result struct {
	Body     []byte // the exact bytes first returned for this payment_id
	Replayed bool   // the payment existed before this request
	Record   Record
}

// responseBody is the JSON of a successful payment response; field order is
// the order on the wire.
type responseBody struct {
	PaymentID string `json:"payment_id"`
	Status    string `json:"status"`
	Amount    string `json:"amount"`
	Currency  string `json:"currency"`
	SessionID string `json:"session_id,omitempty"`
	Region    string `json:"region"`
	CreatedAt string `json:"created_at"`
}

// ResponseBody renders the response body of a successful payment:
//
//	{"payment_id":"p1","status":"succeeded","amount":"12.50","currency":"USD",
//	 "session_id":"s1","region":"us-east-1","created_at":"2026-01-02T03:04:05.123456Z"}
//
// session_id is omitted when the payment has none; created_at is RFC 3339
// with up to microsecond precision in UTC.
func ResponseBody(p Payment) ([]byte, error) {
	b, err := json.Marshal(responseBody{
		PaymentID: p.PaymentID,
		Status:    StatusSucceeded,
		Amount:    p.Amount(),
		Currency:  p.Currency,
		SessionID: p.SessionID,
		Region:    p.Region,
		CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return nil, fmt.Errorf("render response: %w", err)
	}
	return b, nil
}

// RecheckTimeout bounds the ledger read that follows an insert whose
// outcome is unknown; it runs after the request's own deadline.
const RecheckTimeout = 500 * time.Millisecond

// Service processes payments idempotently. Its zero value is not usable;
// build it with NewService.
type Service struct {
	ledger   Ledger
	sessions Sessions
	events   Events
	clock    Clock
	region   string
	log      *slog.Logger
	// sideEffectTimeout bounds the cache write and event publication that
	// follow a commit; they run even if the caller has gone.
	sideEffectTimeout time.Duration
}

// Deps are the stores and settings a Service needs.
type Deps struct {
	Ledger   Ledger
	Sessions Sessions
	Events   Events
	Clock    Clock        // nil means SystemClock
	Region   string       // this processor's region, e.g. us-east-1
	Logger   *slog.Logger // nil means slog.Default()
}

// NewService returns a Service over d.
func NewService(d Deps) *Service {
	if d.Clock == nil {
		d.Clock = SystemClock{}
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return &Service{
		ledger: d.Ledger, sessions: d.Sessions, events: d.Events, clock: d.Clock,
		region: d.Region, log: d.Logger, sideEffectTimeout: 2 * time.Second,
	}
}

// Process records req once. The first request for a payment_id inserts it
// into the ledger and returns 201 with a fresh body; a retry with the same
// content (same fingerprint) returns 201 with the stored body byte for byte
// and Replayed set; a reuse with different content is a 409 *RequestError
// that discloses nothing of the stored payment, with no side effects.
// Concurrent duplicates are settled by the ledger: one insert wins, the
// others replay it.
//
// A successful Result is only returned once this region's ledger holds the
// committed payment; nothing else (the response cache in Sessions least of
// all) answers for it. After the commit, the response is cached in Sessions
// and a PaymentProcessed event is published and marked so in the ledger;
// failures there are logged, not returned, because the payment stands. An
// event not marked published is sent later by PublishPending, from either
// region.
//
// When the ledger's insert fails, its error is returned: wrapping
// ErrUnavailable when the payment was not recorded, ErrOutcomeUnknown when
// it may have been. Before returning ErrOutcomeUnknown, Process inserts
// once more (within RecheckTimeout, past ctx's deadline): a stored record
// answers as usual (created, replayed or conflict); a failure leaves the
// outcome unknown, never "not recorded", since the write may still be in
// flight.
func (s *Service) Process(ctx context.Context, req Request) (Result, error) {
	fp := req.Fingerprint()
	p := Payment{
		PaymentID:   req.PaymentID,
		SessionID:   req.SessionID,
		AmountMinor: req.AmountMinor,
		Currency:    req.Currency,
		Region:      s.region,
		CreatedAt:   s.clock.Now().UTC().Truncate(time.Microsecond),
	}
	body, err := ResponseBody(p)
	if err != nil {
		return Result{}, fmt.Errorf("process payment %s: %w", req.PaymentID, err)
	}
	rec := Record{Payment: p, Fingerprint: fp, Response: body}
	stored, inserted, err := s.ledger.Insert(ctx, rec)
	if errors.Is(err, ErrOutcomeUnknown) {
		stored, inserted, err = s.recheck(ctx, rec, err)
	}
	if err != nil {
		return Result{}, fmt.Errorf("process payment %s: %w", req.PaymentID, err)
	}
	if !inserted {
		if stored.Fingerprint != fp {
			return Result{}, conflict(req)
		}
		return Result{Body: stored.Response, Replayed: true, Record: stored}, nil
	}
	s.afterCommit(ctx, stored)
	return Result{Body: stored.Response, Record: stored}, nil
}

// recheck inserts rec once more after an insert that failed with
// insertErr, outcome unknown. Inserting, not reading: a row found is
// answered only as durable as a commit (the ledger's contract for a stored
// record), and the lost insert may have committed locally only (its wait
// for a synchronous standby cancelled). A stored record that is rec itself
// (same response bytes: same created_at and region) was inserted by this
// request; another one is returned as an earlier record; any failure
// returns insertErr.
func (s *Service) recheck(ctx context.Context, rec Record, insertErr error) (Record, bool, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), RecheckTimeout)
	defer cancel()
	stored, inserted, err := s.ledger.Insert(rctx, rec)
	switch {
	case err != nil:
		s.log.WarnContext(ctx, "outcome unknown: the ledger could not be written again", "err", insertErr, "recheck_err", err)
		return Record{}, false, insertErr
	case inserted:
		s.log.InfoContext(ctx, "the ledger answer was lost; the payment was not recorded then and is now", "err", insertErr)
		return stored, true, nil
	}
	s.log.InfoContext(ctx, "the ledger answer was lost; the payment was found on inserting it again", "err", insertErr)
	return stored, stored.Fingerprint == rec.Fingerprint && bytes.Equal(stored.Response, rec.Response), nil
}

// afterCommit caches the response and publishes the event concurrently.
func (s *Service) afterCommit(ctx context.Context, rec Record) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.sideEffectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.sessions.Save(ctx, rec); err != nil {
			s.log.WarnContext(ctx, "response cache write failed", "err", err)
		}
	})
	wg.Go(func() {
		if err := s.events.Publish(ctx, rec.Payment); err != nil {
			s.log.WarnContext(ctx, "PaymentProcessed event not published yet; the outbox sweep will send it", "err", err)
			return
		}
		if err := s.ledger.MarkPublished(ctx, rec.PaymentID); err != nil {
			s.log.WarnContext(ctx, "PaymentProcessed event published but not marked; the outbox sweep may send it again", "err", err)
		}
	})
	wg.Wait()
}

// OutboxMinAge is how old a payment must be before PublishPending sends its
// unpublished event: younger ones are still in the hands of the request
// that recorded them.
const OutboxMinAge = 30 * time.Second

// PublishPending publishes the PaymentProcessed events of payments
// committed at least minAge ago (OutboxMinAge when zero) that are not marked
// published: those whose process died between the commit and the event, or
// whose publication failed. It sends at most limit (100 when zero) and
// returns how many it sent. Each event is sent at least once overall;
// consumers deduplicate on payment_id. Errors meaning the ledger cannot
// take writes wrap ErrUnavailable.
func (s *Service) PublishPending(ctx context.Context, minAge time.Duration, limit int) (int, error) {
	if minAge <= 0 {
		minAge = OutboxMinAge
	}
	if limit <= 0 {
		limit = 100
	}
	n, err := s.ledger.PublishUnpublished(ctx, s.clock.Now().Add(-minAge), limit, s.events.Publish)
	if n > 0 {
		s.log.InfoContext(ctx, "outbox: published pending PaymentProcessed events", "count", n)
	}
	if err != nil {
		return n, fmt.Errorf("publish pending events: %w", err)
	}
	return n, nil
}

// conflict builds the 409 for a payment_id reused with other content. It
// says only that: whoever sends a payment_id learns whether it is taken,
// never what the stored payment holds (amount, currency, whether it has a
// session) nor which fields differ, which would let a guesser read it
// field by field.
func conflict(req Request) *RequestError {
	return &RequestError{
		Code:    CodeConflict,
		Message: "payment_id " + req.PaymentID + " was already used for a different request; use a new payment_id for a new payment, or resend the original request unchanged",
		Fields:  []FieldError{{"payment_id", "was used for a different request"}},
	}
}

// IsConflict reports whether err is an idempotency conflict.
func IsConflict(err error) bool {
	var re *RequestError
	return errors.As(err, &re) && re.Code == CodeConflict
}
