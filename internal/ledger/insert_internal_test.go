package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"paydr/internal/payment"
)

// safeToRetry is an error pgx marks as raised before anything was sent.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "conn busy" }
func (safeToRetry) SafeToRetry() bool { return true }

func TestInsertErr(t *testing.T) {
	pgErr := func(sev, code string) error {
		return &pgconn.PgError{Severity: sev, SeverityUnlocalized: sev, Code: code, Message: "m"}
	}
	tests := []struct {
		name string
		err  error
		want string // payment.ErrorResponse code
	}{
		{"nothing sent", fmt.Errorf("wrapped: %w", safeToRetry{}), payment.CodeUnavailable},
		{"read-only database", pgErr("ERROR", "25006"), payment.CodeUnavailable},
		{"statement failed", pgErr("ERROR", "23514"), payment.CodeInternal},
		{"statement cancelled", pgErr("ERROR", "57014"), payment.CodeInternal},
		{"session terminated", pgErr("FATAL", "57P01"), payment.CodeOutcomeUnknown},
		{"server panic", pgErr("PANIC", "XX000"), payment.CodeOutcomeUnknown},
		{"connection lost", io.ErrUnexpectedEOF, payment.CodeOutcomeUnknown},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, payment.CodeOutcomeUnknown},
		{"deadline passed", fmt.Errorf("timeout: %w", context.DeadlineExceeded), payment.CodeOutcomeUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := insertErr("insert p", tt.err)
			if got := payment.ErrorResponse(err).Error; got != tt.want {
				t.Errorf("insertErr(%v) = %v, code %s; want %s", tt.err, err, got, tt.want)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("insertErr(%v) = %v, does not wrap the cause", tt.err, err)
			}
		})
	}
}

// TestInsertWithoutConnection: when no connection can be had, the INSERT
// never left, so the answer is "not recorded" (ErrUnavailable), within
// the caller's deadline.
func TestInsertWithoutConnection(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepted []net.Conn
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name string
		addr string
	}{
		{"database never answers", silent.Addr().String()},
		{"connection refused", closedAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(Options{DSN: "postgres://postgres@" + tt.addr + "/payments?sslmode=disable", Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(l.Close)
			l.migrated.Store(true) // as after the first write
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			_, _, err = l.Insert(ctx, payment.Record{Payment: payment.Payment{PaymentID: "p", AmountMinor: 1, Currency: "USD", CreatedAt: time.Now()}})
			took := time.Since(start)
			if !errors.Is(err, payment.ErrUnavailable) || errors.Is(err, payment.ErrOutcomeUnknown) {
				t.Errorf("Insert without a connection = %v, want ErrUnavailable only", err)
			}
			if took > 3*time.Second {
				t.Errorf("Insert without a connection took %s with a 1s deadline", took)
			}
		})
	}
}
