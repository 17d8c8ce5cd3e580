package drill

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"paydr/internal/apikey"
)

// A test value, not a secret.
const testKey = "drill-test-key-0123456789abcdefghijklmnopqrstuvwxyz"

// TestGeneratorSendsAPIKey: every payment the drill's client sends carries
// the key as Authorization: Bearer with a JSON body, and a processor that
// refuses the key (401) is a rejection, never an acknowledgement.
func TestGeneratorSendsAPIKey(t *testing.T) {
	var seen atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		key, ok := apikey.Presented(r.Header)
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/payments" || r.Header.Get("Content-Type") != "application/json":
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		case !ok || key != testKey:
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"created_at":"2026-12-02T08:00:00Z"}`))
		}
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		key    string
		answer Answer
		status int
	}{
		{"the key", testKey, Acked, http.StatusCreated},
		{"another key", "other-key-0123456789abcdefghijklmnopqrstuvwxyz", Rejected, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &generator{url: srv.URL, key: tt.key, prefix: "d", timeout: time.Second}
			a := g.send(srv.Client(), Attempt{PaymentID: "d-000001", AmountMinor: 150})
			if a.Answer != tt.answer || a.Status != tt.status {
				t.Errorf("send = %s (HTTP %d, %q), want %s (HTTP %d)", a.Answer, a.Status, a.Error, tt.answer, tt.status)
			}
		})
	}
	if seen.Load() != int32(len(tests)) {
		t.Errorf("server saw %d requests, want %d", seen.Load(), len(tests))
	}
}

// keylessEnv is an Env whose API key cannot be read.
type keylessEnv struct{ Env }

func (keylessEnv) FailoverURL() string { return "http://127.0.0.1:1" }

func (keylessEnv) APIKey(context.Context) (string, error) {
	return "", errors.New("get parameter /paydr/local/api/key: connection refused")
}

// TestRunNeedsAPIKey: a drill whose key cannot be read stops before it
// sends anything or asks the backend.
func TestRunNeedsAPIKey(t *testing.T) {
	_, err := Run(context.Background(), nil, keylessEnv{}, nil, nil, Options{Fault: FaultKillDB})
	if err == nil || !strings.Contains(err.Error(), "read the payments API key") {
		t.Errorf("Run with no key = %v, want an error about the API key", err)
	}
}
