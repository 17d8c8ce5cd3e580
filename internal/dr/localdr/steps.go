package localdr

// How each step is done locally (the package comment lists them): the
// functions Do dispatches to.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/dr"
	"paydr/internal/ledger"
	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/router"
	"paydr/internal/processor/api"
)

// fence stops a database: a fast shutdown streams its last WAL to the
// standby; one that does not finish in 5 s (a frozen region) is killed.
func fence(ctx context.Context, srv *pg.Server, wait time.Duration) (string, error) {
	if !srv.Running() {
		return fmt.Sprintf("database %s already stopped", srv.Name()), nil
	}
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	if err := srv.Stop(sctx); err != nil {
		return "", fmt.Errorf("localdr: fence %s: %w", srv.Name(), err)
	}
	how := "fast shutdown"
	if time.Since(start) >= wait {
		how = fmt.Sprintf("killed after %s without shutting down", wait)
	}
	return fmt.Sprintf("database %s stopped (%s) in %s", srv.Name(), how, time.Since(start).Round(time.Millisecond)), nil
}

// preserve copies a stopped database's data directory.
func (b *Backend) preserve(opID string, srv *pg.Server) (string, error) {
	if srv.Running() {
		return "", fmt.Errorf("localdr: preserve %s: the database is running; fence it first", srv.Name())
	}
	dst := filepath.Join(b.layout().PreservedDir(), opID+"-"+srv.Name())
	if _, err := os.Stat(dst); err == nil {
		return "final state kept in " + dst + " (already)", nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("localdr: preserve %s: %w", srv.Name(), err)
	}
	tmp := dst + ".partial"
	os.RemoveAll(tmp)
	if out, err := exec.Command("cp", "-a", srv.DataDir(), tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("localdr: preserve %s: cp -a: %w: %s", srv.Name(), err, bytes.TrimSpace(out))
	}
	os.Remove(filepath.Join(tmp, "postmaster.pid"))
	os.Remove(filepath.Join(tmp, "standby.signal"))
	// The server's TLS files sit beside its data directory (pg's TLSDir),
	// and its configuration serves TLS: the copy keeps them beside it, so
	// it starts (pg.Open on it, or postgres -D) after the original is
	// rebuilt or gone.
	if tlsDir := srv.TLSDir(); exists(tlsDir) {
		os.RemoveAll(dst + ".tls")
		if out, err := exec.Command("cp", "-a", tlsDir, dst+".tls").CombinedOutput(); err != nil {
			return "", fmt.Errorf("localdr: preserve %s: cp -a its TLS files: %w: %s", srv.Name(), err, bytes.TrimSpace(out))
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("localdr: preserve %s: %w", srv.Name(), err)
	}
	return fmt.Sprintf("final state of %s (writes that never replicated included) kept in %s; inspect it with postgres -D %s -p <free port>", srv.Name(), dst, dst), nil
}

var ckptRE = regexp.MustCompile(`(?m)^Latest checkpoint location:\s+([0-9A-F]+/[0-9A-F]+)`)
var stateRE = regexp.MustCompile(`(?m)^Database cluster state:\s+(.+)$`)

// finalLSN reads a stopped server's shutdown checkpoint with pg_controldata.
func finalLSN(ctx context.Context, dataDir string) (pg.LSN, string, error) {
	binDir, err := pg.FindBinDir("")
	if err != nil {
		return 0, "", err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "pg_controldata"), "-D", dataDir).CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("pg_controldata %s: %w: %s", dataDir, err, bytes.TrimSpace(out))
	}
	state := ""
	if mm := stateRE.FindSubmatch(out); mm != nil {
		state = strings.TrimSpace(string(mm[1]))
	}
	mm := ckptRE.FindSubmatch(out)
	if mm == nil {
		return 0, state, fmt.Errorf("pg_controldata %s: no checkpoint location", dataDir)
	}
	lsn, err := pg.ParseLSN(string(mm[1]))
	return lsn, state, err
}

