// Package ledgertest holds test helpers for the ledger's failure modes: a
// TCP proxy in front of a PostgreSQL server that reads the wire protocol
// well enough to fail a connection at a chosen statement, so a test can
// prove what the processor answers when the database goes away after a
// statement was sent, or stops answering altogether.
package ledgertest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Action is what the proxy does when its fault trips.
type Action int

// Actions.
const (
	// Reset forwards the statement, lets the server execute it and answer,
	// drops the answer and resets the client's connection: the database
	// holds the result, the client never hears of it.
	Reset Action = iota + 1
	// ResetAndRefuse is Reset, and every later connection is closed as soon
	// as it is accepted: the database is unreachable from here on.
	ResetAndRefuse
	// Freeze forwards the statement and then nothing more, in either
	// direction, on any connection; later connections are accepted and
	// never answered: a frozen database or a network that black-holes.
	Freeze
)

// Fault trips on the first execution (Execute of an extended-protocol
// portal, or a simple Query) of a statement whose text contains Match.
type Fault struct {
	Match string
	Then  Action
}

// Proxy forwards TCP connections to a PostgreSQL server and applies at
// most one Fault. It is safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	fault   *Fault
	tripped chan struct{} // closed when the fault tripped
	frozen  bool          // Freeze tripped, or Freeze called
	refuse  bool          // ResetAndRefuse tripped
	conns   []net.Conn
	closed  bool
}

// Start listens on a free loopback port, forwards to upstream (host:port)
// and stops when the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ledgertest: listen: %v", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, tripped: make(chan struct{})}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// StartFor starts a Proxy to the host and port of the URL DSN dsn and
// returns it with dsn rewritten to go through it.
func StartFor(t testing.TB, dsn string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Fatalf("ledgertest: %q is not a URL DSN with a host", dsn)
	}
	p := Start(t, u.Host)
	u.Host = p.Addr()
	return p, u.String()
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Arm sets the fault; it trips once.
func (p *Proxy) Arm(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = &f
}

// Freeze stops all forwarding now: open connections go silent and new ones
// are accepted and never answered.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = true
}

// Tripped is closed when the armed fault has tripped; for Reset and
// ResetAndRefuse, once the server has answered the statement.
func (p *Proxy) Tripped() <-chan struct{} { return p.tripped }

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(client) {
			return
		}
		p.mu.Lock()
		frozen, refuse := p.frozen, p.refuse
		p.mu.Unlock()
		switch {
		case frozen:
			continue // accepted, never answered
		case refuse:
			_ = client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil || !p.track(server) {
			_ = client.Close()
			continue
		}
		c := &conn{p: p, client: client, server: server}
		go c.clientToServer()
		go c.serverToClient()
	}
}

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	client, server net.Conn

	mu       sync.Mutex
	tripped  Action // the fault tripped on this connection
	answered bool   // the server's answer to the tripping statement has been dropped
}

func (c *conn) close() {
	_ = c.client.Close()
	_ = c.server.Close()
}

func (c *conn) frozen() bool {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.p.frozen
}

// clientToServer forwards the client's messages one at a time, watching
// for the statement the fault names.
func (c *conn) clientToServer() {
	defer c.close()
	r := bufio.NewReader(c.client)
	// Untyped startup packets: an SSL or GSS request is followed by another.
	for {
		msg, err := readUntyped(r)
		if err != nil {
			return
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
		if len(msg) < 8 {
			return
		}
		code := binary.BigEndian.Uint32(msg[4:8])
		if code != 80877103 && code != 80877104 { // SSLRequest, GSSENCRequest
			break
		}
	}
	statements := map[string]bool{} // prepared statement name → matches
	portals := map[string]bool{}    // portal name → matches
	for {
		typ, msg, err := readTyped(r)
		if err != nil {
			return
		}
		if c.frozen() {
			continue // swallowed
		}
		trip := false
		switch typ {
		case 'P': // Parse: name, query
			name, rest := cstring(msg[5:])
			query, _ := cstring(rest)
			statements[name] = c.matches(query)
		case 'B': // Bind: portal, statement
			portal, rest := cstring(msg[5:])
			stmt, _ := cstring(rest)
			portals[portal] = statements[stmt]
		case 'E': // Execute: portal
			portal, _ := cstring(msg[5:])
			trip = portals[portal]
		case 'Q': // simple query
			query, _ := cstring(msg[5:])
			trip = c.matches(query)
		}
		if trip {
			c.trip()
		}
		if _, err := c.server.Write(msg); err != nil {
			return
		}
	}
}

func (c *conn) matches(query string) bool {
	c.p.mu.Lock()
	defer c.p.mu.Unlock()
	return c.p.fault != nil && bytes.Contains([]byte(query), []byte(c.p.fault.Match))
}

// trip consumes the armed fault for this connection.
func (c *conn) trip() {
	c.p.mu.Lock()
	f := c.p.fault
	c.p.fault = nil
	if f != nil && f.Then == Freeze {
		c.p.frozen = true
		close(c.p.tripped)
	}
	c.p.mu.Unlock()
	if f == nil {
		return
	}
	c.mu.Lock()
	c.tripped = f.Then
	c.mu.Unlock()
}

// serverToClient forwards the server's messages; after a Reset trip it
// drops them up to the ReadyForQuery that ends the statement, then resets
// the client's connection.
func (c *conn) serverToClient() {
	defer c.close()
	r := bufio.NewReader(c.server)
	first := true
	for {
		var msg []byte
		var typ byte
		var err error
		if first {
			// The answer to an SSL/GSS request is one untyped byte.
			b, perr := r.Peek(1)
			if perr != nil {
				return
			}
			if b[0] == 'N' || b[0] == 'S' || b[0] == 'G' {
				if _, err := io.CopyN(c.client, r, 1); err != nil {
					return
				}
				continue
			}
			first = false
		}
		typ, msg, err = readTyped(r)
		if err != nil {
			return
		}
		c.mu.Lock()
		tripped := c.tripped
		c.mu.Unlock()
		switch {
		case tripped == Reset || tripped == ResetAndRefuse:
			if typ != 'Z' {
				continue // dropped
			}
			c.p.mu.Lock()
			if tripped == ResetAndRefuse {
				c.p.refuse = true
			}
			close(c.p.tripped)
			c.p.mu.Unlock()
			if tc, ok := c.client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with RST
			}
			return
		case c.frozen():
			continue // dropped
		}
		if _, err := c.client.Write(msg); err != nil {
			return
		}
	}
}

// readUntyped reads a startup-phase packet: int32 length (itself included)
// and payload.
func readUntyped(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 4 || n > 1<<20 {
		return nil, fmt.Errorf("ledgertest: startup packet length %d", n)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[4:])
	return msg, err
}

// readTyped reads a message: type byte, int32 length (itself included),
// payload. It returns the type and the whole message.
func readTyped(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<30 {
		return 0, nil, errors.New("ledgertest: bad message length")
	}
	msg := make([]byte, 1+n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[5:])
	return hdr[0], msg, err
}

// cstring splits b at its first NUL.
func cstring(b []byte) (string, []byte) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), nil
	}
	return string(b[:i]), b[i+1:]
}
