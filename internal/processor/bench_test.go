package processor_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/processor/processortest"
)

// reportLatency reports p50 and p99 of durations in microseconds.
func reportLatency(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkHandlerNewPayment measures the handler's own overhead (parse,
// validate, process, respond, log) with in-memory stores. Target: p99 < 1 ms.
func BenchmarkHandlerNewPayment(b *testing.B) {
	e := newEnv(b, fakeDB{writable: true})
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		body := `{"payment_id":"bench-` + strconv.Itoa(i) + `","amount":"12.50","currency":"USD","session_id":"s-1"}`
		r := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		apikey.Set(r.Header, testKey)
		w := httptest.NewRecorder()
		start := time.Now()
		e.h.ServeHTTP(w, r)
		lat = append(lat, time.Since(start))
		if w.Code != 201 {
			b.Fatalf("POST = %d %s", w.Code, w.Body)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkHandlerReplay measures answering a retry from the ledger.
func BenchmarkHandlerReplay(b *testing.B) {
	e := newEnv(b, fakeDB{writable: true})
	body := `{"payment_id":"bench-replay","amount":"12.50","currency":"USD"}`
	first := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(body))
	first.Header.Set("Content-Type", "application/json")
	apikey.Set(first.Header, testKey)
	e.h.ServeHTTP(httptest.NewRecorder(), first)
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/payments", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		apikey.Set(r.Header, testKey)
		w := httptest.NewRecorder()
		start := time.Now()
		e.h.ServeHTTP(w, r)
		lat = append(lat, time.Since(start))
		if w.Code != 201 {
			b.Fatalf("POST = %d %s", w.Code, w.Body)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkServerEndToEnd measures the local HTTP server with real
// PostgreSQL and moto (DynamoDB, EventBridge): new payments from 8
// concurrent clients over loopback HTTP. It reports requests/s and latency
// percentiles; it skips when PostgreSQL or moto are not installed (fails
// under CI).
func BenchmarkServerEndToEnd(b *testing.B) {
	_, srv := startRealServer(b, slog.New(slog.DiscardHandler))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var (
		mu  sync.Mutex
		lat []time.Duration
		seq atomic.Int64
	)
	b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		local := make([]time.Duration, 0, 1024)
		for pb.Next() {
			body := `{"payment_id":"e2e-` + strconv.FormatInt(seq.Add(1), 10) + `","amount":"1.00","currency":"USD","session_id":"s"}`
			t0 := time.Now()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/payments", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			apikey.Set(req.Header, processortest.APIKey)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			local = append(local, time.Since(t0))
			if resp.StatusCode != 201 {
				b.Errorf("POST = %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	reportLatency(b, lat)
}
