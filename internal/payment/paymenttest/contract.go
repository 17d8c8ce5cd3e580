// Package paymenttest holds the contract tests that every implementation of
// the payment store interfaces runs: the in-memory ones in
// paydr/internal/payment/memory and the real adapters (PostgreSQL ledger,
// DynamoDB sessions). A store that passes them can back the payment.Service.
package paymenttest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/payment"
)

// InspectableLedger is a payment.Ledger that can also list what it holds,
// which the contract needs to count rows.
type InspectableLedger interface {
	payment.Ledger
	Payments(ctx context.Context) ([]payment.Payment, error)
}

// UniqueID returns a payment id unique to this run, so contract tests can
// share a store.
func UniqueID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// NewRecord returns a valid record for id with the given amount, as the
// Service would build it.
func NewRecord(t testing.TB, id string, amountMinor int64, at time.Time) payment.Record {
	t.Helper()
	p := payment.Payment{
		PaymentID:   id,
		SessionID:   "sess-" + id,
		AmountMinor: amountMinor,
		Currency:    "USD",
		Region:      "us-east-1",
		CreatedAt:   at.UTC().Truncate(time.Microsecond),
	}
	body, err := payment.ResponseBody(p)
	if err != nil {
		t.Fatal(err)
	}
	return payment.Record{
		Payment:     p,
		Fingerprint: sha256.Sum256([]byte(id + "|" + p.Amount())),
		Response:    body,
	}
}

