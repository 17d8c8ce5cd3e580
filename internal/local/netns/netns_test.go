package netns_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"paydr/internal/local/netns"
	"paydr/internal/local/netns/netnstest"
)

func TestNewNames(t *testing.T) {
	f, err := netns.New("/tmp/some/state", "primary", "secondary")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := netns.New("/tmp/some/state", "primary", "secondary")
	h, _ := netns.New("/tmp/other/state", "primary", "secondary")
	if f.Bridge != g.Bridge || f.Members[1].Namespace != g.Members[1].Namespace {
		t.Errorf("New is not deterministic: %+v, %+v", f, g)
	}
	if f.Bridge == h.Bridge {
		t.Errorf("two state directories share bridge %s", f.Bridge)
	}
	names := []string{f.Bridge}
	for _, m := range f.Members {
		names = append(names, m.HostVeth, m.PeerVeth)
		if !strings.HasPrefix(string(m.Namespace), "paydr-"+f.ID+"-") {
			t.Errorf("namespace %s is not paydr-<id>-<member>", m.Namespace)
		}
	}
	for _, n := range names {
		if len(n) > 15 {
			t.Errorf("interface name %q is %d characters; Linux allows 15", n, len(n))
		}
	}
	if _, err := netns.New("/x", "Bad_Name"); err == nil {
		t.Errorf("New accepted member name Bad_Name")
	}
}

// serve answers every connection with who, inside ns, on addr.
func serve(t *testing.T, ns netns.Namespace, addr, who string) string {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %q: %v", addr, ns, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, who)
			c.Close()
		}
	}()
	return l.Addr().String()
}

// reach dials addr from ns and returns what the server said, or the error.
func reach(ns netns.Namespace, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := ns.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestFabricPartitionAndHeal(t *testing.T) {
	f := netnstest.Fabric(t, "primary", "secondary")
	a, b := f.Members[0], f.Members[1]
	if !f.Subnet.Contains(a.Address) || !f.Subnet.Contains(b.Address) || !f.Subnet.Contains(f.Gateway) {
		t.Fatalf("addresses %s %s %s are not all in %s", f.Gateway, a.Address, b.Address, f.Subnet)
	}
	ha := serve(t, a.Namespace, netip.AddrPortFrom(a.Address, 0).String(), "a")
	la := serve(t, a.Namespace, "127.0.0.1:0", "a-lo")
	hb := serve(t, b.Namespace, netip.AddrPortFrom(b.Address, 0).String(), "b")
	gw := serve(t, "", netip.AddrPortFrom(f.Gateway, 0).String(), "host")

	type path struct {
		from               netns.Namespace
		fromName, to, want string
	}
	paths := []path{
		{"", "host", ha, "a"}, {"", "host", hb, "b"},
		{a.Namespace, "a", hb, "b"}, {b.Namespace, "b", ha, "a"},
		{a.Namespace, "a", gw, "host"}, {b.Namespace, "b", gw, "host"},
		{a.Namespace, "a", ha, "a"}, {a.Namespace, "a", la, "a-lo"},
	}
	check := func(cut map[string]bool) {
		t.Helper()
		for _, p := range paths {
			got, err := reach(p.from, p.to)
			wantCut := cut[p.fromName+">"+p.to]
			switch {
			case wantCut && err == nil:
				t.Errorf("%s -> %s answered %q through the partition", p.fromName, p.to, got)
			case !wantCut && (err != nil || got != p.want):
				t.Errorf("%s -> %s = %q, %v; want %q", p.fromName, p.to, got, err, p.want)
			}
		}
	}
	check(nil)
	// The host cannot reach a region's address except over the bridge.
	if _, err := reach(a.Namespace, "192.0.2.1:80"); err == nil {
		t.Errorf("a reached an address outside the fabric")
	}

	ctx := context.Background()
	if err := f.Partition(ctx, "primary"); err != nil {
		t.Fatal(err)
	}
	if p, err := f.Partitioned(ctx, "primary"); err != nil || !p {
		t.Errorf("Partitioned(primary) = %v, %v after Partition; want true", p, err)
	}
	check(map[string]bool{"host>" + ha: true, "b>" + ha: true, "a>" + hb: true, "a>" + gw: true})

	if err := f.Heal(ctx, "primary"); err != nil {
		t.Fatal(err)
	}
	if p, err := f.Partitioned(ctx, "primary"); err != nil || p {
		t.Errorf("Partitioned(primary) = %v, %v after Heal; want false", p, err)
	}
	check(nil)
}

func TestHTTPClientAndCommandInNamespace(t *testing.T) {
	f := netnstest.Fabric(t, "one")
	m := f.Members[0]
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })}
	l, err := m.Namespace.Listen("tcp", "127.0.0.1:0") // the namespace's own loopback
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	resp, err := m.Namespace.HTTPClient(2 * time.Second).Get("http://" + l.Addr().String())
	if err != nil {
		t.Fatalf("GET inside the namespace: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d", resp.StatusCode)
	}
	// The host's loopback is another one.
	if _, err := http.Get("http://" + l.Addr().String()); err == nil {
		t.Errorf("the namespace's loopback listener answered on the host's loopback")
	}
	// A process started inside sees only lo and its veth end.
	cmd := exec.Command("/usr/sbin/ip", "-o", "link")
	var out strings.Builder
	cmd.Stdout = &out
	if err := m.Namespace.Start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), m.PeerVeth) || strings.Contains(out.String(), f.Bridge) {
		t.Errorf("links inside the namespace:\n%s\nwant %s and no %s", out.String(), m.PeerVeth, f.Bridge)
	}
}

func TestCreateIsIdempotentAndDeleteLeavesNothing(t *testing.T) {
	netnstest.Need(t)
	f, err := netns.New(t.TempDir(), "primary", "secondary")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() { _ = f.Delete(ctx) })
	if err := f.Create(ctx); err != nil {
		t.Fatal(err)
	}
	first := *f
	if err := f.Partition(ctx, "secondary"); err != nil {
		t.Fatal(err)
	}
	if err := f.Create(ctx); err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if f.Subnet != first.Subnet || f.Members[1].Address != first.Members[1].Address {
		t.Errorf("second Create chose %s, first %s", f.Subnet, first.Subnet)
	}
	if p, _ := f.Partitioned(ctx, "secondary"); p {
		t.Errorf("Create left secondary partitioned")
	}
	if err := f.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Exists(ctx) {
		t.Errorf("fabric %s still exists after Delete", f.Bridge)
	}
	if err := f.Delete(ctx); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	out, _ := exec.Command("/usr/sbin/ip", "-o", "link").Output()
	if strings.Contains(string(out), "pd"+f.ID) {
		t.Errorf("links of %s left after Delete:\n%s", f.ID, out)
	}
}

func TestBridgeAddress(t *testing.T) {
	f := netnstest.Fabric(t, "one")
	tests := []struct {
		ip   string
		want bool
	}{
		{f.Gateway.String(), true},
		{f.Members[0].Address.String(), false}, // inside the namespace, not on this host's links
		{"127.0.0.1", false},
		{"192.0.2.2", false},
	}
	for _, tt := range tests {
		if got := netns.BridgeAddress(net.ParseIP(tt.ip)); got != tt.want {
			t.Errorf("BridgeAddress(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// Available probes with a namespace of its own on every call, so probes at
// once in one process (two environments coming up in one test binary) do
// not trip over each other's probe namespace.
func TestAvailableAtOnce(t *testing.T) {
	netnstest.Need(t)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs <- netns.Available(ctx)
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Available() at once = %v, want nil", err)
		}
	}
}