// waitCaughtUp waits until srv (the standby) has replayed past the old
// writer's shutdown checkpoint.
func waitCaughtUp(ctx context.Context, srv *pg.Server, oldWriterDir string) (string, error) {
	old, err := pg.Open(oldWriterDir)
	if err != nil {
		return "", fmt.Errorf("localdr: wait caught up: %w", err)
	}
	if old.Running() {
		return "", fmt.Errorf("localdr: wait caught up: the old writer %s is running; fence it first", old.Name())
	}
	ckpt, state, err := finalLSN(ctx, oldWriterDir)
	if err != nil {
		return "", fmt.Errorf("localdr: wait caught up: %w", err)
	}
	if state != "shut down" && state != "shut down in recovery" {
		return "", fmt.Errorf("localdr: wait caught up: the old writer %s did not shut down cleanly (%q), so what it committed last is unknown; start it again and retry, or fail over with --allow-data-loss", old.Name(), state)
	}
	for {
		lsn, err := srv.CurrentLSN(ctx)
		if err == nil && lsn > ckpt {
			return fmt.Sprintf("%s replayed %s, past the old writer's shutdown checkpoint %s", srv.Name(), lsn, ckpt), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localdr: wait caught up: %s replayed %s, not past %s: %w; check replication, then run the command again (nothing is lost: the old writer is stopped intact)", srv.Name(), lsn, ckpt, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// rebuild turns srv into a standby of the database in peerDir, unless it
// already streams from it.
func rebuild(ctx context.Context, srv *pg.Server, peerDir string) (string, error) {
	peer, err := pg.Open(peerDir)
	if err != nil {
		return "", fmt.Errorf("localdr: rebuild standby: %w", err)
	}
	if srv.Running() {
		if ss, err := srv.StandbyStatus(ctx); err == nil && ss.SenderPort == peer.Port() && ss.ReceiverStatus == "streaming" {
			return fmt.Sprintf("%s already streams from %s", srv.Name(), peer.Name()), nil
		}
	}
	start := time.Now()
	method, err := srv.RebuildAsStandby(ctx, peer)
	if err != nil {
		return "", fmt.Errorf("localdr: rebuild standby: %w", err)
	}
	return fmt.Sprintf("%s rebuilt as a standby of %s with %s in %s", srv.Name(), peer.Name(), method, time.Since(start).Round(time.Millisecond)), nil
}

// ensureProcessor starts the slot's processor from the manifest when it is
// not running, and waits until it answers /health (with any status).
func (b *Backend) ensureProcessor(ctx context.Context, m *env.Manifest, slot env.Slot) (string, error) {
	p := m.Regions[slot].Processor
	if daemon.Alive(p.PID, "") {
		return fmt.Sprintf("processor %s runs (pid %d)", p.URL, p.PID), nil
	}
	pid, err := StartProcessor(p)
	if err != nil {
		return "", fmt.Errorf("localdr: unfence %s: %w", m.Regions[slot].Name, err)
	}
	m.Regions[slot].Processor.PID = pid
	if err := m.Save(); err != nil {
		return "", fmt.Errorf("localdr: unfence: %w", err)
	}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/health", nil)
		if resp, err := b.client.Do(req); err == nil {
			resp.Body.Close()
			return fmt.Sprintf("processor %s restarted (pid %d)", p.URL, pid), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localdr: unfence: processor %s restarted (pid %d) but does not answer: %w; see %s", p.URL, pid, ctx.Err(), p.LogPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartProcessor starts a processor again from its manifest record (its
// command and PAYDR_* environment, emulator credentials: daemon.Environ),
// detached in its own session, logging to its log, and records its pid
// file.
func StartProcessor(p env.Processor) (int, error) {
	if len(p.Command) == 0 {
		return 0, errors.New("start processor: the manifest records no command")
	}
	child, err := daemon.Start(daemon.Spec{Name: "processor", Argv: p.Command, Env: daemon.Environ(p.Env),
		LogPath: p.LogPath, PIDFile: p.PIDFile, Banner: "paydr dr restarts the processor"})
	if err != nil {
		return 0, err
	}
	return child.PID, nil
}

func (b *Backend) waitTraffic(ctx context.Context, routerURL, region string) (string, error) {
	start := time.Now()
	var last router.Status
	for {
		rs, err := b.routerClient(routerURL).Status(ctx)
		if err == nil {
			last = rs
			if rs.ActiveTarget == region && !rs.AllUnhealthy {
				return fmt.Sprintf("router sends traffic to %s (after %s)", region, time.Since(start).Round(time.Millisecond)), nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localdr: wait traffic: router still sends traffic to %q: %w; check the processors' /health (paydr dr status)", last.ActiveTarget, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// verify sends a real payment through the router with the payments API key
// (read in the region, as its processor does), retrying the same payment id
// (idempotent) until it is acknowledged, and finds it in the region's
// ledger.
func (b *Backend) verify(ctx context.Context, m *env.Manifest, r *env.Region, opID string) (string, error) {
	routerURL := m.Router.URL
	key, err := APIKey(ctx, m, r.Name)
	if err != nil {
		return "", fmt.Errorf("localdr: verify: %w", err)
	}
	id := dr.VerifyPaymentID(opID)
	body := fmt.Sprintf(`{"payment_id":%q,"amount":"0.01","currency":"USD"}`, id)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, routerURL+api.PathPayments, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		apikey.Set(req.Header, key)
		resp, err := b.client.Do(req)
		if err == nil {
			target := resp.Header.Get(router.TargetHeader)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				l, err := ledger.Open(ledger.Options{DSN: r.Database.DSN, Region: r.Name, MaxConns: 1})
				if err != nil {
					return "", fmt.Errorf("localdr: verify: %w", err)
				}
				defer l.Close()
				_, found, err := l.Get(ctx, id)
				if err != nil {
					return "", fmt.Errorf("localdr: verify: %w", err)
				}
				if !found {
					return "", fmt.Errorf("localdr: verify: payment %s was acknowledged by %s but is not in %s's ledger; run paydr dr status", id, target, r.Name)
				}
				return fmt.Sprintf("payment %s acknowledged by %s and found in %s's ledger", id, target, r.Name), nil
			}
			if resp.StatusCode == http.StatusUnauthorized {
				return "", fmt.Errorf("localdr: verify: payment %s refused by %s with HTTP 401: its processor does not accept the key in %s's %s; run paydr down and paydr up",
					id, target, r.Name, apikey.ParameterName(m.Suffix))
			}
			last = fmt.Sprintf("HTTP %d from %s", resp.StatusCode, target)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("localdr: verify: payment %s not acknowledged (last: %s): %w", id, last, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
