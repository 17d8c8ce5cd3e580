// Package drtest holds the contract every DR backend keeps, as one suite
// that each backend's tests run against a real deployment (the local
// environment of paydr up; AWS on the emulator), in the spirit of
// litestream's one test suite for every replica client: what the safety
// rules of paydr/internal/dr rely on a backend to observe, and the promise
// that every step is idempotent.
package drtest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"paydr/internal/dr"
)

// Contract checks backend b, which must be a healthy deployment: the
// primary slot's region writes, the secondary slot's replicates from it,
// and the failover name sends traffic to the writer. It leaves b as it found
// it: the steps it runs change nothing on a healthy deployment.
func Contract(t *testing.T, b dr.Backend) {
	t.Helper()
	ctx := context.Background()
	st := observe(t, b)
	writer, standby := st.Regions[0], st.Regions[1]

	t.Run("status", func(t *testing.T) {
		if st.Backend == "" {
			t.Error("Status().Backend is empty; it names the backend")
		}
		if writer.Slot != "primary" || standby.Slot != "secondary" {
			t.Errorf("Status().Regions slots = %q, %q; want primary, then secondary", writer.Slot, standby.Slot)
		}
		if writer.Name == "" || standby.Name == "" || writer.Name == standby.Name {
			t.Errorf("Status().Regions names = %q, %q; want two distinct region names", writer.Name, standby.Name)
		}
		if ws := st.Writers(); len(ws) != 1 || ws[0].Name != writer.Name {
			t.Errorf("Status().Writers() = %v, want only %s", names(ws), writer.Name)
		}
		if !writer.Reachable || !writer.Healthy || writer.Fenced {
			t.Errorf("writer %s: reachable %v, healthy %v (%s), fenced %v; want reachable, healthy, not fenced", writer.Name, writer.Reachable, writer.Healthy, writer.Health, writer.Fenced)
		}
		if standby.Role != dr.RoleStandby || !standby.Reachable || standby.Healthy {
			t.Errorf("standby %s: role %s, reachable %v, healthy %v; want a reachable standby whose health check fails (it cannot take writes)", standby.Name, standby.Role, standby.Reachable, standby.Healthy)
		}
		if st.Traffic != writer.Name {
			t.Errorf("Status().Traffic = %q, want the writer %s", st.Traffic, writer.Name)
		}
		if rep := st.Replication; rep.Known && !rep.Streaming {
			t.Errorf("Status().Replication = %+v: known but not streaming on a healthy pair", rep)
		}
	})

	t.Run("calls", func(t *testing.T) {
		for _, s := range steps(writer.Name, standby.Name) {
			calls := b.Calls(s)
			if len(calls) == 0 || slices.Contains(calls, "") {
				t.Errorf("Calls(%s) = %q; a dry run must show what the step does", s.Name(), calls)
			}
			if again := b.Calls(s); !slices.Equal(calls, again) {
				t.Errorf("Calls(%s) is not deterministic: %q, then %q", s.Name(), calls, again)
			}
		}
	})

	t.Run("unknown region", func(t *testing.T) {
		_, err := b.Do(ctx, "drtest-unknown", dr.Step{Action: dr.ActionFence, Region: "mars-1", Why: "contract"})
		if err == nil || !strings.Contains(err.Error(), "mars-1") {
			t.Errorf("Do(fence mars-1) = %v, want an error naming mars-1", err)
		}
		same(t, b, st, "Do(fence mars-1)")
	})

	t.Run("steps are idempotent on a healthy pair", func(t *testing.T) {
		for _, s := range []dr.Step{
			{Action: dr.ActionPromote, Region: writer.Name, Peer: standby.Name, Mode: dr.ModeSwitchover, Why: "contract: the writer is promoted already"},
			{Action: dr.ActionUnfence, Region: writer.Name, Why: "contract: the writer is not fenced"},
			{Action: dr.ActionUnfence, Region: writer.Name, Why: "contract: again"},
			{Action: dr.ActionWaitTraffic, Region: writer.Name, Why: "contract: traffic goes there"},
			{Action: dr.ActionVerify, Region: writer.Name, Why: "contract: a real payment"},
			{Action: dr.ActionVerify, Region: writer.Name, Why: "contract: the same payment again"},
		} {
			if res, err := b.Do(ctx, "drtest-contract", s); err != nil {
				t.Errorf("Do(%s) on a healthy pair = %q, %v; want success (every step is idempotent)", s.Name(), res, err)
			}
		}
		same(t, b, st, "the idempotent steps")
	})
}

// steps is one step of each action, on the regions it applies to.
func steps(writer, standby string) []dr.Step {
	return []dr.Step{
		{Action: dr.ActionFence, Region: writer, Why: "contract"},
		{Action: dr.ActionPreserve, Region: writer, Why: "contract"},
		{Action: dr.ActionWaitCaughtUp, Region: standby, Peer: writer, Why: "contract"},
		{Action: dr.ActionPromote, Region: standby, Peer: writer, Mode: dr.ModeSwitchover, Why: "contract"},
		{Action: dr.ActionPromote, Region: standby, Peer: writer, Mode: dr.ModeFailover, Why: "contract"},
		{Action: dr.ActionRebuildStandby, Region: writer, Peer: standby, Why: "contract"},
		{Action: dr.ActionUnfence, Region: standby, Why: "contract"},
		{Action: dr.ActionWaitTraffic, Region: standby, Why: "contract"},
		{Action: dr.ActionVerify, Region: standby, Why: "contract"},
	}
}

func observe(t *testing.T, b dr.Backend) dr.Status {
	t.Helper()
	st, err := b.Status(context.Background())
	if err != nil {
		t.Fatalf("Status() = %v", err)
	}
	if len(st.Regions) != 2 {
		t.Fatalf("Status().Regions = %d regions, want 2", len(st.Regions))
	}
	return st
}

// same checks that the writer, the standby and the traffic are as before.
func same(t *testing.T, b dr.Backend, before dr.Status, what string) {
	t.Helper()
	after := observe(t, b)
	for i, r := range after.Regions {
		if r.Role != before.Regions[i].Role || r.Fenced != before.Regions[i].Fenced {
			t.Errorf("after %s, %s is %s (fenced %v); want %s (fenced %v) as before", what, r.Name, r.Role, r.Fenced, before.Regions[i].Role, before.Regions[i].Fenced)
		}
	}
	if after.Traffic != before.Traffic {
		t.Errorf("after %s, traffic goes to %q; want %q as before", what, after.Traffic, before.Traffic)
	}
}

func names(rs []dr.Region) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Name)
	}
	return out
}
