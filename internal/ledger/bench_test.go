package ledger_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"paydr/internal/payment/paymenttest"
)

// BenchmarkInsert measures new-payment inserts into a real PostgreSQL ledger
// from 8 concurrent writers (the ledger's share of a request), reporting
// inserts/s and latency percentiles.
func BenchmarkInsert(b *testing.B) {
	srv := startDBTB(b)
	l, err := openLedgerTB(b, srv)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	var (
		seq atomic.Int64
		mu  sync.Mutex
		lat []time.Duration
	)
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			rec := paymenttest.NewRecord(b, "bench-"+strconv.FormatInt(seq.Add(1), 10), 100, time.Now())
			t0 := time.Now()
			if _, inserted, err := l.Insert(ctx, rec); err != nil || !inserted {
				b.Errorf("Insert = %v, %v", inserted, err)
				return
			}
			local = append(local, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "inserts/s")
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
}
