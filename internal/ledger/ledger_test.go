package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"paydr/internal/ledger"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/payment"
	"paydr/internal/payment/memory"
	"paydr/internal/payment/paymenttest"
)

// startDB starts a PostgreSQL server with database name and returns its DSN.
func startDB(t *testing.T, name string) string {
	t.Helper()
	return startDBNamed(t, name)
}

func startDBTB(tb testing.TB) string { return startDBNamed(tb, "payments") }

func openLedgerTB(tb testing.TB, dsn string) (*ledger.Ledger, error) {
	l, err := ledger.Open(ledger.Options{DSN: dsn, Region: "us-east-1", MaxConns: 16, Migrate: true})
	if err == nil {
		tb.Cleanup(l.Close)
	}
	return l, err
}

func startDBNamed(t testing.TB, name string) string {
	t.Helper()
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("CreateDatabase(%s) error = %v", name, err)
	}
	return srv.DSN(name)
}

func openLedger(t *testing.T, dsn string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(ledger.Options{DSN: dsn, Region: "us-east-1", MaxConns: 20, Migrate: true})
	if err != nil {
		t.Fatalf("Open error = %v", err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestPostgresContract(t *testing.T) {
	dsn := startDB(t, "payments")
	l := openLedger(t, dsn)
	paymenttest.TestLedger(t, func(*testing.T) paymenttest.InspectableLedger { return l })
}

func TestMigrateIsIdempotent(t *testing.T) {
	dsn := startDB(t, "payments")
	ctx := context.Background()
	l := openLedger(t, dsn)
	all, err := ledger.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, m := range all {
		want = append(want, m.Version)
	}
	got, err := l.Migrate(ctx)
	if err != nil {
		t.Fatalf("Migrate error = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first Migrate applied mismatch (-want +got):\n%s", diff)
	}
	// A second process and concurrent starters apply nothing again.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			again, err := openLedger(t, dsn).Migrate(ctx)
			if err != nil || len(again) != 0 {
				t.Errorf("repeated Migrate = %v, %v; want nothing applied", again, err)
			}
		})
	}
	wg.Wait()
}

// TestServiceConcurrentDuplicates drives the payment.Service over the real
// ledger: N goroutines submit the same payment; exactly one row, one answer.
func TestServiceConcurrentDuplicates(t *testing.T) {
	dsn := startDB(t, "payments")
	l := openLedger(t, dsn)
	svc := payment.NewService(payment.Deps{
		Ledger: l, Sessions: memory.NewSessions(), Events: &memory.Events{}, Region: "us-east-1",
	})
	ctx := context.Background()
	req, err := payment.DecodeRequest([]byte(`{"payment_id":"race-1","amount":"19.99","currency":"EUR","session_id":"s"}`))
	if err != nil {
		t.Fatal(err)
	}
	const n = 24
	bodies := make([]string, n)
	replayed := make([]bool, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			res, err := svc.Process(ctx, req)
			bodies[i], replayed[i], errs[i] = string(res.Body), res.Replayed, err
		})
	}
	close(start)
	wg.Wait()
	fresh := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Process #%d error = %v", i, errs[i])
		}
		if bodies[i] != bodies[0] {
			t.Errorf("Process #%d body = %s, want %s", i, bodies[i], bodies[0])
		}
		if !replayed[i] {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("fresh (not replayed) answers = %d, want 1", fresh)
	}
	totals, err := l.Totals(ctx)
	if err != nil {
		t.Fatalf("Totals error = %v", err)
	}
	if diff := cmp.Diff(map[string]ledger.Total{"EUR": {Count: 1, AmountMinor: 1999}}, totals); diff != "" {
		t.Errorf("Totals mismatch (-want +got):\n%s", diff)
	}
}

func TestWritable(t *testing.T) {
	dsn := startDB(t, "payments")
	ctx := context.Background()
	l := openLedger(t, dsn)
	// A fresh database: Writable migrates and probes.
	if ok, err := l.Writable(ctx); !ok || err != nil {
		t.Fatalf("Writable(fresh primary) = %v, %v; want true, nil", ok, err)
	}
	// Fence the database the way an operator could: read-only by default.
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `ALTER DATABASE payments SET default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	fenced := openLedger(t, dsn) // new sessions pick up the setting
	if ok, err := fenced.Writable(ctx); ok || err != nil {
		t.Errorf("Writable(fenced) = %v, %v; want false, nil", ok, err)
	}
	rec := paymenttest.NewRecord(t, "fenced-1", 100, time.Now())
	if _, _, err := fenced.Insert(ctx, rec); !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("Insert(fenced) error = %v, want ErrUnavailable", err)
	}
	// Unreachable: a closed port.
	down := openLedger(t, "postgres://nobody@127.0.0.1:1/payments?connect_timeout=2")
	if ok, err := down.Writable(ctx); ok || !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("Writable(unreachable) = %v, %v; want false, ErrUnavailable", ok, err)
	}
}

func TestWritableOnStandby(t *testing.T) {
	primary, standby := pgtest.StartPair(t)
	ctx := context.Background()
	if err := primary.CreateDatabase(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	p := openLedger(t, primary.DSN("payments"))
	if _, err := p.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := p.Writable(ctx); !ok || err != nil {
		t.Fatalf("Writable(primary) = %v, %v; want true, nil", ok, err)
	}
	// The database reaches the standby by streaming replication.
	var s *ledger.Ledger
	deadline := time.Now().Add(30 * time.Second)
	for {
		s = openLedger(t, standby.DSN("payments"))
		if _, err := s.Payments(ctx); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ok, err := s.Writable(ctx); ok || err != nil {
		t.Errorf("Writable(standby) = %v, %v; want false, nil", ok, err)
	}
	// The standby region's outbox sweep is told "unavailable", which its
	// callers take quietly, and publishes nothing.
	n, err := s.PublishUnpublished(ctx, time.Now(), 10, func(context.Context, payment.Payment) error {
		t.Error("publish called on a standby")
		return nil
	})
	if n != 0 || !errors.Is(err, payment.ErrUnavailable) {
		t.Errorf("PublishUnpublished(standby) = %d, %v; want 0, ErrUnavailable", n, err)
	}
}