var contractTime = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// TestLedger runs the ledger contract against stores made by newLedger.
func TestLedger(t *testing.T, newLedger func(t *testing.T) InspectableLedger) {
	ctx := context.Background()

	t.Run("InsertNew", func(t *testing.T) {
		l := newLedger(t)
		rec := NewRecord(t, UniqueID("new"), 1250, contractTime)
		got, inserted, err := l.Insert(ctx, rec)
		if err != nil {
			t.Fatalf("Insert(new) error = %v", err)
		}
		if !inserted {
			t.Errorf("Insert(new) inserted = false, want true")
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("Insert(new) stored record mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Get", func(t *testing.T) {
		l := newLedger(t)
		rec := NewRecord(t, UniqueID("get"), 4321, contractTime)
		if _, found, err := l.Get(ctx, rec.PaymentID); err != nil || found {
			t.Fatalf("Get(before insert) = found %v, %v; want not found, nil", found, err)
		}
		if _, _, err := l.Insert(ctx, rec); err != nil {
			t.Fatalf("Insert error = %v", err)
		}
		got, found, err := l.Get(ctx, rec.PaymentID)
		if err != nil || !found {
			t.Fatalf("Get(inserted) = found %v, %v; want found, nil", found, err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("Get(inserted) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("DuplicateReturnsOriginal", func(t *testing.T) {
		l := newLedger(t)
		id := UniqueID("dup")
		first := NewRecord(t, id, 1250, contractTime)
		// Unusual bytes must come back exactly.
		first.Response = append([]byte(" \t"), append(first.Response, "\n\u00e9"...)...)
		if _, _, err := l.Insert(ctx, first); err != nil {
			t.Fatalf("Insert(first) error = %v", err)
		}
		second := NewRecord(t, id, 999, contractTime.Add(time.Hour))
		got, inserted, err := l.Insert(ctx, second)
		if err != nil {
			t.Fatalf("Insert(second) error = %v", err)
		}
		if inserted {
			t.Errorf("Insert(duplicate) inserted = true, want false")
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("Insert(duplicate) returned record mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("ConcurrentDuplicates", func(t *testing.T) {
		l := newLedger(t)
		id := UniqueID("race")
		const n = 16
		var wg sync.WaitGroup
		results := make([]payment.Record, n)
		insertedCount := make([]bool, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				rec := NewRecord(t, id, 500, contractTime.Add(time.Duration(i)*time.Millisecond))
				results[i], insertedCount[i], errs[i] = l.Insert(ctx, rec)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Insert #%d error = %v", i, errs[i])
			}
			if insertedCount[i] {
				wins++
			}
			if diff := cmp.Diff(results[0], results[i]); diff != "" {
				t.Errorf("Insert #%d answer differs from #0 (-#0 +#%d):\n%s", i, i, diff)
			}
		}
		if wins != 1 {
			t.Errorf("concurrent Insert: %d inserted, want exactly 1", wins)
		}
		all, err := l.Payments(ctx)
		if err != nil {
			t.Fatalf("Payments() error = %v", err)
		}
		rows := 0
		for _, p := range all {
			if p.PaymentID == id {
				rows++
			}
		}
		if rows != 1 {
			t.Errorf("ledger holds %d rows for %s, want 1", rows, id)
		}
	})

	t.Run("PaymentsListsInserted", func(t *testing.T) {
		l := newLedger(t)
		want := map[string]int64{}
		for i := range 3 {
			rec := NewRecord(t, UniqueID("list"), int64(100+i), contractTime)
			want[rec.PaymentID] = rec.AmountMinor
			if _, _, err := l.Insert(ctx, rec); err != nil {
				t.Fatalf("Insert error = %v", err)
			}
		}
		all, err := l.Payments(ctx)
		if err != nil {
			t.Fatalf("Payments() error = %v", err)
		}
		got := map[string]int64{}
		for _, p := range all {
			if _, ok := want[p.PaymentID]; ok {
				got[p.PaymentID] = p.AmountMinor
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Payments() mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Outbox", func(t *testing.T) {
		l := newLedger(t)
		prefix := UniqueID("outbox")
		// Older than every other contract record, so these come first.
		t0 := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
		at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
		insert := func(name string, created time.Time) {
			t.Helper()
			if _, _, err := l.Insert(ctx, NewRecord(t, prefix+"-"+name, 100, created)); err != nil {
				t.Fatalf("Insert(%s) error = %v", name, err)
			}
		}
		// sweep runs PublishUnpublished and returns which of this test's
		// payments it published, in order (others are published silently).
		sweep := func(before time.Time, limit int, fail string) ([]string, error) {
			t.Helper()
			var mu sync.Mutex
			var got []string
			_, err := l.PublishUnpublished(ctx, before, limit, func(_ context.Context, p payment.Payment) error {
				name, ours := strings.CutPrefix(p.PaymentID, prefix+"-")
				if !ours {
					return nil
				}
				if name == fail {
					return errors.New("bus unavailable")
				}
				mu.Lock()
				got = append(got, name)
				mu.Unlock()
				return nil
			})
			return got, err
		}
		insert("a", at(0))
		insert("b", at(1))
		insert("c", at(2))
		if err := l.MarkPublished(ctx, prefix+"-b"); err != nil {
			t.Fatalf("MarkPublished(b) error = %v", err)
		}
		if got, err := sweep(at(2), 10, ""); err != nil || !slices.Equal(got, []string{"a"}) {
			t.Errorf("sweep before c = %v, %v; want [a] (b is published, c too young)", got, err)
		}
		if got, err := sweep(at(3), 10, "c"); err == nil || len(got) != 0 {
			t.Errorf("sweep with a failing publish = %v, %v; want nothing published and the error", got, err)
		}
		if got, err := sweep(at(3), 10, ""); err != nil || !slices.Equal(got, []string{"c"}) {
			t.Errorf("sweep after the failure = %v, %v; want [c] again (a is marked)", got, err)
		}
		insert("d", at(4))
		insert("e", at(5))
		if got, err := sweep(at(6), 1, ""); err != nil || !slices.Equal(got, []string{"d"}) {
			t.Errorf("sweep with limit 1 = %v, %v; want the oldest, [d]", got, err)
		}
		if err := l.MarkPublished(ctx, prefix+"-nonexistent"); err != nil {
			t.Errorf("MarkPublished(unknown) error = %v, want nil", err)
		}

		// Two sweepers at once hand out each payment once.
		for i := range 6 {
			insert(fmt.Sprintf("f%d", i), at(10+i))
		}
		var wg sync.WaitGroup
		results := make([][]string, 2)
		start := make(chan struct{})
		for i := range results {
			wg.Go(func() {
				<-start
				results[i], _ = sweep(at(20), 10, "")
			})
		}
		close(start)
		wg.Wait()
		all := append(slices.Clone(results[0]), results[1]...)
		slices.Sort(all)
		if want := []string{"e", "f0", "f1", "f2", "f3", "f4", "f5"}; !slices.Equal(all, want) {
			t.Errorf("two concurrent sweeps published %v and %v; want %v between them, each once", results[0], results[1], want)
		}
	})
}

// InspectableSessions is a payment.Sessions that can also read back a
// cached response, which the contract needs to check what Save wrote (the
// Service itself never reads the cache).
type InspectableSessions interface {
	payment.Sessions
	Lookup(ctx context.Context, paymentID string) (payment.Record, bool, error)
}

// TestSessions runs the sessions contract against stores made by newSessions.
func TestSessions(t *testing.T, newSessions func(t *testing.T) InspectableSessions) {
	ctx := context.Background()

	t.Run("LookupMissing", func(t *testing.T) {
		s := newSessions(t)
		_, found, err := s.Lookup(ctx, UniqueID("missing"))
		if err != nil {
			t.Fatalf("Lookup(missing) error = %v", err)
		}
		if found {
			t.Errorf("Lookup(missing) found = true, want false")
		}
	})

	t.Run("SaveThenLookup", func(t *testing.T) {
		s := newSessions(t)
		rec := NewRecord(t, UniqueID("cache"), 4200, contractTime)
		if err := s.Save(ctx, rec); err != nil {
			t.Fatalf("Save error = %v", err)
		}
		got, found, err := s.Lookup(ctx, rec.PaymentID)
		if err != nil || !found {
			t.Fatalf("Lookup(saved) = found %v, err %v; want found, nil", found, err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("Lookup(saved) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("SaveWithoutSession", func(t *testing.T) {
		s := newSessions(t)
		rec := NewRecord(t, UniqueID("nosess"), 1, contractTime)
		rec.SessionID = ""
		if err := s.Save(ctx, rec); err != nil {
			t.Fatalf("Save error = %v", err)
		}
		got, found, err := s.Lookup(ctx, rec.PaymentID)
		if err != nil || !found {
			t.Fatalf("Lookup(saved) = found %v, err %v; want found, nil", found, err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("Lookup(saved) mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("SaveTwiceIsIdempotent", func(t *testing.T) {
		s := newSessions(t)
		rec := NewRecord(t, UniqueID("twice"), 7, contractTime)
		for range 2 {
			if err := s.Save(ctx, rec); err != nil {
				t.Fatalf("Save error = %v", err)
			}
		}
		got, _, err := s.Lookup(ctx, rec.PaymentID)
		if err != nil {
			t.Fatalf("Lookup error = %v", err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("Lookup after two saves mismatch (-want +got):\n%s", diff)
		}
	})
}
