package local

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"paydr/internal/local/env"
	"paydr/internal/local/netns"
)

// NetnsMode says whether paydr up runs each region in its own network
// namespace (--netns).
type NetnsMode string

// The --netns modes.
const (
	// NetnsAuto keeps the mode of the environment already in the state
	// directory; a new one gets namespaces when they can be made here
	// (root, iproute2), else none, saying why.
	NetnsAuto NetnsMode = "auto"
	// NetnsOn requires namespaces.
	NetnsOn NetnsMode = "on"
	// NetnsOff runs everything on the host's 127.0.0.1.
	NetnsOff NetnsMode = "off"
)

// ParseNetnsMode reads a --netns value; empty is NetnsAuto.
func ParseNetnsMode(s string) (NetnsMode, error) {
	switch m := NetnsMode(s); m {
	case "":
		return NetnsAuto, nil
	case NetnsAuto, NetnsOn, NetnsOff:
		return m, nil
	}
	return "", fmt.Errorf("up: --netns %q: want auto, on or off", s)
}

// newFabric names the fabric of the environment in stateDir: a namespace
// per slot.
func newFabric(stateDir string) (*netns.Fabric, error) {
	names := make([]string, len(env.Slots))
	for i, s := range env.Slots {
		names[i] = string(s)
	}
	return netns.New(stateDir, names...)
}

// setupNetwork is Up's step placing the regions: with namespaces it creates
// (or keeps) the fabric and records it; without, it says why and that the
// partition fault is unavailable. An environment is not moved between the
// modes: that is refused, saying to run paydr down first.
func (u *upRun) setupNetwork(ctx context.Context) (string, error) {
	prevOn := u.prev != nil && u.prev.Network != nil
	was := map[bool]string{true: "with network namespaces", false: "without network namespaces"}[prevOn]
	on := false
	var why error
	switch u.o.Netns {
	case NetnsOn, NetnsOff:
		on = u.o.Netns == NetnsOn
		if u.prev != nil && on != prevOn {
			return "", fmt.Errorf("up: --netns %s: the environment in %s runs %s; run paydr down first to change that", u.o.Netns, u.o.StateDir, was)
		}
		if on {
			if err := netns.Available(ctx); err != nil {
				return "", fmt.Errorf("up: --netns on: %w; run as root with iproute2, or use --netns off", err)
			}
		}
	default:
		if u.prev != nil {
			on = prevOn
			why = fmt.Errorf("the environment in %s runs %s (run paydr down first to change that)", u.o.StateDir, was)
			if on {
				if err := netns.Available(ctx); err != nil {
					return "", fmt.Errorf("up: the environment runs with network namespaces, but %w; run as root, or run paydr down and paydr up --netns off", err)
				}
			}
		} else {
			why = netns.Available(ctx)
			on = why == nil
		}
	}
	if !on {
		reason := "--netns off"
		if why != nil {
			reason = why.Error()
		}
		fmt.Fprintf(u.o.Out, "      no network namespaces: %s; regions share the host's 127.0.0.1 and the partition fault is unavailable\n", reason)
		return "off: every region on 127.0.0.1", nil
	}
	f, err := newFabric(u.o.StateDir)
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	existed := f.Exists(ctx)
	if err := f.Create(ctx); err != nil {
		if !existed {
			_ = f.Delete(context.WithoutCancel(ctx))
		}
		return "", fmt.Errorf("up: %w", err)
	}
	if !existed {
		u.started = append(u.started, f.Delete)
	}
	u.net = f
	u.m.Network = f
	parts := []string{fmt.Sprintf("bridge %s %s (gateway %s)", f.Bridge, f.Subnet, f.Gateway)}
	for _, m := range f.Members {
		parts = append(parts, fmt.Sprintf("%s in %s at %s", m.Name, m.Namespace, m.Address))
	}
	return strings.Join(parts, "; "), nil
}

// hostAddr is where the host's services (moto, the fault proxy) listen:
// the fabric's gateway, which the host and every region reach, else
// 127.0.0.1.
func (u *upRun) hostAddr() string {
	if u.net != nil {
		return u.net.Gateway.String()
	}
	return "127.0.0.1"
}

// place returns the namespace and address of slot s's processes: its
// member of the fabric, else the host's namespace and 127.0.0.1.
func (u *upRun) place(s env.Slot) (netns.Namespace, string) {
	if u.net == nil {
		return "", "127.0.0.1"
	}
	m, err := u.net.Member(string(s))
	if err != nil {
		return "", "127.0.0.1"
	}
	return m.Namespace, m.Address.String()
}

// portFreeIn reports whether port can be listened on at host in namespace
// ns (and on the host's 127.0.0.1, where daemon.FreePort picks).
func portFreeIn(ns netns.Namespace, host string, port int) bool {
	err := ns.Do(func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return l.Close()
	})
	return err == nil
}

// deleteNetwork removes the fabric of the environment in stateDir, by the
// names derived from it, whether or not env.json records one: nothing when
// there is none (or namespaces cannot be made here, so none was).
func deleteNetwork(ctx context.Context, stateDir string) (bool, error) {
	f, err := newFabric(stateDir)
	if err != nil {
		return false, err
	}
	if !f.Exists(ctx) {
		return false, nil
	}
	if err := f.Delete(ctx); err != nil {
		return false, err
	}
	return true, nil
}
