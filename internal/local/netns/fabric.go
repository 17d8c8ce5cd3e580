package netns

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Create makes the fabric: the bridge with its address (choosing a /24 no
// address or route of this host overlaps, unless the bridge already has
// one), and each member's namespace with loopback up and a veth pair, the
// host end on the bridge, the namespace end holding the member's address.
// It is idempotent: what exists is kept, what is missing is made, and a
// partitioned member is healed. On success f.Subnet, f.Gateway and each
// member's Address are set.
func (f *Fabric) Create(ctx context.Context) error {
	if err := f.create(ctx); err != nil {
		return fmt.Errorf("netns: create %s: %w", f.Bridge, err)
	}
	return nil
}

func (f *Fabric) create(ctx context.Context) error {
	subnet, err := f.chooseSubnet(ctx)
	if err != nil {
		return err
	}
	f.setAddresses(subnet)
	gw := netip.PrefixFrom(f.Gateway, subnet.Bits()).String()
	if !linkExists(ctx, f.Bridge) {
		if _, err := ip(ctx, "link", "add", "name", f.Bridge, "type", "bridge"); err != nil {
			return err
		}
	}
	if _, err := ip(ctx, "addr", "replace", gw, "dev", f.Bridge); err != nil {
		return err
	}
	if _, err := ip(ctx, "link", "set", f.Bridge, "up"); err != nil {
		return err
	}
	for _, m := range f.Members {
		if !m.Namespace.Exists() {
			if _, err := ip(ctx, "netns", "add", string(m.Namespace)); err != nil {
				return err
			}
		}
		ns := string(m.Namespace)
		if _, err := ip(ctx, "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
		if !linkExists(ctx, m.HostVeth) {
			// A namespace end left without its host end (it cannot be: a
			// veth pair dies whole) would block the name; remove it.
			_, _ = ip(ctx, "-n", ns, "link", "del", m.PeerVeth)
			if _, err := ip(ctx, "link", "add", m.HostVeth, "type", "veth", "peer", "name", m.PeerVeth, "netns", ns); err != nil {
				return err
			}
		}
		if _, err := ip(ctx, "link", "set", m.HostVeth, "master", f.Bridge, "up"); err != nil {
			return err
		}
		addr := netip.PrefixFrom(m.Address, subnet.Bits()).String()
		if _, err := ip(ctx, "-n", ns, "addr", "replace", addr, "dev", m.PeerVeth); err != nil {
			return err
		}
		if _, err := ip(ctx, "-n", ns, "link", "set", m.PeerVeth, "up"); err != nil {
			return err
		}
		if err := waitOperUp(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// setAddresses gives the gateway .1 and member i the address .(i+2).
func (f *Fabric) setAddresses(subnet netip.Prefix) {
	f.Subnet = subnet
	f.Gateway = subnet.Addr().Next()
	a := f.Gateway
	for i := range f.Members {
		a = a.Next()
		f.Members[i].Address = a
	}
}

// chooseSubnet returns the bridge's subnet when it has one, else the first
// free /24 of 10.128.0.0/10 at or after the one the fabric's ID points to.
func (f *Fabric) chooseSubnet(ctx context.Context) (netip.Prefix, error) {
	if p, ok := bridgeSubnet(ctx, f.Bridge); ok {
		return p, nil
	}
	used, err := usedPrefixes(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	b, err := hex.DecodeString(f.ID)
	if err != nil || len(b) < 2 {
		return netip.Prefix{}, fmt.Errorf("fabric id %q is not hex", f.ID)
	}
	start := int(b[0])<<8 | int(b[1])
	const n = 64 * 256 // the /24s of 10.128.0.0/10
	for i := 0; i < n; i++ {
		k := (start + i) % n
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(128 + k>>8), byte(k), 0}), 24)
		free := true
		for _, u := range used {
			if u.Bits() > 0 && u.Overlaps(cand) {
				free = false
				break
			}
		}
		if free {
			return cand, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /24 in 10.128.0.0/10")
}

// bridgeSubnet reads the IPv4 subnet on an existing bridge.
func bridgeSubnet(ctx context.Context, bridge string) (netip.Prefix, bool) {
	out, err := ip(ctx, "-4", "-o", "addr", "show", "dev", bridge)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, fld := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(fld); err == nil && p.Addr().Is4() {
			return p.Masked(), true
		}
	}
	return netip.Prefix{}, false
}

// usedPrefixes lists the IPv4 addresses and routes of the host namespace,
// in every routing table.
func usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var used []netip.Prefix
	addrs, err := ip(ctx, "-4", "-o", "addr", "show")
	if err != nil {
		return nil, err
	}
	for _, fld := range strings.Fields(addrs) {
		if p, err := netip.ParsePrefix(fld); err == nil {
			used = append(used, p.Masked())
		}
	}
	routes, err := ip(ctx, "-4", "-o", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(routes, "\n") {
		fields := strings.Fields(line)
		for i := 0; i < len(fields) && i < 2; i++ {
			if p, err := netip.ParsePrefix(fields[i]); err == nil {
				used = append(used, p)
			} else if a, err := netip.ParseAddr(fields[i]); err == nil {
				used = append(used, netip.PrefixFrom(a, 32))
			}
		}
	}
	return used, nil
}

// linkExists reports whether a link of that name exists in the host
// namespace.
func linkExists(ctx context.Context, name string) bool {
	_, err := ip(ctx, "link", "show", "dev", name)
	return err == nil
}

// Partition cuts member name off: its host-side veth goes down, so nothing
// crosses between the member and the bridge (the host, other members) in
// either direction. Its processes keep running and reach themselves.
func (f *Fabric) Partition(ctx context.Context, name string) error {
	m, err := f.Member(name)
	if err != nil {
		return err
	}
	if _, err := ip(ctx, "link", "set", m.HostVeth, "down"); err != nil {
		return fmt.Errorf("netns: partition %s: %w", name, err)
	}
	return nil
}

// Heal reconnects member name (its host-side veth up on the bridge).
func (f *Fabric) Heal(ctx context.Context, name string) error {
	m, err := f.Member(name)
	if err != nil {
		return err
	}
	if _, err := ip(ctx, "link", "set", m.HostVeth, "master", f.Bridge, "up"); err != nil {
		return fmt.Errorf("netns: heal %s: %w", name, err)
	}
	if err := waitOperUp(ctx, m); err != nil {
		return fmt.Errorf("netns: heal %s: %w", name, err)
	}
	return nil
}

// waitOperUp waits until both ends of m's veth pair carry traffic: the
// kernel reports a carrier change asynchronously, up to a second after the
// link is set up. Neighbour entries the partition left failed are flushed.
func waitOperUp(ctx context.Context, m Member) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		host, _ := ip(ctx, "-o", "link", "show", "dev", m.HostVeth)
		peer, _ := ip(ctx, "-n", string(m.Namespace), "-o", "link", "show", "dev", m.PeerVeth)
		if strings.Contains(host, "state UP") && strings.Contains(peer, "state UP") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("veth %s not up after 5s: %s", m.HostVeth, strings.TrimSpace(host))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	_, _ = ip(ctx, "-n", string(m.Namespace), "neigh", "flush", "dev", m.PeerVeth)
	return nil
}

// Partitioned reports whether member name is cut off (its host-side veth
// is not up).
func (f *Fabric) Partitioned(ctx context.Context, name string) (bool, error) {
	m, err := f.Member(name)
	if err != nil {
		return false, err
	}
	out, err := ip(ctx, "-o", "link", "show", "dev", m.HostVeth)
	if err != nil {
		return false, fmt.Errorf("netns: partitioned %s: %w", name, err)
	}
	_, rest, _ := strings.Cut(out, "<")
	flags, _, _ := strings.Cut(rest, ">")
	for _, fl := range strings.Split(flags, ",") {
		if fl == "UP" {
			return false, nil
		}
	}
	return true, nil
}

// Exists reports whether any part of the fabric exists.
func (f *Fabric) Exists(ctx context.Context) bool {
	if linkExists(ctx, f.Bridge) {
		return true
	}
	for _, m := range f.Members {
		if m.Namespace.Exists() || linkExists(ctx, m.HostVeth) {
			return true
		}
	}
	return false
}

// Delete removes the namespaces, their veth pairs and the bridge, by name;
// what is already gone is not an error. A process still running in a
// namespace keeps it alive, unnamed, until it exits: stop them first.
func (f *Fabric) Delete(ctx context.Context) error {
	var errs []error
	for _, m := range f.Members {
		if m.Namespace.Exists() {
			if _, err := ip(ctx, "netns", "del", string(m.Namespace)); err != nil && !notFound(err) {
				errs = append(errs, err)
			}
		}
		if linkExists(ctx, m.HostVeth) {
			if _, err := ip(ctx, "link", "del", m.HostVeth); err != nil && !notFound(err) {
				errs = append(errs, err)
			}
		}
	}
	if linkExists(ctx, f.Bridge) {
		if _, err := ip(ctx, "link", "del", f.Bridge); err != nil && !notFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netns: delete %s: %w", f.Bridge, err)
	}
	return nil
}

// runDir is where ip netns keeps its named namespaces.
const runDir = "/run/netns"

// Exists reports whether the named namespace exists.
func (n Namespace) Exists() bool {
	if n == "" {
		return false
	}
	_, err := os.Stat(n.Path())
	return err == nil
}

// BridgeAddress reports whether ip is the address of a fabric's bridge on
// this host (an interface named like Fabric.Bridge): an address only this
// machine and its namespaces reach.
func BridgeAddress(ip net.IP) bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, in := range ifs {
		if !strings.HasPrefix(in.Name, "pd") || !strings.HasSuffix(in.Name, "br") || len(in.Name) != len("pd")+6+len("br") {
			continue
		}
		addrs, err := in.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
				return ip.IsPrivate()
			}
		}
	}
	return false
}
