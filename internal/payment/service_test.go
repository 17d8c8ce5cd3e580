package payment_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/payment"
	"paydr/internal/payment/memory"
)

type fixture struct {
	svc      *payment.Service
	ledger   *memory.Ledger
	sessions *memory.Sessions
	events   *memory.Events
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)

func newFixture() fixture {
	f := fixture{ledger: memory.NewLedger(), sessions: memory.NewSessions(), events: &memory.Events{}}
	f.svc = payment.NewService(payment.Deps{
		Ledger: f.ledger, Sessions: f.sessions, Events: f.events,
		Clock: memory.NewClock(t0, time.Second), Region: "us-east-1",
	})
	return f
}

func mustDecode(t *testing.T, body string) payment.Request {
	t.Helper()
	r, err := payment.DecodeRequest([]byte(body))
	if err != nil {
		t.Fatalf("DecodeRequest(%s) error = %v", body, err)
	}
	return r
}

func TestProcessNew(t *testing.T) {
	f := newFixture()
	req := mustDecode(t, `{"payment_id":"pay_1","amount":"12.5","currency":"USD","session_id":"s1"}`)
	res, err := f.svc.Process(context.Background(), req)
	if err != nil {
		t.Fatalf("Process error = %v", err)
	}
	want := `{"payment_id":"pay_1","status":"succeeded","amount":"12.50","currency":"USD","session_id":"s1","region":"us-east-1","created_at":"2026-01-02T03:04:05.123456Z"}`
	if diff := cmp.Diff(want, string(res.Body)); diff != "" {
		t.Errorf("Process body mismatch (-want +got):\n%s", diff)
	}
	if res.Replayed {
		t.Errorf("Process = replayed %v, want a new payment", res.Replayed)
	}
	if got := f.events.Published(); len(got) != 1 || got[0].PaymentID != "pay_1" || got[0].AmountMinor != 1250 {
		t.Errorf("published events = %+v, want one for pay_1 of 1250", got)
	}
	cached, ok, _ := f.sessions.Lookup(context.Background(), "pay_1")
	if !ok || string(cached.Response) != want {
		t.Errorf("cached response = %q (found %v), want %q", cached.Response, ok, want)
	}
	ids, _ := f.sessions.SessionPayments(context.Background(), "s1")
	if diff := cmp.Diff([]string{"pay_1"}, ids); diff != "" {
		t.Errorf("session links mismatch (-want +got):\n%s", diff)
	}
}

func TestProcessNoSessionOmitsField(t *testing.T) {
	f := newFixture()
	res, err := f.svc.Process(context.Background(), mustDecode(t, `{"payment_id":"p","amount":500,"currency":"JPY"}`))
	if err != nil {
		t.Fatalf("Process error = %v", err)
	}
	want := `{"payment_id":"p","status":"succeeded","amount":"500","currency":"JPY","region":"us-east-1","created_at":"2026-01-02T03:04:05.123456Z"}`
	if diff := cmp.Diff(want, string(res.Body)); diff != "" {
		t.Errorf("Process body mismatch (-want +got):\n%s", diff)
	}
}

func TestProcessReplay(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	first, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"p","amount":"1.5","currency":"USD"}`))
	if err != nil {
		t.Fatal(err)
	}
	// Same payment, other spelling, later clock.
	again, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"p","amount":1.50,"currency":"USD"}`))
	if err != nil {
		t.Fatalf("Process(retry) error = %v", err)
	}
	if !again.Replayed {
		t.Errorf("Process(retry) = replayed %v, want true", again.Replayed)
	}
	if diff := cmp.Diff(string(first.Body), string(again.Body)); diff != "" {
		t.Errorf("replayed body differs (-first +retry):\n%s", diff)
	}
	if n := len(f.events.Published()); n != 1 {
		t.Errorf("events published = %d, want 1 (a replay publishes nothing)", n)
	}
}

