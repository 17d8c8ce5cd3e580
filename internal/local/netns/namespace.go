package netns

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Namespace is a named network namespace (ip netns). The empty Namespace is
// the host's: Do runs in the caller's namespace.
type Namespace string

// Path returns the namespace's file, the handle setns takes.
func (n Namespace) Path() string { return runDir + "/" + string(n) }

// Do runs f on a dedicated OS thread that has joined the namespace, and
// returns its error. Sockets f creates and processes it starts (exec.Cmd's
// Start forks from the calling thread) belong to the namespace; goroutines
// f starts do not. The thread is discarded afterwards, never reused.
func (n Namespace) Do(f func() error) error {
	if n == "" {
		return f()
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine rather than
		// go back to the scheduler inside the namespace.
		runtime.LockOSThread()
		fd, err := unix.Open(n.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("netns: open %s: %w", n.Path(), err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("netns: join %s: %w", n, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// Start starts cmd inside the namespace (see Do).
func (n Namespace) Start(cmd *exec.Cmd) error {
	return n.Do(cmd.Start)
}

// DialContext dials from inside the namespace. Give addr as an IP literal:
// name resolution would leave the namespace's thread.
func (n Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens inside the namespace.
func (n Namespace) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// HTTPClient returns a client whose connections are made inside the
// namespace, with the given overall timeout per request.
func (n Namespace) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         n.DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// Command returns argv prefixed to run inside the namespace with
// `ip netns exec`, which execs it (the pid stays the same).
func (n Namespace) Command(argv ...string) ([]string, error) {
	if n == "" {
		return argv, nil
	}
	bin, err := ipPath()
	if err != nil {
		return nil, err
	}
	return append([]string{bin, "netns", "exec", string(n)}, argv...), nil
}
