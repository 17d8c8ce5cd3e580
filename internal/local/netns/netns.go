// Package netns gives a local environment's regions a network of their own:
// one Linux network namespace per region, each joined by a veth pair to a
// bridge in the host namespace that holds a private /24. A region's
// processes listen on its address (and on the namespace's own loopback);
// the host reaches them, and they reach each other and the host's services
// on the bridge address, only through that bridge. There is no default
// route: traffic goes to loopback or to the fabric's own addresses, never
// elsewhere.
//
// Partition sets a region's host-side veth down: its processes keep
// running and keep talking to themselves (loopback and their own address
// are local), but nothing crosses the cut in either direction, as AWS FIS
// "Cross-Region: Connectivity" leaves an isolated region alive. Heal sets it
// up again.
//
// Everything is named after a hash of the environment's state directory, so
// parallel environments (tests) never share a name, and is created and
// deleted by name with iproute2 (ip link, ip netns), which needs root.
// Available says whether namespaces can be made here, and why not.
//
// Go code reaches into a namespace with Namespace.Do (a dedicated, locked
// OS thread that has joined the namespace): sockets it creates, and
// processes it starts, live in the namespace. Namespace.HTTPClient builds on
// that.
package netns

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
)

// Member is one namespace of a fabric: a region.
type Member struct {
	// Name is the member's name inside the fabric, such as "primary".
	Name string `json:"name"`
	// Namespace is the network namespace (ip netns), such as
	// "paydr-1a2b3c-primary".
	Namespace Namespace `json:"namespace"`
	// HostVeth is the veth end on the bridge, in the host namespace;
	// Partition sets it down.
	HostVeth string `json:"host_veth"`
	// PeerVeth is the veth end inside the namespace, holding Address.
	PeerVeth string `json:"peer_veth"`
	// Address is the member's address on the fabric's subnet.
	Address netip.Addr `json:"address"`
}

// Fabric is an environment's network: a bridge with a private /24 in the
// host namespace and a namespace per member.
type Fabric struct {
	// ID is the short hash the names derive from.
	ID string `json:"id"`
	// Bridge is the bridge in the host namespace.
	Bridge string `json:"bridge"`
	// Subnet is the private /24; zero until Create chooses it.
	Subnet netip.Prefix `json:"subnet"`
	// Gateway is the bridge's address on Subnet (.1): where the host's
	// services (the emulator, the fault proxy) are reached from the
	// namespaces.
	Gateway netip.Addr `json:"gateway"`
	// Members are the namespaces, in the order given to New.
	Members []Member `json:"members"`
}

// New returns the fabric of the environment in stateDir with the given
// members (at most 8, names of letters and digits), named but not yet
// created and without addresses: Create chooses the subnet.
func New(stateDir string, members ...string) (*Fabric, error) {
	if len(members) == 0 || len(members) > 8 {
		return nil, fmt.Errorf("netns: %d members; a fabric has 1 to 8", len(members))
	}
	sum := sha256.Sum256([]byte(stateDir))
	id := hex.EncodeToString(sum[:3])
	f := &Fabric{ID: id, Bridge: "pd" + id + "br"}
	for i, m := range members {
		if m == "" || strings.ContainsFunc(m, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
			return nil, fmt.Errorf("netns: member name %q: use lower-case letters and digits", m)
		}
		f.Members = append(f.Members, Member{
			Name:      m,
			Namespace: Namespace("paydr-" + id + "-" + m),
			HostVeth:  fmt.Sprintf("pd%sh%d", id, i),
			PeerVeth:  fmt.Sprintf("pd%sn%d", id, i),
		})
	}
	return f, nil
}

// Member returns the member named name.
func (f *Fabric) Member(name string) (Member, error) {
	for _, m := range f.Members {
		if m.Name == name {
			return m, nil
		}
	}
	return Member{}, fmt.Errorf("netns: fabric %s has no member %q", f.Bridge, name)
}

// probes counts Available's probe namespaces in this process.
var probes atomic.Int64

// Available reports whether network namespaces can be made here: nil, or
// an error saying why not (not root, no iproute2, the kernel refuses).
// It creates and deletes a namespace to find out.
func Available(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("netns: network namespaces need root (paydr runs as uid " + fmt.Sprint(os.Geteuid()) + ")")
	}
	if _, err := ipPath(); err != nil {
		return err
	}
	// A name of its own for each call: probes at once in one process
	// would otherwise add the same namespace.
	probe := fmt.Sprintf("paydr-probe-%d-%d", os.Getpid(), probes.Add(1))
	if _, err := ip(ctx, "netns", "add", probe); err != nil {
		return fmt.Errorf("netns: cannot create a network namespace: %w", err)
	}
	if _, err := ip(ctx, "netns", "del", probe); err != nil {
		return fmt.Errorf("netns: cannot delete probe namespace %s: %w", probe, err)
	}
	return nil
}

// ipPath finds the ip command of iproute2.
func ipPath() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("netns: the ip command (iproute2) is not installed; install iproute2")
}

// ip runs ip with args and returns its standard output.
func ip(ctx context.Context, args ...string) (string, error) {
	bin, err := ipPath()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out.String(), nil
}

// notFound reports whether err says the object does not exist.
func notFound(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "Cannot find device") || strings.Contains(s, "No such file") ||
		strings.Contains(s, "does not exist") || strings.Contains(s, "Invalid \"netns\" value")
}
