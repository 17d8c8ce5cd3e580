package rpoguard_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paydr/internal/local/pg"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/local/rpoguard"
)

// logWriter sends the guard's log lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// guarded starts a primary and a streaming standby with a table to insert
// into, and runs a guard on the primary with the settings set holds.
func guarded(t *testing.T, set *atomic.Value) (primary, standby *pg.Server, conn *pgx.Conn, ctx context.Context) {
	t.Helper()
	primary, standby = pgtest.StartPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c, err := pgx.Connect(ctx, primary.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Exec(ctx, "CREATE TABLE t (id serial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())"); err != nil {
		t.Fatal(err)
	}
	g := &rpoguard.Guard{DB: primary, Interval: 150 * time.Millisecond, Log: logWriter{t},
		Settings: func() (rpoguard.Settings, error) { return set.Load().(rpoguard.Settings), nil }}
	gctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Run(gctx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	return primary, standby, c, ctx
}

// insert commits one row, bounded by 3 s.
func insert(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, "INSERT INTO t DEFAULT VALUES")
	return err
}

// reconnect opens a new connection to srv (the old one is dead after a
// commit timed out).
func reconnect(t *testing.T, ctx context.Context, srv *pg.Server) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// waitSync waits until the primary's commits wait for a standby (want) or
// for none.
func waitSync(t *testing.T, ctx context.Context, srv *pg.Server, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := srv.WALProgress(ctx, "standby")
		if err == nil && (p.SynchronousStandby != "") == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("synchronous_standby_names = %q (err %v) after %s, want set %v", p.SynchronousStandby, err, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGuardBoundsLoss cuts the standby off from a primary taking writes
// under a 1 s bound: commits keep being acknowledged for about the bound,
// then block; once the standby is back they flow again and the guard lets
// them go unsynchronised. Two cuts: a disconnect (the walsender exits) and
// a partition (the standby frozen: the walsender's connection hangs and
// flush_lsn stops).
func TestGuardBoundsLoss(t *testing.T) {
	const bound = time.Second
	margin := 2 * 150 * time.Millisecond
	cuts := []struct {
		name       string
		cut, uncut func(*pg.Server, context.Context) error
	}{
		{"disconnect", (*pg.Server).DisconnectReplication, (*pg.Server).ReconnectReplication},
		{"partition", (*pg.Server).Freeze, func(s *pg.Server, _ context.Context) error { return s.Thaw() }},
	}
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			var set atomic.Value
			set.Store(rpoguard.Settings{Enforce: true, Bound: bound, Standby: "standby"})
			primary, standby, conn, ctx := guarded(t, &set)
			for range 20 {
				if err := insert(ctx, conn); err != nil {
					t.Fatalf("insert while streaming: %v", err)
				}
				time.Sleep(25 * time.Millisecond)
			}
			// Streaming, commits go unsynchronised (a loaded machine can
			// make the guard wait for a moment: its margin grows with the
			// time a change takes).
			waitSync(t, ctx, primary, false, 10*time.Second)

			if err := c.cut(standby, ctx); err != nil {
				t.Fatal(err)
			}
			cut := time.Now()
			var lastAck time.Time
			acked := 0
			for {
				err := insert(ctx, conn)
				if err != nil {
					t.Logf("commit blocked %v after the cut (3s timeout: %v)", time.Since(cut).Round(time.Millisecond), err)
					break
				}
				lastAck, acked = time.Now(), acked+1
				if time.Since(cut) > bound+10*time.Second {
					t.Fatalf("commits still acknowledged %v after the cut, bound %v", time.Since(cut), bound)
				}
				time.Sleep(10 * time.Millisecond)
			}
			span := lastAck.Sub(cut)
			t.Logf("%d commits acknowledged after the cut, the last %v after it (bound %v, margin %v)", acked, span.Round(time.Millisecond), bound, margin)
			if span > bound+margin {
				t.Errorf("commits acknowledged after the cut span %v, want at most the bound %v plus the margin %v", span, bound, margin)
			}
			if acked == 0 {
				t.Errorf("no commit acknowledged after the cut; want them acknowledged until about the bound")
			}
			if err := insert(ctx, reconnect(t, ctx, primary)); err == nil {
				t.Errorf("a second commit was acknowledged while the standby is cut off")
			}

			if err := c.uncut(standby, ctx); err != nil {
				t.Fatal(err)
			}
			conn = reconnect(t, ctx, primary)
			t0 := time.Now()
			if err := insert(ctx, conn); err != nil {
				t.Fatalf("commit after the standby is back: %v", err)
			}
			t.Logf("first commit after the standby came back took %v", time.Since(t0).Round(time.Millisecond))
			waitSync(t, ctx, primary, false, 15*time.Second)
		})
	}
}

// TestGuardRPOZero: with a bound of 0 every commit waits for the standby,
// so one blocks as soon as the standby is gone; relaxing the bound lets
// the writer commit without it.
func TestGuardRPOZero(t *testing.T) {
	var set atomic.Value
	set.Store(rpoguard.Settings{Enforce: true, Bound: 0, Standby: "standby"})
	primary, standby, conn, ctx := guarded(t, &set)
	waitSync(t, ctx, primary, true, 5*time.Second)
	if err := insert(ctx, conn); err != nil {
		t.Fatalf("commit with the standby streaming: %v", err)
	}
	if err := standby.DisconnectReplication(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := insert(ctx, conn); err == nil {
		t.Fatalf("commit acknowledged %v after the standby was cut off under rpo-0", time.Since(t0))
	}
	set.Store(rpoguard.Settings{Enforce: false, Bound: 0, Standby: "standby"})
	waitSync(t, ctx, primary, false, 5*time.Second)
	if err := insert(ctx, reconnect(t, ctx, primary)); err != nil {
		t.Fatalf("commit after the bound was relaxed: %v", err)
	}
}