// sameConflict is the only thing a conflict says about the fields.
var sameConflict = []payment.FieldError{{Field: "payment_id", Message: "was used for a different request"}}

func TestProcessConflict(t *testing.T) {
	tests := []struct {
		name   string
		retry  string
		fields []payment.FieldError
	}{
		{"amount", `{"payment_id":"p","amount":"2","currency":"USD","session_id":"s"}`, sameConflict},
		{"currency", `{"payment_id":"p","amount":"1","currency":"EUR","session_id":"s"}`, sameConflict},
		{"session", `{"payment_id":"p","amount":"1","currency":"USD"}`, sameConflict},
		{"everything", `{"payment_id":"p","amount":"3","currency":"JPY","session_id":"t"}`, sameConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			ctx := context.Background()
			if _, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"p","amount":"1","currency":"USD","session_id":"s"}`)); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.Process(ctx, mustDecode(t, tt.retry))
			var re *payment.RequestError
			if !errors.As(err, &re) || re.Code != payment.CodeConflict {
				t.Fatalf("Process(conflicting retry) error = %v, want 409 *RequestError", err)
			}
			if diff := cmp.Diff(tt.fields, re.Fields); diff != "" {
				t.Errorf("conflict fields mismatch (-want +got):\n%s", diff)
			}
			// Whoever guesses a payment_id learns it is taken, nothing
			// about the payment behind it.
			for _, stored := range []string{"1.00", "USD", "session"} {
				if strings.Contains(re.Error(), stored) {
					t.Errorf("conflict message %q discloses %q of the original request", re.Error(), stored)
				}
			}
			all, _ := f.ledger.Payments(ctx)
			if len(all) != 1 || all[0].AmountMinor != 100 || all[0].Currency != "USD" {
				t.Errorf("ledger after conflict = %+v, want only the original", all)
			}
		})
	}
}

func TestProcessConcurrentDuplicates(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	const n = 32
	bodies := make([]string, n)
	errs := make([]error, n)
	replays := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"race","amount":"3.00","currency":"GBP"}`))
			bodies[i], errs[i] = string(res.Body), err
			mu.Lock()
			if res.Replayed {
				replays++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Process #%d error = %v", i, errs[i])
		}
		if bodies[i] != bodies[0] {
			t.Errorf("Process #%d body = %s, want %s", i, bodies[i], bodies[0])
		}
	}
	if replays != n-1 {
		t.Errorf("replays = %d, want %d", replays, n-1)
	}
	if all, _ := f.ledger.Payments(ctx); len(all) != 1 {
		t.Errorf("ledger rows = %d, want 1", len(all))
	}
}

func TestProcessLedgerDown(t *testing.T) {
	ctx := context.Background()
	t.Run("no cache: unavailable", func(t *testing.T) {
		f := newFixture()
		f.ledger.Err = payment.ErrUnavailable
		_, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"p","amount":"1","currency":"USD"}`))
		if !errors.Is(err, payment.ErrUnavailable) {
			t.Fatalf("Process error = %v, want ErrUnavailable", err)
		}
		if n := len(f.events.Published()); n != 0 {
			t.Errorf("events published = %d, want 0", n)
		}
		if body := payment.ErrorResponse(err); body.Error != payment.CodeUnavailable {
			t.Errorf("ErrorResponse code = %s, want %s", body.Error, payment.CodeUnavailable)
		}
	})
	// After a failover that lost the payment, the global session table may
	// still hold its cached response while this region's ledger, which does
	// not have it, fails: the cache must not answer for the ledger.
	t.Run("cached response is no answer", func(t *testing.T) {
		f := newFixture()
		if _, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"p","amount":"1","currency":"USD"}`)); err != nil {
			t.Fatal(err)
		}
		f.ledger.Err = payment.ErrUnavailable
		for _, body := range []string{
			`{"payment_id":"p","amount":"1","currency":"USD"}`, // same request
			`{"payment_id":"p","amount":"2","currency":"USD"}`, // conflicting one
		} {
			res, err := f.svc.Process(ctx, mustDecode(t, body))
			if !errors.Is(err, payment.ErrUnavailable) {
				t.Errorf("Process(%s, ledger down, response cached) = %s replayed %v, %v; want ErrUnavailable", body, res.Body, res.Replayed, err)
			}
		}
	})
}

