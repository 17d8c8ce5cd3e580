package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paydr/internal/ledger"
	"paydr/internal/ledger/ledgertest"
	"paydr/internal/payment"
	"paydr/internal/payment/memory"
	"paydr/internal/payment/paymenttest"
)

// insertPayments is the statement the faults trip on.
const insertPayments = "INSERT INTO payments"

// deadlineSlack is how late past its deadline an answer may come on a
// loaded machine.
const deadlineSlack = 2 * time.Second

// TestInsertOutcome: what Insert says when the database goes away or
// freezes at each point of a write. "Not committed" (ErrUnavailable, 503)
// only when nothing of the INSERT reached the server; once it was sent,
// the outcome is unknown (504), and the row may well be there.
func TestInsertOutcome(t *testing.T) {
	dsn := startDB(t, "payments")
	direct := openLedger(t, dsn)
	ctx := context.Background()
	if _, err := direct.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fault   *ledgertest.Fault // armed before the insert
		freeze  bool              // the proxy black-holes from the start
		refused bool              // nothing listens
		timeout time.Duration     // the caller's deadline (0: a minute)
		syncRep bool              // commits wait for a standby that never comes
		code    string            // payment.ErrorResponse(err).Error
		row     bool              // the row is in the ledger afterwards
	}{
		{name: "connection reset after the insert committed",
			fault: &ledgertest.Fault{Match: insertPayments, Then: ledgertest.Reset},
			code:  payment.CodeOutcomeUnknown, row: true},
		{name: "database frozen after the insert was sent",
			fault:   &ledgertest.Fault{Match: insertPayments, Then: ledgertest.Freeze},
			timeout: time.Second, code: payment.CodeOutcomeUnknown},
		{name: "deadline during a synchronous commit",
			syncRep: true, timeout: time.Second, code: payment.CodeOutcomeUnknown, row: true},
		{name: "database never answers the connection",
			freeze: true, timeout: time.Second, code: payment.CodeUnavailable},
		{name: "connection refused",
			refused: true, code: payment.CodeUnavailable},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, proxied := ledgertest.StartFor(t, dsn)
			var l *ledger.Ledger
			migrate := func() {
				t.Helper()
				if _, err := l.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case tt.refused:
				l = openLedger(t, "postgres://postgres@127.0.0.1:1/payments?sslmode=disable")
			case tt.freeze:
				l = openLedger(t, proxied)
				t.Cleanup(p.Close) // before the pool's: a frozen connection would hold its Close
				p.Freeze()
			case tt.syncRep:
				l = openLedger(t, dsn)
				migrate()
				waitForStandby(t, dsn)
			default:
				// Connect and migrate before the fault is armed.
				l = openLedger(t, proxied)
				t.Cleanup(p.Close)
				migrate()
				p.Arm(*tt.fault)
			}
			timeout := tt.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			rec := paymenttest.NewRecord(t, paymenttest.UniqueID("outcome"), int64(100+i), time.Now())
			ictx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			_, _, err := l.Insert(ictx, rec)
			took := time.Since(start)
			if err == nil {
				t.Fatalf("Insert through the fault succeeded, want an error")
			}
			t.Logf("Insert error after %s: %v", took.Round(time.Millisecond), err)
			if got := payment.ErrorResponse(err).Error; got != tt.code {
				t.Errorf("Insert error code = %s, want %s (error: %v)", got, tt.code, err)
			}
			if tt.code == payment.CodeOutcomeUnknown && errors.Is(err, payment.ErrUnavailable) {
				t.Errorf("Insert error = %v, wraps ErrUnavailable (\"not committed\") after the insert was sent", err)
			}
			if tt.timeout > 0 && took > tt.timeout+deadlineSlack {
				t.Errorf("Insert took %s with a %s deadline, want at most %s", took, tt.timeout, tt.timeout+deadlineSlack)
			}
			if tt.syncRep {
				releaseStandby(t, dsn)
			}
			if got := waitForRow(t, direct, rec.PaymentID, tt.row); got != tt.row {
				t.Errorf("row %s in the ledger = %v, want %v", rec.PaymentID, got, tt.row)
			}
		})
	}
}

