package daemon

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PortFree reports whether port on 127.0.0.1 can be listened on.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Listening reports whether something accepts TCP connections on port of
// 127.0.0.1.
func Listening(port int) bool { return ListeningOn("127.0.0.1", port) }

// ListeningOn reports whether something accepts TCP connections on port of
// host (a region's address in its network namespace, or 127.0.0.1).
func ListeningOn(host string, port int) bool {
	if port <= 0 {
		return false
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for a
// server that another process (postgres, moto, a processor) binds later.
//
// It picks outside the kernel's ephemeral range (ip_local_port_range), the
// range outgoing connections take their source ports from. A port picked by
// listening on port 0 comes from that range, so on a busy machine a
// connection made between the pick and the server's bind can take it as its
// source port, and the server fails with "address already in use" (seen in
// CI: a PostgreSQL start lost its port that way while three test binaries
// ran). Outside the range only another server can take it.
func FreePort() (int, error) {
	lo, hi := ephemeralRange()
	ranges := portsOutside(lo, hi)
	for range 64 {
		port := pickPort(ranges, rand.IntN)
		if port == 0 {
			break // no room outside the ephemeral range
		}
		if PortFree(port) {
			return port, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Ports FreePort picks from: at or above firstPort and never the kernel's
// ephemeral ones.
const (
	firstPort = 10000
	lastPort  = 65535
	// Linux's default ip_local_port_range, for when it can't be read.
	defaultEphemeralLo, defaultEphemeralHi = 32768, 60999
	portRangeFile                          = "/proc/sys/net/ipv4/ip_local_port_range"
)

// ephemeralRange returns the kernel's ephemeral port range, read once.
var ephemeralRange = sync.OnceValues(func() (lo, hi int) {
	b, err := os.ReadFile(portRangeFile)
	if err != nil {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	lo, hi, ok := parsePortRange(string(b))
	if !ok {
		return defaultEphemeralLo, defaultEphemeralHi
	}
	return lo, hi
})

// parsePortRange parses ip_local_port_range: two port numbers, low first.
func parsePortRange(s string) (lo, hi int, ok bool) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, 0, false
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || lo < 1 || hi > lastPort || lo > hi {
		return 0, 0, false
	}
	return lo, hi, true
}

// portRange is the ports from first to last, both included.
type portRange struct{ first, last int }

// portsOutside returns the ranges of [firstPort, lastPort] that lie outside
// the ephemeral range [lo, hi].
func portsOutside(lo, hi int) []portRange {
	var out []portRange
	if lo > firstPort {
		out = append(out, portRange{firstPort, min(lo-1, lastPort)})
	}
	if hi < lastPort {
		out = append(out, portRange{max(hi+1, firstPort), lastPort})
	}
	return out
}

// pickPort picks one port uniformly from ranges with intn (rand.IntN), or
// returns 0 when ranges hold none.
func pickPort(ranges []portRange, intn func(int) int) int {
	n := 0
	for _, r := range ranges {
		n += r.last - r.first + 1
	}
	if n <= 0 {
		return 0
	}
	i := intn(n)
	for _, r := range ranges {
		if size := r.last - r.first + 1; i < size {
			return r.first + i
		} else {
			i -= size
		}
	}
	return 0
}
