package local

import (
	"context"
	"strings"
	"testing"

	"paydr/internal/local/env"
	"paydr/internal/local/netns"
	"paydr/internal/local/netns/netnstest"
)

func TestParseNetnsMode(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]NetnsMode{"": NetnsAuto, "auto": NetnsAuto, "on": NetnsOn, "off": NetnsOff} {
		if got, err := ParseNetnsMode(in); err != nil || got != want {
			t.Errorf("ParseNetnsMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseNetnsMode("yes"); err == nil {
		t.Errorf("ParseNetnsMode(yes) = nil error, want one naming auto, on, off")
	}
}

// networkRun is an upRun for the network step alone, with prev as the last
// up's manifest.
func networkRun(t *testing.T, mode NetnsMode, prev *env.Manifest) (*upRun, *strings.Builder) {
	t.Helper()
	out := &strings.Builder{}
	dir := t.TempDir()
	u := &upRun{o: UpOptions{StateDir: dir, Netns: mode, Out: out}, l: env.Layout{Root: dir}, prev: prev,
		m: &env.Manifest{StateDir: dir, Regions: map[env.Slot]*env.Region{}}}
	return u, out
}

func TestSetupNetworkRefusesToChangeAnEnvironmentsMode(t *testing.T) {
	t.Parallel()
	withNet := &env.Manifest{Network: &netns.Fabric{Bridge: "pd000000br"}}
	tests := []struct {
		name string
		mode NetnsMode
		prev *env.Manifest
	}{
		{"on for an environment without namespaces", NetnsOn, &env.Manifest{}},
		{"off for an environment with namespaces", NetnsOff, withNet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := networkRun(t, tt.mode, tt.prev)
			_, err := u.setupNetwork(context.Background())
			if err == nil || !strings.Contains(err.Error(), "run paydr down first") {
				t.Errorf("setupNetwork() = %v, want a refusal saying to run paydr down first", err)
			}
			if u.m.Network != nil {
				t.Errorf("Network = %+v after a refusal", u.m.Network)
			}
		})
	}
}

func TestSetupNetworkOffSaysThePartitionFaultIsUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		mode NetnsMode
		prev *env.Manifest
	}{{NetnsOff, nil}, {NetnsAuto, &env.Manifest{}}} {
		u, out := networkRun(t, tt.mode, tt.prev)
		detail, err := u.setupNetwork(context.Background())
		if err != nil || u.m.Network != nil || u.net != nil || u.hostAddr() != "127.0.0.1" {
			t.Fatalf("setupNetwork(%s) = %q, %v, network %v; want off, on 127.0.0.1", tt.mode, detail, err, u.m.Network)
		}
		if !strings.Contains(out.String(), "partition fault is unavailable") {
			t.Errorf("setupNetwork(%s) said %q; want it to say the partition fault is unavailable, and why", tt.mode, out.String())
		}
	}
}

func TestSetupNetworkCreatesTheRegionsNamespaces(t *testing.T) {
	t.Parallel()
	netnstest.Need(t)
	u, _ := networkRun(t, NetnsAuto, nil)
	t.Cleanup(func() {
		if _, err := deleteNetwork(context.Background(), u.o.StateDir); err != nil {
			t.Error(err)
		}
	})
	if _, err := u.setupNetwork(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u.m.Network == nil || len(u.m.Network.Members) != 2 {
		t.Fatalf("Network = %+v, want a member per slot", u.m.Network)
	}
	for _, s := range env.Slots {
		ns, addr := u.place(s)
		m, _ := u.m.Network.Member(string(s))
		if ns != m.Namespace || addr != m.Address.String() || !ns.Exists() {
			t.Errorf("place(%s) = %q %s, want existing %q %s", s, ns, addr, m.Namespace, m.Address)
		}
	}
	if u.hostAddr() != u.m.Network.Gateway.String() {
		t.Errorf("hostAddr() = %s, want the gateway %s", u.hostAddr(), u.m.Network.Gateway)
	}
	// Undoing a failed up deletes what it created.
	u.undo(context.Background())
	if u.m.Network.Exists(context.Background()) {
		t.Errorf("the namespaces survive the undo of the up that created them")
	}
}