// TestServiceOutcome drives payment.Service through the faults: after a
// lost answer it reads the ledger again, and answers the payment when the
// row is there, outcome unknown when it cannot tell, never "not
// committed".
func TestServiceOutcome(t *testing.T) {
	dsn := startDB(t, "payments")
	direct := openLedger(t, dsn)
	ctx := context.Background()
	if _, err := direct.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		action ledgertest.Action
		code   string // "" for a payment answer
	}{
		{"answer lost, database reachable again", ledgertest.Reset, ""},
		{"answer lost, database unreachable", ledgertest.ResetAndRefuse, payment.CodeOutcomeUnknown},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, proxied := ledgertest.StartFor(t, dsn)
			l := openLedger(t, proxied)
			if _, err := l.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			p.Arm(ledgertest.Fault{Match: insertPayments, Then: tt.action})
			svc := payment.NewService(payment.Deps{Ledger: l, Sessions: memory.NewSessions(), Events: &memory.Events{}, Region: "us-east-1"})
			id := paymenttest.UniqueID("svc")
			req, err := payment.DecodeRequest([]byte(fmt.Sprintf(`{"payment_id":%q,"amount":"%d.00","currency":"USD"}`, id, i+1)))
			if err != nil {
				t.Fatal(err)
			}
			res, err := svc.Process(ctx, req)
			select {
			case <-p.Tripped():
			default:
				t.Fatalf("the fault did not trip; Process = %s, %v", res.Body, err)
			}
			switch {
			case tt.code == "" && err != nil:
				t.Errorf("Process error = %v, want the payment (the row is in the ledger)", err)
			case tt.code != "" && payment.ErrorResponse(err).Error != tt.code:
				t.Errorf("Process = %s, %v; want error code %s", res.Body, err, tt.code)
			}
			if !waitForRow(t, direct, id, true) {
				t.Errorf("row %s is not in the ledger, want it (the insert committed)", id)
			}
		})
	}
}

// waitForRow reports whether paymentID is in the ledger; when want is
// true it polls a while first (a commit released late becomes visible
// after the call that released it returns).
func waitForRow(t *testing.T, l *ledger.Ledger, paymentID string, want bool) bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, found, err := l.Get(context.Background(), paymentID)
		if err != nil {
			t.Fatalf("Get(%s) error = %v", paymentID, err)
		}
		if found || !want || time.Now().After(deadline) {
			return found
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForStandby makes every commit on the server wait for a synchronous
// standby that does not exist, and returns once new sessions see it. The
// setting is reset when the test ends.
func waitForStandby(t *testing.T, dsn string) {
	t.Helper()
	setSyncStandby(t, dsn, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'", "nobody")
	t.Cleanup(func() { releaseStandby(t, dsn) })
}

// releaseStandby lets waiting commits go: no synchronous standby.
func releaseStandby(t *testing.T, dsn string) {
	t.Helper()
	setSyncStandby(t, dsn, "ALTER SYSTEM RESET synchronous_standby_names", "")
}

func setSyncStandby(t *testing.T, dsn, stmt, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	for {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = c.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&got)
		c.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("synchronous_standby_names = %q after reload, want %q", got, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRetryIsNotAcknowledgedBeforeTheStandbyHasIt: a commit whose wait for
// a synchronous standby was cancelled (the request's deadline) is committed
// locally only. A retry of the same payment must not acknowledge that row
// until the standby could have it: while commits wait for the standby the
// retry's answer waits too (and ends outcome unknown at its deadline); once
// they no longer wait, it is acknowledged as a replay. (Before the replay
// barrier the retry was acknowledged at once, from the local-only row.)
func TestRetryIsNotAcknowledgedBeforeTheStandbyHasIt(t *testing.T) {
	dsn := startDB(t, "payments")
	l := openLedger(t, dsn)
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	waitForStandby(t, dsn)
	released := false
	defer func() {
		if !released {
			releaseStandby(t, dsn)
		}
	}()
	rec := paymenttest.NewRecord(t, paymenttest.UniqueID("barrier"), 4200, time.Now())
	insert := func() (bool, error) {
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, inserted, err := l.Insert(ictx, rec)
		return inserted, err
	}
	if _, err := insert(); !errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Fatalf("first insert, the standby never answering = %v, want outcome unknown", err)
	}
	if !waitForRow(t, l, rec.PaymentID, true) {
		t.Fatalf("row %s not committed locally after the cancelled wait", rec.PaymentID)
	}
	if inserted, err := insert(); err == nil || !errors.Is(err, payment.ErrOutcomeUnknown) {
		t.Fatalf("retry while commits wait for the standby = inserted %v, %v; want outcome unknown, not an acknowledgement of a row the standby lacks", inserted, err)
	}
	releaseStandby(t, dsn)
	released = true
	if inserted, err := insert(); err != nil || inserted {
		t.Fatalf("retry once commits no longer wait = inserted %v, %v; want the stored row (a replay)", inserted, err)
	}
}
