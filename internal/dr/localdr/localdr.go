// Package localdr is the DR backend on the local environment of paydr up:
// the PostgreSQL primary and streaming standby standing in for the Aurora
// global database, the processor of each region, and the failover router
// standing in for Route 53. It reads what runs where from the manifest
// (env.json, package env) and records role changes there; it restarts
// processes with package daemon and reads the router with router.Client. It
// does not link paydr up (package local) or the stack's synthesis.
//
// How each step is done locally:
//   - fence: the region's database is stopped (a fast shutdown, which
//     first streams every WAL record to the connected standby; SIGKILL after
//     5 s for a database that does not answer). The processor then answers
//     503 to payments and fails its health check: it cannot write.
//   - wait-caught-up: the standby's replay position passes the old writer's
//     shutdown checkpoint (read with pg_controldata).
//   - promote: pg_promote on the standby, refused while the other database
//     is a running writer.
//   - preserve: the stopped old writer's data directory is copied to
//     <state>/dr/preserved/<op-id>-<name>, writes that never replicated
//     included, before anything rebuilds it.
//   - rebuild-standby: pg_rewind (or a base backup) onto the new writer.
//   - unfence: the region's processor is restarted from the manifest if it
//     is not running.
//   - relax-rpo: env.json records no bound on loss enforced on the region,
//     and its database's commits wait for no standby
//     (synchronous_standby_names emptied: ALTER SYSTEM when it runs,
//     postgresql.auto.conf when it is stopped).
//   - enforce-rpo: env.json records the environment's bound (paydr up
//     --rpo-bound) as enforced on the region; its RPO guard (package
//     rpoguard) makes commits wait for the standby once the standby lags
//     about the bound. Under RPO 0 they wait at once.
//   - wait-traffic: the router sends traffic to the region.
//   - verify: a real payment through the router, carrying the payments API
//     key read from the emulator's SSM (APIKey), found in the new writer's
//     ledger.
package localdr

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"paydr/internal/apikey"
	"paydr/internal/dr"
	"paydr/internal/local/env"
	"paydr/internal/local/pg"
	"paydr/internal/local/router"
)

// Backend is the local DR backend: a dr.Backend over the environment in a
// state directory.
type Backend struct {
	stateDir string
	client   *http.Client
	// Wait bounds each waiting step (default 60 s).
	Wait time.Duration
}

// Open returns the backend of the environment in stateDir; it fails when no
// environment was brought up there.
func Open(stateDir string) (*Backend, error) {
	if _, err := env.Load(stateDir); err != nil {
		return nil, fmt.Errorf("localdr: %w", err)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("localdr: %w", err)
	}
	return &Backend{stateDir: abs, Wait: 60 * time.Second,
		client: &http.Client{Timeout: probeTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}}, nil
}

// layout names the files of the backend's state directory.
func (b *Backend) layout() env.Layout { return env.Layout{Root: b.stateDir} }

// DRDir is where the journal, the lock and preserved data live.
func (b *Backend) DRDir() string { return b.layout().DRDir() }

// DRDir is where the journal, the lock and preserved data of the
// environment in stateDir live.
func DRDir(stateDir string) string { return env.Layout{Root: stateDir}.DRDir() }

// Journal opens the backend's journal.
func (b *Backend) Journal() (*dr.Journal, error) { return OpenJournal(b.stateDir) }

// OpenJournal opens the DR journal of the environment in stateDir.
func OpenJournal(stateDir string) (*dr.Journal, error) {
	return dr.OpenJournal(env.Layout{Root: stateDir}.DRJournalDir())
}

// Locker returns the backend's lock.
func (b *Backend) Locker() dr.Locker { return Locker(b.stateDir) }

// Locker returns the DR lock of the environment in stateDir: a flock(2) on
// a file in the state directory.
func Locker(stateDir string) dr.Locker {
	return dr.FileLock{Path: env.Layout{Root: stateDir}.DRLock()}
}

func (b *Backend) manifest() (*env.Manifest, error) {
	m, err := env.Load(b.stateDir)
	if err != nil {
		return nil, fmt.Errorf("localdr: %w", err)
	}
	return m, nil
}

// routerClient returns a client of the router at url, bounded by the
// backend's probe timeout.
func (b *Backend) routerClient(url string) router.Client {
	return router.Client{URL: url, HTTP: b.client}
}

// slotOf returns the slot of region name.
func slotOf(m *env.Manifest, name string) (env.Slot, *env.Region, error) {
	for _, s := range env.Slots {
		if r := m.Regions[s]; r != nil && r.Name == name {
			return s, r, nil
		}
	}
	return "", nil, fmt.Errorf("localdr: region %s is in neither slot of the manifest", name)
}

// probeTimeout bounds each probe of a local database or processor: on
// loopback a live one answers in milliseconds, and a frozen region must not
// hold a failover back.
const probeTimeout = time.Second

