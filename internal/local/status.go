package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/moto"
	"paydr/internal/local/netns"
	"paydr/internal/local/pg"
)

// Component is the observed state of one running piece.
type Component struct {
	// Name is such as "moto", "router", "database primary", "processor secondary".
	Name string `json:"name"`
	// Running is whether its process is alive.
	Running bool `json:"running"`
	// PID is its process, when alive.
	PID int `json:"pid,omitempty"`
	// Address is its URL or host:port.
	Address string `json:"address"`
	// State is what a probe found: "writer", "standby (lag 0 B)", "/health 200", ...
	State string `json:"state,omitempty"`
	// Namespace is the network namespace it runs in; empty is the host's.
	Namespace netns.Namespace `json:"namespace,omitempty"`
	// Log is its log file.
	Log string `json:"log,omitempty"`
}

// Status is what paydr status reports.
type Status struct {
	StateDir string `json:"state_dir"`
	// Up is true when every component runs and traffic reaches a healthy writer.
	Up bool `json:"up"`
	// Writer is the slot recorded as holding the writer.
	Writer env.Slot `json:"writer,omitempty"`
	// Routing is where the router sends traffic, such as "primary (us-east-1)".
	Routing    string      `json:"routing,omitempty"`
	Components []Component `json:"components"`
	// Partitioned lists the slots whose namespace is cut off from the
	// fabric (the partition fault, or a missing link): their processes may
	// run, but nothing outside the region reaches them.
	Partitioned []env.Slot `json:"partitioned,omitempty"`
	// Manifest is env.json, when there is one.
	Manifest *env.Manifest `json:"manifest,omitempty"`
}

// GetStatus probes every component recorded in stateDir's manifest. Without
// a manifest it returns an error matching ErrNoManifest.
func GetStatus(ctx context.Context, stateDir string) (*Status, error) {
	if stateDir == "" {
		stateDir = env.DefaultStateDir
	}
	m, err := env.Load(stateDir)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st := &Status{StateDir: m.StateDir, Manifest: m, Up: true}
	add := func(c Component) {
		if !c.Running {
			st.Up = false
		}
		st.Components = append(st.Components, c)
	}

	c := Component{Name: "moto", Address: m.Moto.Endpoint, Log: m.Moto.LogPath}
	if ms, err := moto.Open(m.Moto.StateDir); err == nil && ms.Running() {
		c.Running, c.PID = true, ms.PID()
		c.State = fmt.Sprintf("%d resources applied (stack %s)", m.Stack.Resources, m.Stack.Name)
	}
	add(c)
	if fp := m.FaultProxy; fp != nil {
		c, answers := faultProxyState(ctx, fp)
		add(c)
		if !answers {
			st.Up = false
		}
	}

	for _, s := range env.Slots {
		r := m.Regions[s]
		db := Component{Name: "database " + string(s), Address: net.JoinHostPort(r.Host(), strconv.Itoa(r.Database.Port)), Namespace: r.Namespace, Log: r.Database.LogPath}
		if srv, err := pg.Open(r.Database.DataDir); err == nil && srv.Running() {
			db.Running, db.PID = true, srv.PID()
			db.State = dbState(ctx, srv, r)
		}
		add(db)
	}
	for _, s := range env.Slots {
		r := m.Regions[s]
		p := Component{Name: "processor " + string(s), Address: r.Processor.URL, Namespace: r.Namespace, Log: r.Processor.LogPath}
		if pid := daemon.ReadPIDFile(r.Processor.PIDFile); daemon.Alive(pid, "serve") {
			p.Running, p.PID = true, pid
			code, body, err := httpStatus(ctx, r.Processor.URL+"/health")
			if err != nil {
				p.State = "/health: " + err.Error()
			} else {
				p.State = fmt.Sprintf("%s /health %d %s", r.Name, code, strings.TrimSpace(string(body)))
			}
		}
		add(p)
	}
	rc := Component{Name: "router", Address: m.Router.URL, Log: m.Router.LogPath}
	if pid := daemon.ReadPIDFile(m.Router.PIDFile); daemon.Alive(pid, "router") {
		rc.Running, rc.PID = true, pid
		if rs, err := routerClient(m.Router.URL).Status(ctx); err != nil {
			rc.State = err.Error()
			st.Up = false
		} else {
			slot := m.Router.Primary
			if string(rs.Active) == string(env.SlotSecondary) {
				slot = m.Router.Secondary
			}
			st.Routing = fmt.Sprintf("%s (%s)", slot, rs.ActiveTarget)
			var hs []string
			for _, t := range rs.Targets {
				hs = append(hs, fmt.Sprintf("%s healthy=%v", t.Position, t.Healthy))
				if t.Position == rs.Active && !t.Healthy {
					st.Up = false
				}
			}
			rc.State = fmt.Sprintf("traffic -> %s; %s; every %dms, threshold %d", st.Routing, strings.Join(hs, ", "), rs.IntervalMillis, rs.FailureThreshold)
			if rs.AllUnhealthy {
				st.Up = false
			}
		}
	}
	add(rc)
	if w, ok := m.Writer(); ok {
		st.Writer = w
	}
	if f := m.Network; f != nil {
		for _, s := range env.Slots {
			if p, err := f.Partitioned(ctx, string(s)); err != nil || p {
				st.Partitioned = append(st.Partitioned, s)
				st.Up = false
			}
		}
	}
	return st, nil
}

