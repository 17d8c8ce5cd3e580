package localdr

import (
	"context"
	"strings"
	"testing"
	"time"

	"paydr/internal/dr/drill"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/netns"
	"paydr/internal/local/netns/netnstest"
	"paydr/internal/local/pg"
)

func TestPartitionRefusedWithoutNamespaces(t *testing.T) {
	m := &env.Manifest{Regions: map[env.Slot]*env.Region{env.SlotPrimary: {Slot: env.SlotPrimary, Name: "us-east-1"}}}
	_, err := fabricOf(m, m.Regions[env.SlotPrimary])
	if err == nil || !strings.Contains(err.Error(), "without network namespaces") || !strings.Contains(err.Error(), "paydr up --netns on") {
		t.Errorf("fabricOf(no network) = %v, want a refusal saying to bring the environment up with namespaces", err)
	}
}

// TestPartitionDrill cuts the writer region off while its database and
// processor keep running, with a client inside the region still sending
// payments to its processor, and fails over. Every check of the drill
// applies: a payment the isolated old writer acknowledged after the fault
// and the failover lost fails "no payment acknowledged after the fault is
// lost" (or the RPO bound, when one is enforced).
func TestPartitionDrill(t *testing.T) {
	b := environment(t)
	restore(t, b)
	defer restore(t, b)
	m, err := b.manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Network == nil {
		netnstest.Need(t)
		t.Fatalf("the environment in %s has no network namespaces although they can be made here; paydr up --netns auto should have used them", m.StateDir)
	}
	st := status(t, b)
	from := writer(t, st)
	slot, r, err := slotOf(m, from)
	if err != nil {
		t.Fatal(err)
	}
	// The running postmaster's pid, not env.json's: that is the one paydr
	// up recorded, and a DR operation since (a failback, say) restarts the
	// database without rewriting it.
	db, err := pg.Open(r.Database.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	dbPID, procPID := db.PID(), r.Processor.PID
	if dbPID == 0 {
		t.Fatalf("the writer's database in %s is not running", r.Database.DataDir)
	}

	// Watch the old writer while the drill runs: its processes must keep
	// running through the partition (until a fence stops them), which
	// cut-region cannot show.
	watch := watchPartition(t, m.Network, string(slot), dbPID, procPID)
	rep := runDrill(t, b, drill.FaultPartition, 0)
	w := watch()

	if !w.partitioned {
		t.Errorf("the drill never partitioned %s", slot)
	}
	if !w.aliveWhilePartitioned {
		t.Errorf("the old writer's database (pid %d) or processor (pid %d) was not running while partitioned; a partition leaves them running", dbPID, procPID)
	}
	if p, err := m.Network.Partitioned(context.Background(), string(slot)); err != nil || p {
		t.Errorf("after the drill Partitioned(%s) = %v, %v; want the link healed", slot, p, err)
	}
	ir := rep.InRegion
	if ir == nil || ir.Sent == 0 {
		t.Fatalf("in-region traffic = %+v; want a client inside %s sending payments", ir, from)
	}
	t.Logf("figures: rto %s, detection %s, promotion %s; traffic %d sent %d acked; lost %d (after the fault %d, after the fence %d), window %s; in-region %d sent, %d acked (%d after the fault), %d lost (%d after the fault), last ack after the fault %s",
		rep.RTO.Round(time.Millisecond), rep.Detection.Round(time.Millisecond), rep.Promotion.Round(time.Millisecond), rep.Sent, rep.Acked,
		rep.LostCount, rep.LostAfterFault, rep.LostAfterFence, rep.LostWindow.Round(time.Millisecond),
		ir.Sent, ir.Acked, ir.AckedAfterFault, ir.Lost, ir.LostAfterFault, lastAck(rep))
	if st := status(t, b); writer(t, st) == from {
		t.Errorf("writer after the partition drill = %s, want the failover to have moved it", from)
	}
}

func lastAck(rep *drill.Report) string {
	if rep.InRegion.LastAckAfterFault.IsZero() {
		return "none"
	}
	return "+" + rep.InRegion.LastAckAfterFault.Sub(rep.FaultAt).Round(time.Millisecond).String()
}

// partitionWatch is what watchPartition saw.
type partitionWatch struct {
	partitioned           bool // the member's link was down at some point
	aliveWhilePartitioned bool // and both pids were alive then
}

// watchPartition polls the member's link and the two pids every 100 ms
// until the returned function is called, which returns what it saw.
func watchPartition(t *testing.T, f *netns.Fabric, member string, pids ...int) func() partitionWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan partitionWatch)
	go func() {
		var w partitionWatch
		for {
			if p, err := f.Partitioned(ctx, member); err == nil && p {
				alive := true
				for _, pid := range pids {
					alive = alive && daemon.Alive(pid, "")
				}
				if !w.partitioned {
					w.aliveWhilePartitioned = alive
				}
				w.partitioned = true
			}
			select {
			case <-ctx.Done():
				done <- w
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() partitionWatch { cancel(); return <-done }
}
