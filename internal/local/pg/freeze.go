package pg

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"paydr/internal/local/daemon"
)

// freezeProbe bounds each query Freeze makes to check that the server no
// longer answers: on loopback a live server answers in milliseconds.
const freezeProbe = 500 * time.Millisecond

// FrozenError reports that a server still answered a query after Freeze
// stopped its processes.
type FrozenError struct {
	Server string
	// How is the query that succeeded: "an open connection" or "a new
	// connection".
	How string
}

func (e *FrozenError) Error() string {
	return fmt.Sprintf("%s still answered a query on %s after SIGSTOP to every process of it", e.Server, e.How)
}

// Freeze stops every process of the running server with SIGSTOP (the
// postmaster and all its descendants, daemon.SignalTree), as a machine cut
// off from everything looks to its clients: connections open, nothing
// answers. It then checks from outside that no query succeeds, neither on a
// connection opened before the freeze nor on a new one, each bounded by
// 500 ms; if one does, it thaws the server and returns a *FrozenError.
// Freezing a frozen server returns nil; Thaw undoes it.
func (s *Server) Freeze(ctx context.Context) error {
	pid := s.livePID()
	if pid == 0 {
		return fmt.Errorf("pg: freeze %s: not running", s.name)
	}
	// A connection opened before the freeze, as a client's pool holds one.
	// A server that does not answer now (frozen already) gives none.
	octx, cancel := context.WithTimeout(ctx, freezeProbe)
	open, err := s.Connect(octx, "postgres")
	cancel()
	if err == nil {
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 100*time.Millisecond)
			defer cancel()
			_ = open.Close(cctx)
		}()
	}
	if _, err := daemon.SignalTree(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("pg: freeze %s: %w", s.name, err)
	}
	var answered string
	if open != nil && s.answers(ctx, open) {
		answered = "an open connection"
	} else if s.answers(ctx, nil) {
		answered = "a new connection"
	}
	if answered != "" {
		_ = s.Thaw()
		return fmt.Errorf("pg: freeze %s: %w", s.name, &FrozenError{Server: s.name, How: answered})
	}
	return nil
}

// answers reports whether SELECT 1 succeeds within freezeProbe on conn, or
// on a new connection when conn is nil.
func (s *Server) answers(ctx context.Context, conn *pgx.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, freezeProbe)
	defer cancel()
	if conn == nil {
		c, err := s.Connect(ctx, "postgres")
		if err != nil {
			return false
		}
		defer c.Close(ctx)
		conn = c
	}
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one) == nil
}

// Frozen reports whether the server's postmaster is stopped (Freeze).
func (s *Server) Frozen() bool {
	pid := s.livePID()
	return pid != 0 && daemon.Stopped(pid)
}

// Thaw continues every process of a server Freeze stopped (SIGCONT to the
// postmaster and all its descendants). Thawing a running or stopped server
// returns nil.
func (s *Server) Thaw() error {
	pid := s.livePID()
	if pid == 0 {
		return nil
	}
	if _, err := daemon.SignalTree(pid, syscall.SIGCONT); err != nil {
		return fmt.Errorf("pg: thaw %s: %w", s.name, err)
	}
	return nil
}