func TestProcessSideEffectFailuresKeepPayment(t *testing.T) {
	f := newFixture()
	f.sessions.Err = errors.New("dynamodb down")
	f.events.Err = errors.New("eventbridge down")
	res, err := f.svc.Process(context.Background(), mustDecode(t, `{"payment_id":"p","amount":"1","currency":"USD"}`))
	if err != nil || len(res.Body) == 0 {
		t.Fatalf("Process = %q, %v; want the payment recorded when only cache and events fail", res.Body, err)
	}
}

func TestErrorResponseHidesInternals(t *testing.T) {
	body := payment.ErrorResponse(errors.New("pq: password authentication failed for user admin"))
	want := payment.ErrorBody{Error: payment.CodeInternal, Message: "internal error; retry with the same payment_id"}
	if diff := cmp.Diff(want, body); diff != "" {
		t.Errorf("ErrorResponse body mismatch (-want +got):\n%s", diff)
	}
}

func TestEventOutbox(t *testing.T) {
	f := newFixture()
	ctx := context.Background()
	process := func(id string) {
		t.Helper()
		if _, err := f.svc.Process(ctx, mustDecode(t, `{"payment_id":"`+id+`","amount":"1.00","currency":"USD"}`)); err != nil {
			t.Fatalf("Process(%s) error = %v", id, err)
		}
	}
	published := func() []string {
		var ids []string
		for _, p := range f.events.Published() {
			ids = append(ids, p.PaymentID)
		}
		return ids
	}

	// The bus is down: the payment stands, its event waits in the outbox.
	f.events.Err = errors.New("bus down")
	process("pay_1")
	if n, err := f.svc.PublishPending(ctx, time.Nanosecond, 0); err == nil || n != 0 {
		t.Errorf("PublishPending with the bus down = %d, %v; want 0 and an error", n, err)
	}
	f.events.Err = nil
	// A payment whose event goes out at once is marked and not sent again.
	process("pay_2")
	if got := published(); !cmp.Equal(got, []string{"pay_2"}) {
		t.Fatalf("published after pay_2 = %v, want [pay_2]", got)
	}
	if n, err := f.svc.PublishPending(ctx, time.Hour, 0); err != nil || n != 0 {
		t.Errorf("PublishPending(minAge 1h) = %d, %v; want 0: pay_1 is younger than an hour", n, err)
	}
	if n, err := f.svc.PublishPending(ctx, time.Nanosecond, 0); err != nil || n != 1 {
		t.Errorf("PublishPending = %d, %v; want 1 (pay_1)", n, err)
	}
	if n, err := f.svc.PublishPending(ctx, time.Nanosecond, 0); err != nil || n != 0 {
		t.Errorf("second PublishPending = %d, %v; want 0", n, err)
	}
	if got := published(); !cmp.Equal(got, []string{"pay_2", "pay_1"}) {
		t.Errorf("published = %v, want [pay_2 pay_1]: each event exactly once here", got)
	}
}

// lossyLedger is a memory ledger whose first Insert loses its answer: it
// commits the record when commit is set, then fails with an outcome-unknown
// error, as the PostgreSQL ledger does when the connection drops after the
// INSERT was sent. Later inserts fail with retryErr when it is set.
type lossyLedger struct {
	*memory.Ledger
	commit   bool
	retryErr error
	inserts  int
}

