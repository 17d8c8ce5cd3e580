package localdr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"paydr/internal/dr/drill"
	"paydr/internal/local/env"
	"paydr/internal/local/netns"
	"paydr/internal/local/pg"
)

// partition is the drill fault drill.FaultPartition: it cuts the region's
// links to the fabric (netns.Fabric.Partition: its host-side veth goes
// down), so neither the host, the router nor the other region reaches it,
// nor it them (replication stops, the emulator is out of reach), while its
// database and processor keep running and keep serving whoever is inside
// the region (DrillEnv.InRegionClient). Unlike cut-region, the old writer
// stays alive and can act on its own: the case fencing must handle.
//
// The fault counts only once, from the host, the region's processor does
// not answer /health and its database takes no connection. The lift heals
// the link. It needs an environment brought up with network namespaces.
func (e *DrillEnv) partition(ctx context.Context, slot env.Slot, r *env.Region, srv *pg.Server) (func(context.Context) error, error) {
	m, err := e.b.manifest()
	if err != nil {
		return nil, err
	}
	f, err := fabricOf(m, r)
	if err != nil {
		return nil, fmt.Errorf("localdr: inject partition: %w", err)
	}
	if err := f.Partition(ctx, string(slot)); err != nil {
		return nil, fmt.Errorf("localdr: inject partition: %w", err)
	}
	heal := func(ctx context.Context) error { return f.Heal(ctx, string(slot)) }
	fail := func(err error) (func(context.Context) error, error) {
		if herr := heal(context.WithoutCancel(ctx)); herr != nil {
			err = fmt.Errorf("%w; healing again: %v", err, herr)
		}
		return nil, fmt.Errorf("localdr: inject partition: %w", err)
	}
	if e.answers(ctx, r.Processor.URL) {
		return fail(fmt.Errorf("processor of %s at %s still answers /health from the host with its link down", r.Name, r.Processor.URL))
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = srv.InRecovery(qctx)
	cancel()
	if err == nil {
		return fail(fmt.Errorf("database of %s at %s:%d still answers from the host with its link down", r.Name, srv.Host(), srv.Port()))
	}
	if !srv.Running() {
		return fail(fmt.Errorf("database of %s is not running: a partition must leave it alive", r.Name))
	}
	return heal, nil
}

// fabricOf returns the environment's fabric, refusing, with what to do,
// an environment without one: there a region cannot be cut off while it
// runs.
func fabricOf(m *env.Manifest, r *env.Region) (*netns.Fabric, error) {
	if m.Network == nil || r.Namespace == "" {
		return nil, errors.New("this environment runs without network namespaces, so a region cannot be cut off while it runs; run paydr down, then paydr up --netns on as root (or drill cut-region, which freezes the region instead)")
	}
	return m.Network, nil
}

// InRegionClient implements drill.InRegionEnv: the region's processor at
// its own address, and a client whose connections start inside the
// region's network namespace, so it reaches the processor while the region
// is partitioned.
func (e *DrillEnv) InRegionClient(region string) (string, *http.Client, error) {
	m, err := e.b.manifest()
	if err != nil {
		return "", nil, err
	}
	_, r, err := slotOf(m, region)
	if err != nil {
		return "", nil, err
	}
	if r.Namespace == "" {
		return "", nil, fmt.Errorf("localdr: in-region client: %s runs in the host's network namespace; bring the environment up with --netns on", region)
	}
	return r.Processor.URL, r.Namespace.HTTPClient(0), nil
}

var _ drill.InRegionEnv = (*DrillEnv)(nil)
