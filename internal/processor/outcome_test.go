package processor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/ledger"
	"paydr/internal/ledger/ledgertest"
	"paydr/internal/payment"
	"paydr/internal/processor"
	"paydr/internal/processor/processortest"
)

// TestPaymentOutcomeOverRealDatabase: the wired processor against real
// PostgreSQL through a proxy that fails the connection at the INSERT, with
// a 1 s request deadline (PAYDR_REQUEST_TIMEOUT). It answers within the
// deadline plus slack; 503 (not committed, retry) only when the INSERT
// never reached the database; 504 (outcome unknown) when it may have; 201
// only when the ledger holds the row.
func TestPaymentOutcomeOverRealDatabase(t *testing.T) {
	env := processortest.Env(t)
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	// The outcomes are the ledger's, over a proxy that reads the protocol:
	// the owner's plaintext DSN, not the application role's TLS.
	dsn := env[processortest.EnvMasterDSN]
	direct, err := ledger.Open(ledger.Options{DSN: dsn, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	ctx := context.Background()
	if _, err := direct.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const deadline = time.Second
	// The answer may take the deadline, the ledger re-read and the
	// after-commit side effects; more on a loaded machine.
	const slack = 3 * time.Second
	tests := []struct {
		name       string
		action     ledgertest.Action // armed at the INSERT
		freeze     bool              // the database never answers, from the start
		status     int
		code       string
		retryAfter bool
		row        bool
	}{
		{name: "answer lost, database reachable again", action: ledgertest.Reset, status: http.StatusCreated, row: true},
		{name: "answer lost, database unreachable", action: ledgertest.ResetAndRefuse, status: http.StatusGatewayTimeout, code: payment.CodeOutcomeUnknown, row: true},
		{name: "database frozen after the insert was sent", action: ledgertest.Freeze, status: http.StatusGatewayTimeout, code: payment.CodeOutcomeUnknown},
		{name: "database never answers the connection", freeze: true, status: http.StatusServiceUnavailable, code: payment.CodeUnavailable, retryAfter: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, proxied := ledgertest.StartFor(t, dsn)
			getenv := func(k string) string {
				switch k {
				case processor.EnvDBDSN:
					return proxied
				case processor.EnvDBHost, processor.EnvDBUser, processor.EnvDBPasswordFile, processor.EnvDBCAFile:
					return ""
				case "PAYDR_REQUEST_TIMEOUT":
					return deadline.String()
				}
				return env[k]
			}
			cfg, err := processor.ConfigFromEnv(getenv)
			if err != nil {
				t.Fatal(err)
			}
			app, err := processor.New(ctx, cfg, processor.AppOptions{Logger: slog.New(slog.DiscardHandler), MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(app.Close)
			srv := httptest.NewServer(app.Handler)
			t.Cleanup(srv.Close)
			t.Cleanup(p.Close) // first: a frozen connection would hold the pool's Close
			if tt.freeze {
				p.Freeze()
			} else {
				if _, err := app.Ledger.Migrate(ctx); err != nil {
					t.Fatal(err)
				}
				p.Arm(ledgertest.Fault{Match: "INSERT INTO payments", Then: tt.action})
			}

			id := fmt.Sprintf("deadline-%d-%d", i, time.Now().UnixNano())
			client := &http.Client{Timeout: deadline + slack + 5*time.Second}
			start := time.Now()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+processor.PathPayments,
				strings.NewReader(fmt.Sprintf(`{"payment_id":%q,"amount":"%d.00","currency":"USD"}`, id, i+1)))
			req.Header.Set("Content-Type", "application/json")
			apikey.Set(req.Header, processortest.APIKey)
			resp, err := client.Do(req)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("POST /payments: no answer after %s: %v", took.Round(time.Millisecond), err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("POST /payments = %d %s after %s", resp.StatusCode, body, took.Round(time.Millisecond))
			if took > deadline+slack {
				t.Errorf("POST /payments answered after %s, want within %s (deadline %s)", took, deadline+slack, deadline)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("POST /payments = %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			if tt.code != "" {
				var eb payment.ErrorBody
				if err := json.Unmarshal(body, &eb); err != nil || eb.Error != tt.code {
					t.Errorf("error body = %s, want error %q", body, tt.code)
				}
			}
			if got := resp.Header.Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After present = %v, want %v", got, tt.retryAfter)
			}
			_, found, err := direct.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.row {
				t.Errorf("row %s in the ledger = %v, want %v", id, found, tt.row)
			}
		})
	}
}