// dbState observes one database: its role and whether it answered.
func dbState(ctx context.Context, r *env.Region) (*pg.Server, dr.Role, bool, error) {
	srv, err := pg.Open(r.Database.DataDir)
	if err != nil {
		return nil, dr.RoleUnknown, false, err
	}
	if !srv.Running() {
		return srv, dr.RoleDown, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	in, err := srv.InRecovery(ctx)
	if err != nil {
		return srv, dr.RoleUnknown, false, err
	}
	if in {
		return srv, dr.RoleStandby, true, nil
	}
	return srv, dr.RoleWriter, true, nil
}

// Status implements dr.Observer.
func (b *Backend) Status(ctx context.Context) (dr.Status, error) {
	m, err := b.manifest()
	if err != nil {
		return dr.Status{}, err
	}
	st := dr.Status{Backend: "local", Observed: time.Now().UTC(), Global: m.StateDir,
		Sessions: "one table per region (moto ignores global-table replicas)", Replication: dr.Replication{LagBytes: -1}}
	servers := map[env.Slot]*pg.Server{}
	regions := make([]dr.Region, len(env.Slots))
	notes := make([]string, len(env.Slots))
	srvs := make([]*pg.Server, len(env.Slots))
	var wg sync.WaitGroup
	for i, s := range env.Slots {
		r := m.Regions[s]
		wg.Go(func() {
			// Both regions are probed at once: a frozen region costs one
			// timeout, not two.
			// So are a region's database and processor: a frozen region
			// costs one probe timeout in all.
			reg := dr.Region{Name: r.Name, Slot: string(s), Database: r.Database.DataDir, Function: r.Processor.URL}
			var hw sync.WaitGroup
			hw.Go(func() { reg.Healthy, reg.Health = b.health(ctx, r.Processor.URL) })
			srv, role, reachable, err := dbState(ctx, r)
			hw.Wait()
			reg.Role, reg.Reachable, reg.Fenced = role, reachable, role == dr.RoleDown
			if err != nil {
				notes[i] = fmt.Sprintf("%s database: %v", r.Name, err)
			}
			srvs[i] = srv
			regions[i] = reg
		})
	}
	wg.Wait()
	for i, s := range env.Slots {
		servers[s] = srvs[i]
		st.Regions = append(st.Regions, regions[i])
		if notes[i] != "" {
			st.Notes = append(st.Notes, notes[i])
		}
	}
	// Replication, from the writer's side when it answers, else from the
	// standby's.
	var writer, standby env.Slot
	for i, s := range env.Slots {
		switch st.Regions[i].Role {
		case dr.RoleWriter:
			writer = s
		case dr.RoleStandby:
			standby = s
		}
	}
	if standby != "" {
		sctx, cancel := context.WithTimeout(ctx, probeTimeout)
		ss, err := servers[standby].StandbyStatus(sctx)
		cancel()
		if err == nil {
			st.Replication.LastReplayed = ss.LastReplayTime
			st.Replication.State = ss.ReceiverStatus
			st.Replication.Streaming = ss.ReceiverStatus == "streaming"
		}
	}
	syncNow := false // the writer's commits wait for the standby now
	if writer != "" && standby != "" {
		sctx, cancel := context.WithTimeout(ctx, probeTimeout)
		reps, err := servers[writer].ReplicationStatus(sctx)
		cancel()
		if err == nil {
			for _, rp := range reps {
				if rp.ApplicationName == m.Regions[standby].Database.Name {
					st.Replication.Known = true
					st.Replication.State = rp.State
					st.Replication.Streaming = rp.State == "streaming"
					st.Replication.LagBytes = rp.LagBytes
					st.Replication.ReplayLag = rp.ReplayLag
					syncNow = rp.SyncState == "sync"
				}
			}
		}
	}
	rpoStatus(&st, m, syncNow)
	if !st.Replication.LastReplayed.IsZero() && st.Replication.LagBytes != 0 {
		st.Replication.RPOLag = max(0, st.Observed.Sub(st.Replication.LastReplayed))
	}
	if rs, err := b.routerClient(m.Router.URL).Status(ctx); err == nil {
		st.Traffic = rs.ActiveTarget
		if rs.AllUnhealthy {
			st.Notes = append(st.Notes, "router: both regions unhealthy; like Route 53 it answers with the primary")
		}
	} else {
		st.Notes = append(st.Notes, err.Error())
	}
	return st, nil
}

func (b *Backend) health(ctx context.Context, base string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return false, "processor: " + shortErr(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode == http.StatusOK, fmt.Sprintf("/health %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "dial tcp") {
		return s[i+2:]
	}
	return s
}

// Calls implements dr.Runner: what each step does here, for a dry run.
func (b *Backend) Calls(s dr.Step) []string {
	m, err := b.manifest()
	if err != nil {
		return []string{err.Error()}
	}
	_, r, err := slotOf(m, s.Region)
	if err != nil {
		return []string{err.Error()}
	}
	var peer *env.Region
	if s.Peer != "" {
		_, peer, _ = slotOf(m, s.Peer)
	}
	db := r.Database
	switch s.Action {
	case dr.ActionFence:
		return []string{fmt.Sprintf("stop postgres -D %s (fast shutdown; SIGKILL after 5s, 2s when best effort); processor %s then answers 503", db.DataDir, r.Processor.URL)}
	case dr.ActionPreserve:
		return []string{fmt.Sprintf("cp -a %s %s", db.DataDir, filepath.Join(b.layout().PreservedDir(), "<op-id>-"+db.Name))}
	case dr.ActionWaitCaughtUp:
		if peer == nil {
			return nil
		}
		return []string{fmt.Sprintf("pg_controldata %s (shutdown checkpoint)", peer.Database.DataDir), fmt.Sprintf("poll pg_last_wal_replay_lsn() on %s:%d until past it", r.Host(), db.Port)}
	case dr.ActionPromote:
		return []string{fmt.Sprintf("SELECT pg_promote() on %s:%d", r.Host(), db.Port), "record roles in " + env.Path(b.stateDir)}
	case dr.ActionRebuildStandby:
		if peer == nil {
			return nil
		}
		return []string{fmt.Sprintf("pg_rewind --target-pgdata=%s --source-server=port=%d (base backup if it fails); start streaming", db.DataDir, peer.Database.Port)}
	case dr.ActionUnfence:
		return []string{fmt.Sprintf("start processor %s if it is not running: %s", r.Processor.URL, strings.Join(r.Processor.Command, " "))}
	case dr.ActionWaitTraffic:
		return []string{fmt.Sprintf("poll %s/_router/status until active_target is %s", m.Router.URL, s.Region)}
	case dr.ActionEnforceRPO, dr.ActionRelaxRPO:
		return b.rpoCalls(m, s, r)
	case dr.ActionVerify:
		return []string{
			fmt.Sprintf("ssm GetParameter %s with decryption in %s on %s (the payments API key)", apikey.ParameterName(m.Suffix), r.Name, m.Moto.Endpoint),
			fmt.Sprintf("POST %s/payments Authorization: Bearer <key> {payment_id: dr-verify-<op-id>, 0.01 USD}", m.Router.URL),
			fmt.Sprintf("SELECT from payments on %s:%d", r.Host(), db.Port),
		}
	}
	return nil
}

// Do implements dr.Runner.
func (b *Backend) Do(ctx context.Context, opID string, s dr.Step) (string, error) {
	m, err := b.manifest()
	if err != nil {
		return "", err
	}
	slot, r, err := slotOf(m, s.Region)
	if err != nil {
		return "", err
	}
	srv, err := pg.Open(r.Database.DataDir)
	if err != nil {
		return "", fmt.Errorf("localdr: %s: %w", s.Name(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.Wait)
	defer cancel()
	switch s.Action {
	case dr.ActionFence:
		// A planned fence waits for a clean shutdown (it ships the last
		// WAL); a failover's fence of a lost region kills sooner.
		wait := 5 * time.Second
		if s.BestEffort {
			wait = 2 * time.Second
		}
		return fence(ctx, srv, wait)
	case dr.ActionPreserve:
		return b.preserve(opID, srv)
	case dr.ActionWaitCaughtUp:
		_, peer, err := slotOf(m, s.Peer)
		if err != nil {
			return "", err
		}
		return waitCaughtUp(ctx, srv, peer.Database.DataDir)
	case dr.ActionPromote:
		_, peer, err := slotOf(m, s.Peer)
		if err != nil {
			return "", err
		}
		if _, role, _, _ := dbState(ctx, peer); role == dr.RoleWriter {
			return "", fmt.Errorf("localdr: promote %s: %s is still a running writer; two writable regions are never allowed: fence it first", s.Region, s.Peer)
		}
		start := time.Now()
		if err := srv.Promote(ctx); err != nil {
			return "", fmt.Errorf("localdr: promote %s: %w", s.Region, err)
		}
		if err := m.SetWriter(slot); err != nil {
			return "", fmt.Errorf("localdr: record roles: %w", err)
		}
		if err := m.Save(); err != nil {
			return "", fmt.Errorf("localdr: record roles: %w", err)
		}
		return fmt.Sprintf("%s promoted in %s (%s)", r.Database.Name, time.Since(start).Round(time.Millisecond), s.Mode), nil
	case dr.ActionRebuildStandby:
		_, peer, err := slotOf(m, s.Peer)
		if err != nil {
			return "", err
		}
		return rebuild(ctx, srv, peer.Database.DataDir)
	case dr.ActionUnfence:
		return b.ensureProcessor(ctx, m, slot)
	case dr.ActionWaitTraffic:
		return b.waitTraffic(ctx, m.Router.URL, s.Region)
	case dr.ActionVerify:
		return b.verify(ctx, m, r, opID)
	case dr.ActionEnforceRPO:
		return b.enforceRPO(ctx, m, slot, srv)
	case dr.ActionRelaxRPO:
		return b.relaxRPO(ctx, m, slot, srv)
	}
	return "", fmt.Errorf("localdr: unknown action %q", s.Action)
}

var _ dr.Backend = (*Backend)(nil)