func (l *lossyLedger) Insert(ctx context.Context, rec payment.Record) (payment.Record, bool, error) {
	l.inserts++
	if l.inserts > 1 {
		if l.retryErr != nil {
			return payment.Record{}, false, fmt.Errorf("ledger: insert %s: %w", rec.PaymentID, l.retryErr)
		}
		return l.Ledger.Insert(ctx, rec)
	}
	if l.commit {
		if _, _, err := l.Ledger.Insert(ctx, rec); err != nil {
			return payment.Record{}, false, err
		}
	}
	return payment.Record{}, false, fmt.Errorf("ledger: insert %s: %w: read: connection reset by peer", rec.PaymentID, payment.ErrOutcomeUnknown)
}

// TestProcessOutcomeUnknown: after an insert whose answer was lost, the
// payment is inserted again (not read: a row found must be made durable
// before it is acknowledged); only the ledger decides, and when it cannot
// answer the outcome stays unknown, never "not recorded".
func TestProcessOutcomeUnknown(t *testing.T) {
	const body = `{"payment_id":"p","amount":"1","currency":"USD"}`
	earlier := func(amount string) func(t *testing.T, f fixture) {
		return func(t *testing.T, f fixture) {
			t.Helper()
			if _, err := f.svc.Process(context.Background(), mustDecode(t, `{"payment_id":"p","amount":"`+amount+`","currency":"USD"}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name     string
		before   func(t *testing.T, f fixture) // with a working ledger
		commit   bool
		retryErr error
		code     string // "" for a payment
		replayed bool
		events   int
	}{
		{name: "committed, the row is found again", commit: true, events: 1},
		{name: "committed, the ledger cannot be written again", commit: true, retryErr: payment.ErrUnavailable, code: payment.CodeOutcomeUnknown},
		{name: "not committed, the ledger cannot be written again", retryErr: payment.ErrOutcomeUnknown, code: payment.CodeOutcomeUnknown},
		{name: "not committed, recorded on the second insert", events: 1},
		{name: "an earlier request's row, same content", before: earlier("1"), replayed: true, events: 1},
		{name: "an earlier request's row, other content", before: earlier("2"), code: payment.CodeConflict, events: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture()
			if tt.before != nil {
				tt.before(t, f)
			}
			lossy := &lossyLedger{Ledger: f.ledger, commit: tt.commit, retryErr: tt.retryErr}
			svc := payment.NewService(payment.Deps{
				Ledger: lossy, Sessions: f.sessions, Events: f.events,
				Clock: memory.NewClock(t0.Add(time.Hour), time.Second), Region: "us-east-1",
			})
			res, err := svc.Process(context.Background(), mustDecode(t, body))
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Process error = %v, want the payment", err)
				}
				if res.Replayed != tt.replayed {
					t.Errorf("Process replayed = %v, want %v", res.Replayed, tt.replayed)
				}
				stored, found, _ := f.ledger.Get(context.Background(), "p")
				if !found || !bytes.Equal(res.Body, stored.Response) {
					t.Errorf("Process body = %s, want the stored %s", res.Body, stored.Response)
				}
			} else {
				if got := payment.ErrorResponse(err).Error; got != tt.code {
					t.Errorf("Process error = %v (code %s), want code %s", err, got, tt.code)
				}
				if errors.Is(err, payment.ErrUnavailable) && !errors.Is(err, payment.ErrOutcomeUnknown) {
					t.Errorf("Process error = %v says \"not recorded\" after the insert was sent", err)
				}
			}
			if n := len(f.events.Published()); n != tt.events {
				t.Errorf("events published = %d, want %d", n, tt.events)
			}
		})
	}
}

func TestErrorResponseOutcomeUnknown(t *testing.T) {
	// An outcome-unknown error that also wraps ErrUnavailable (a re-read
	// that found the region unavailable) still says "unknown".
	err := fmt.Errorf("%w (recheck: %w)", payment.ErrOutcomeUnknown, payment.ErrUnavailable)
	if got := payment.ErrorResponse(err).Error; got != payment.CodeOutcomeUnknown {
		t.Errorf("ErrorResponse(outcome unknown and unavailable) = %s, want %s", got, payment.CodeOutcomeUnknown)
	}
}