// faultProxyState probes the fault proxy: its process and the rules in
// force, and reports whether its control API answers. Rules in force do
// not make the environment degraded; what they take away shows in the
// other components.
func faultProxyState(ctx context.Context, fp *env.FaultProxy) (c Component, answers bool) {
	c = Component{Name: "fault proxy", Address: fp.URL, Log: fp.LogPath}
	pid := daemon.ReadPIDFile(fp.PIDFile)
	if !daemon.Alive(pid, faultProxyCmd) {
		return c, false
	}
	c.Running, c.PID = true, pid
	rules, err := faultProxyClient(fp.URL).Rules(ctx)
	if err != nil {
		c.State = err.Error()
		return c, false
	}
	c.State = fmt.Sprintf("in front of %s; %s", fp.Upstream, describeRules(rules))
	return c, true
}

// dbState describes a running database: its actual role and replication.
func dbState(ctx context.Context, srv *pg.Server, r *env.Region) string {
	in, err := srv.InRecovery(ctx)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	if !in {
		s := "writer"
		if reps, err := srv.ReplicationStatus(ctx); err == nil {
			for _, rp := range reps {
				s += fmt.Sprintf("; replica %s %s, lag %d B %s", rp.ApplicationName, rp.State, rp.LagBytes, rp.ReplayLag)
			}
		}
		if r.Database.Role != env.RoleWriter {
			s += " (manifest says " + string(r.Database.Role) + ")"
		}
		return s
	}
	s := "standby"
	if ss, err := srv.StandbyStatus(ctx); err == nil {
		s += fmt.Sprintf(" (wal receiver %q from port %d)", ss.ReceiverStatus, ss.SenderPort)
	}
	if r.Database.Role != env.RoleStandby {
		s += " (manifest says " + string(r.Database.Role) + ")"
	}
	return s
}

// PrintStatus writes st as a table.
func PrintStatus(w io.Writer, st *Status) {
	state := "UP"
	if !st.Up {
		state = "DEGRADED"
	}
	fmt.Fprintf(w, "paydr local environment in %s: %s", st.StateDir, state)
	if st.Writer != "" {
		fmt.Fprintf(w, "; writer in the %s slot", st.Writer)
	}
	if st.Routing != "" {
		fmt.Fprintf(w, "; traffic -> %s", st.Routing)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tRUNNING\tPID\tADDRESS\tNETNS\tSTATE")
	for _, c := range st.Components {
		pid := "-"
		if c.PID != 0 {
			pid = fmt.Sprint(c.PID)
		}
		run := "no"
		if c.Running {
			run = "yes"
		}
		ns := "-"
		if c.Namespace != "" {
			ns = string(c.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, run, pid, c.Address, ns, c.State)
	}
	tw.Flush()
	for _, s := range st.Partitioned {
		fmt.Fprintf(w, "partitioned: %s is cut off from the bridge (its processes keep running inside its namespace); paydr up heals the link\n", s)
	}
}

// PrintManifest writes what runs where, for people.
func PrintManifest(w io.Writer, m *env.Manifest) {
	fmt.Fprintf(w, "what runs where (%s):\n", env.Path(m.StateDir))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  payments API (router)\t%s\tPOST /payments; status %s/_router/status\n", m.Router.URL, m.Router.URL)
	for _, s := range env.Slots {
		r := m.Regions[s]
		fmt.Fprintf(tw, "  processor %s (%s)\t%s\tpid %d, log %s\n", s, r.Name, r.Processor.URL, r.Processor.PID, r.Processor.LogPath)
	}
	for _, s := range env.Slots {
		r := m.Regions[s]
		fmt.Fprintf(tw, "  database %s (%s)\t%s\t%s, pid %d, log %s\n", s, r.Name, r.Database.DSN, r.Database.Role, r.Database.PID, r.Database.LogPath)
	}
	iamNote := "IAM not enforced (--no-iam)"
	if m.Moto.IAM != nil && m.Moto.IAM.Enforced {
		iamNote = "IAM enforced"
	}
	fmt.Fprintf(tw, "  AWS emulator (moto)\t%s\tpid %d, both regions, %s, log %s\n", m.Moto.Endpoint, m.Moto.PID, iamNote, m.Moto.LogPath)
	if fp := m.FaultProxy; fp != nil {
		fmt.Fprintf(tw, "  AWS fault proxy\t%s\tin front of moto, pid %d, rules %s, log %s\n", fp.URL, fp.PID, fp.ControlURL, fp.LogPath)
	}
	fmt.Fprintf(tw, "  terraform\t%s\t%d resources, log %s\n", m.Stack.Dir, m.Stack.Resources, m.Stack.LogPath)
	tw.Flush()
	printIdentities(w, m)
	printNetwork(w, m)
}

// printIdentities says which identity each component calls the emulator
// as, when it enforces IAM.
func printIdentities(w io.Writer, m *env.Manifest) {
	ids := m.Moto.IAM
	if ids == nil || !ids.Enforced {
		return
	}
	fmt.Fprintf(w, "identities (IAM enforced on moto; credentials in env.json):\n")
	for _, s := range env.Slots {
		fmt.Fprintf(w, "  processor %s: %s\n", s, ids.Processors[s].Identity)
	}
	fmt.Fprintf(w, "  DR commands and drills: %s\n  operator (tests, inspection): %s\n", ids.DR.Identity, ids.Operator.Identity)
}

// printNetwork says where the regions run: each in its namespace, or all
// on the host's 127.0.0.1.
func printNetwork(w io.Writer, m *env.Manifest) {
	f := m.Network
	if f == nil {
		fmt.Fprintf(w, "network: no namespaces, every region on the host's 127.0.0.1 (the partition fault is unavailable)\n")
		return
	}
	fmt.Fprintf(w, "network: bridge %s %s, host services on %s\n", f.Bridge, f.Subnet, f.Gateway)
	for _, s := range env.Slots {
		r := m.Regions[s]
		fmt.Fprintf(w, "  %s (%s): namespace %s, address %s\n", s, r.Name, r.Namespace, r.Address)
	}
}
