package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/faultproxy"
)

// faultProxyCmd is the paydr subcommand hosting the fault proxy, and what
// its command line contains (daemon.Alive), so a recycled pid is not taken
// for it.
const faultProxyCmd = "fault-proxy"

// faultProxyCommand is the command line of a fault proxy on addr in front
// of upstream.
func faultProxyCommand(exe, upstream, addr string) []string {
	return []string{exe, faultProxyCmd, "--upstream", upstream, "--listen", addr}
}

// startProxy is Up's fault proxy step, with --fault-proxy.
func (u *upRun) startProxy(ctx context.Context) (string, error) {
	return u.startFaultProxy(ctx, u.m, u.prev)
}

// retireFaultProxy stops, without --fault-proxy, the proxy an earlier up
// started: the processors just started no longer use it.
func (u *upRun) retireFaultProxy(ctx context.Context) error {
	if u.o.FaultProxy {
		return nil
	}
	d, err := u.stopFaultProxy(ctx)
	if err != nil {
		return err
	}
	if d != "" {
		fmt.Fprintf(u.o.Out, "      %s\n", d)
	}
	return nil
}

// startFaultProxy starts (or adopts) the fault proxy in front of the
// emulator at m.Moto.Endpoint, records it in m.FaultProxy, and waits until
// its control API answers. A proxy this run starts has no rules; one
// adopted keeps the rules it has, and the detail names them. Terraform does
// not go through the proxy (see Up), so rules in force cannot stall an
// apply.
func (u *upRun) startFaultProxy(ctx context.Context, m *env.Manifest, prev *env.Manifest) (string, error) {
	pidFile := u.l.FaultProxyPID()
	port := 0
	if prev != nil && prev.FaultProxy != nil {
		port = prev.FaultProxy.Port
	}
	if pid := daemon.ReadPIDFile(pidFile); daemon.Alive(pid, faultProxyCmd) {
		if prev != nil && prev.FaultProxy != nil && port != 0 {
			old := *prev.FaultProxy
			want := faultProxyCommand(u.o.Exe, m.Moto.Endpoint, net.JoinHostPort(u.hostAddr(), strconv.Itoa(port)))
			if slices.Equal(old.Command, want) {
				if rules, err := faultProxyClient(old.URL).Rules(ctx); err == nil {
					m.FaultProxy = &old
					m.FaultProxy.PID = pid
					return fmt.Sprintf("%s already running (pid %d); %s", old.URL, pid, describeRules(rules)), nil
				}
			}
		}
		// Its settings changed (the emulator moved), or it is not the
		// proxy env.json recorded: replace it.
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := daemon.Stop(cctx, pid, faultProxyCmd, 5*time.Second)
		cancel()
		if err != nil {
			return "", fmt.Errorf("up: fault proxy: stop the old one: %w", err)
		}
		_ = os.Remove(pidFile)
	}
	if port == 0 || !daemon.PortFree(port) {
		var err error
		if port, err = daemon.FreePort(); err != nil {
			return "", fmt.Errorf("up: start fault proxy: %w", err)
		}
	}
	// On the fabric's gateway with namespaces: the processors reach it there.
	addr := net.JoinHostPort(u.hostAddr(), strconv.Itoa(port))
	argv := faultProxyCommand(u.o.Exe, m.Moto.Endpoint, addr)
	pid, exited, err := u.startDaemon(daemon.Spec{Name: "fault proxy", Argv: argv, Env: u.exeEnv(nil), LogPath: u.l.FaultProxyLog(), PIDFile: pidFile})
	if err != nil {
		return "", err
	}
	url := "http://" + addr
	m.FaultProxy = &env.FaultProxy{URL: url, ControlURL: url + faultproxy.RulesPath, Upstream: m.Moto.Endpoint,
		Port: port, PID: pid, PIDFile: pidFile, LogPath: u.l.FaultProxyLog(), Command: argv}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rules, err := faultProxyClient(url).Rules(ctx)
		if err == nil {
			return fmt.Sprintf("%s (pid %d) in front of %s; %s", url, pid, m.Moto.Endpoint, describeRules(rules)), nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("up: fault proxy exited at start; log %s ends:\n%s", u.l.FaultProxyLog(), logTail(u.l.FaultProxyLog(), 15))
		case <-ctx.Done():
			return "", fmt.Errorf("up: wait for the fault proxy: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("up: fault proxy at %s does not answer its control API after 30s (%v); see %s", url, err, u.l.FaultProxyLog())
		}
	}
}

// stopFaultProxy stops the fault proxy a previous paydr up --fault-proxy
// left running, and returns what it stopped ("" when none ran).
func (u *upRun) stopFaultProxy(ctx context.Context) (string, error) {
	pidFile := u.l.FaultProxyPID()
	pid := daemon.ReadPIDFile(pidFile)
	if !daemon.Alive(pid, faultProxyCmd) {
		_ = os.Remove(pidFile)
		return "", nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := daemon.Stop(cctx, pid, faultProxyCmd, 5*time.Second); err != nil {
		return "", fmt.Errorf("up: stop the fault proxy of the last up: %w", err)
	}
	_ = os.Remove(pidFile)
	return fmt.Sprintf("stopped the fault proxy of the last up (pid %d): this up runs without --fault-proxy", pid), nil
}

// faultProxyClient drives the control API of the fault proxy at url, each
// request bounded to 3 s.
func faultProxyClient(url string) faultproxy.Client {
	return faultproxy.Client{URL: url, HTTP: &http.Client{Timeout: 3 * time.Second}}
}

// describeRules says what rules are in force, one phrase each.
func describeRules(rules []faultproxy.Rule) string {
	if len(rules) == 0 {
		return "no rules (every request passes)"
	}
	parts := make([]string, len(rules))
	for i, r := range rules {
		s := r.Region
		if r.Service != "" {
			s += " " + r.Service
		}
		s += " " + string(r.Fault)
		if r.Delay != 0 {
			s += " " + r.Delay.String()
		}
		parts[i] = s
	}
	noun := "rules"
	if len(rules) == 1 {
		noun = "rule"
	}
	return fmt.Sprintf("%d %s in force: %s", len(rules), noun, strings.Join(parts, ", "))
}

// takeUSEast1 is the example rule paydr up prints: us-east-1 black-holed,
// and with it the global services homed there (Route 53, IAM).
var takeUSEast1 = []faultproxy.Rule{{Region: "us-east-1", Fault: faultproxy.Blackhole}}

// printFaultProxyHint tells how to take a region away through fp and how
// to give it back.
func printFaultProxyHint(w io.Writer, fp *env.FaultProxy) {
	body, _ := json.Marshal(takeUSEast1)
	fmt.Fprintf(w, "\nfault proxy %s: the processors reach AWS through it (point paydr dr --endpoint at it too).\n", fp.URL)
	fmt.Fprintf(w, "take us-east-1 away (its requests are held unanswered until the client gives up):\n")
	fmt.Fprintf(w, "  curl -X PUT %s -d '%s'\n", fp.ControlURL, body)
	fmt.Fprintf(w, "give it back: curl -X DELETE %s\n", fp.ControlURL)
}
