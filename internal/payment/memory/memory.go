// Package memory provides in-memory implementations of the stores the
// payment Service consumes (payment.Ledger, payment.Sessions, payment.Events,
// payment.Clock), for unit tests and benchmarks. They are safe for concurrent
// use and behave like the real adapters as checked by the contract tests in
// paydr/internal/payment/paymenttest.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"paydr/internal/payment"
)

// Ledger is an in-memory payment.Ledger keyed by payment_id.
type Ledger struct {
	mu        sync.Mutex
	records   map[string]payment.Record
	published map[string]bool
	sweep     sync.Mutex // serializes PublishUnpublished
	// Err, when set, is returned by every method (to simulate an outage).
	Err error
}

// NewLedger returns an empty Ledger.
func NewLedger() *Ledger {
	return &Ledger{records: map[string]payment.Record{}, published: map[string]bool{}}
}

// Insert stores rec unless its payment_id exists; see payment.Ledger.
func (l *Ledger) Insert(_ context.Context, rec payment.Record) (payment.Record, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Err != nil {
		return payment.Record{}, false, fmt.Errorf("memory ledger: insert %s: %w", rec.PaymentID, l.Err)
	}
	if got, ok := l.records[rec.PaymentID]; ok {
		return clone(got), false, nil
	}
	rec = clone(rec)
	l.records[rec.PaymentID] = rec
	return clone(rec), true, nil
}

// Get returns the record stored for paymentID; see payment.Ledger.
func (l *Ledger) Get(_ context.Context, paymentID string) (payment.Record, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Err != nil {
		return payment.Record{}, false, fmt.Errorf("memory ledger: get %s: %w", paymentID, l.Err)
	}
	r, ok := l.records[paymentID]
	return clone(r), ok, nil
}

// MarkPublished records that paymentID's event was published; see
// payment.Ledger.
func (l *Ledger) MarkPublished(_ context.Context, paymentID string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Err != nil {
		return fmt.Errorf("memory ledger: mark %s published: %w", paymentID, l.Err)
	}
	if _, ok := l.records[paymentID]; ok {
		l.published[paymentID] = true
	}
	return nil
}

// PublishUnpublished publishes pending events oldest first; see
// payment.Ledger.
func (l *Ledger) PublishUnpublished(ctx context.Context, before time.Time, limit int, publish func(context.Context, payment.Payment) error) (int, error) {
	l.sweep.Lock()
	defer l.sweep.Unlock()
	l.mu.Lock()
	if l.Err != nil {
		l.mu.Unlock()
		return 0, fmt.Errorf("memory ledger: publish unpublished: %w", l.Err)
	}
	var pending []payment.Payment
	for id, r := range l.records {
		if !l.published[id] && r.CreatedAt.Before(before) {
			pending = append(pending, r.Payment)
		}
	}
	l.mu.Unlock()
	slices.SortFunc(pending, func(a, b payment.Payment) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return cmpString(a.PaymentID, b.PaymentID)
	})
	n := 0
	for _, p := range pending[:min(limit, len(pending))] {
		if err := publish(ctx, p); err != nil {
			return n, err
		}
		if err := l.MarkPublished(ctx, p.PaymentID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Payments returns every recorded payment ordered by payment_id.
func (l *Ledger) Payments(context.Context) ([]payment.Payment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]payment.Payment, 0, len(l.records))
	for _, r := range l.records {
		out = append(out, r.Payment)
	}
	slices.SortFunc(out, func(a, b payment.Payment) int { return cmpString(a.PaymentID, b.PaymentID) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func clone(r payment.Record) payment.Record {
	r.Response = slices.Clone(r.Response)
	return r
}

// Sessions is an in-memory payment.Sessions.
type Sessions struct {
	mu        sync.Mutex
	responses map[string]payment.Record
	bySession map[string]map[string]struct{}
	// Err, when set, is returned by Save and Lookup.
	Err error
}

// NewSessions returns an empty Sessions.
func NewSessions() *Sessions {
	return &Sessions{responses: map[string]payment.Record{}, bySession: map[string]map[string]struct{}{}}
}

// Save caches rec and links it to its session; see payment.Sessions.
func (s *Sessions) Save(_ context.Context, rec payment.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return fmt.Errorf("memory sessions: save %s: %w", rec.PaymentID, s.Err)
	}
	s.responses[rec.PaymentID] = clone(rec)
	if rec.SessionID != "" {
		if s.bySession[rec.SessionID] == nil {
			s.bySession[rec.SessionID] = map[string]struct{}{}
		}
		s.bySession[rec.SessionID][rec.PaymentID] = struct{}{}
	}
	return nil
}

// Lookup returns the cached record for paymentID, for tests that check
// what was cached (the Service never reads the cache).
func (s *Sessions) Lookup(_ context.Context, paymentID string) (payment.Record, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return payment.Record{}, false, fmt.Errorf("memory sessions: lookup %s: %w", paymentID, s.Err)
	}
	r, ok := s.responses[paymentID]
	return clone(r), ok, nil
}

// SessionPayments returns the payment ids linked to sessionID, sorted.
func (s *Sessions) SessionPayments(_ context.Context, sessionID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.bySession[sessionID]))
	for id := range s.bySession[sessionID] {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// Ping reports whether the store is reachable (always, unless Err is set).
func (s *Sessions) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return fmt.Errorf("memory sessions: ping: %w", s.Err)
	}
	return nil
}

// Events is an in-memory payment.Events that keeps what it was given.
type Events struct {
	mu        sync.Mutex
	published []payment.Payment
	// Err, when set, is returned by Publish.
	Err error
}

// Publish records p.
func (e *Events) Publish(_ context.Context, p payment.Payment) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Err != nil {
		return fmt.Errorf("memory events: publish %s: %w", p.PaymentID, e.Err)
	}
	e.published = append(e.published, p)
	return nil
}

// Published returns the payments published so far, in order.
func (e *Events) Published() []payment.Payment {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.published)
}

// Clock is a payment.Clock that returns a set time and advances by Step on
// each call.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	Step time.Duration
}

// NewClock returns a Clock starting at t that advances by step per call.
func NewClock(t time.Time, step time.Duration) *Clock { return &Clock{t: t, Step: step} }

// Now returns the current fake time and advances it.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.Step)
	return t
}
