package env

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"paydr/internal/local/netns"
)

// File is the manifest's file name inside the state directory.
const File = "env.json"

// Version is the version of the manifest format this package writes. A
// manifest of another version is refused by Load.
const Version = 1

// DefaultStateDir is the state directory, relative to the working directory,
// used when neither --state-dir nor PAYDR_STATE_DIR is given.
const DefaultStateDir = ".paydr/local"

// EnvStateDir names the environment variable that sets the state directory.
const EnvStateDir = "PAYDR_STATE_DIR"

// ErrNoManifest is matched (errors.Is) by the error Load returns when
// the state directory holds no manifest: no environment was brought up there.
var ErrNoManifest = errors.New("no local environment")

// Slot is a region's place in the pair as the stack was deployed: "primary"
// (us-east-1 by default) or "secondary" (us-west-2). Slots never change; the
// database role inside a slot does (see DBRole). The processor of a slot
// always talks to the database of the same slot.
type Slot string

// The two slots.
const (
	SlotPrimary   Slot = "primary"
	SlotSecondary Slot = "secondary"
)

// Slots lists the slots in order: primary, then secondary.
var Slots = []Slot{SlotPrimary, SlotSecondary}

// Other returns the other slot of the pair.
func (s Slot) Other() Slot {
	if s == SlotPrimary {
		return SlotSecondary
	}
	return SlotPrimary
}

// DBRole is what a slot's database currently is.
type DBRole string

// The database roles. Exactly one slot holds the writer while the
// environment is healthy; DR operations change which.
const (
	// RoleWriter accepts writes (the Aurora writer region).
	RoleWriter DBRole = "writer"
	// RoleStandby is a read-only streaming replica of the writer (the Aurora
	// secondary region).
	RoleStandby DBRole = "standby"
)

// Manifest is env.json: everything paydr up started and where, for paydr
// down, paydr status, DR operations and scripts. paydr up writes it once the
// environment is ready; DR operations move the writer with SetWriter and
// save it with Save.
type Manifest struct {
	// Version is the manifest format (the constant Version).
	Version int `json:"version"`
	// StateDir is the absolute state directory holding data dirs, logs, pid
	// files, the Terraform working directory and this file.
	StateDir string `json:"state_dir"`
	// Suffix is the environment suffix of the stack (default "local").
	Suffix string `json:"suffix"`
	// CreatedAt is when paydr up first wrote the manifest; UpdatedAt when it
	// was last saved.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Moto is the AWS API emulator serving both regions.
	Moto Moto `json:"moto"`
	// FaultProxy is the fault proxy in front of Moto that paydr up
	// --fault-proxy runs; nil (absent from env.json) without the flag.
	// AWSEndpoint says which of the two local clients use.
	FaultProxy *FaultProxy `json:"fault_proxy,omitempty"`
	// Network is the fabric of network namespaces the regions run in
	// (package netns): a bridge in the host namespace with a private /24,
	// its address (Gateway) where the host's services (Moto, FaultProxy)
	// listen, and one namespace per slot, its members named by slot. Nil
	// (absent) when paydr up ran with --netns off: then everything listens
	// on the host's 127.0.0.1 and a region cannot be partitioned.
	Network *netns.Fabric `json:"network,omitempty"`
	// Regions holds both slots, keyed "primary" and "secondary".
	Regions map[Slot]*Region `json:"regions"`
	// Router is the local failover router standing in for Route 53.
	Router Router `json:"router"`
	// RPO is the bound on loss enforced on the writer's commits (paydr up
	// --rpo-bound) and the slots it is enforced on; nil (absent) for an
	// environment brought up before paydr had one: no bound.
	RPO *RPO `json:"rpo,omitempty"`
	// Stack is the synthesized, applied Terraform configuration.
	Stack Stack `json:"stack"`
	// Outputs are the Terraform outputs after apply, as Terraform printed
	// them (strings, lists), keyed by output name such as
	// "primary_function_name".
	Outputs map[string]json.RawMessage `json:"terraform_outputs"`
	// Gaps are the emulator gaps the local target took: what it leaves out
	// or does differently, one line each (stack.Stack.Notes and
	// stack.LocalGaps).
	Gaps []string `json:"gaps"`
}

// Moto records the emulator process.
type Moto struct {
	// Endpoint is the URL of every AWS service in both regions, such as
	// "http://127.0.0.1:43211".
	Endpoint string `json:"endpoint"`
	// Port is the TCP port on 127.0.0.1.
	Port int `json:"port"`
	// PID is the moto_server process (leader of its process group).
	PID int `json:"pid"`
	// LogPath is moto_server's log.
	LogPath string `json:"log_path"`
	// StateDir is the directory holding moto's pid file (moto.Open).
	StateDir string `json:"state_dir"`
	// IAM holds the identities of each component once the emulator
	// enforces IAM; nil (absent) when it does not (paydr up --iam off).
	IAM *IAM `json:"iam,omitempty"`
}

// FaultProxy records the fault proxy process (package faultproxy, run as
// paydr fault-proxy): a reverse proxy in front of the emulator that refuses,
// black-holes, delays or throttles the requests signed for a region, by the
// rules set through its control API. It starts with no rules.
type FaultProxy struct {
	// URL is the AWS endpoint of both regions through the proxy, such as
	// "http://127.0.0.1:43212": the processors' PAYDR_AWS_ENDPOINT, and the
	// --endpoint to give paydr dr commands that should see its faults.
	URL string `json:"url"`
	// ControlURL is the control API's rules, URL+"/_faultproxy/rules": GET
	// lists them, PUT replaces them with a JSON list of faultproxy.Rule
	// (such as [{"region":"us-east-1","fault":"blackhole"}]), DELETE
	// removes them all. URL+"/_faultproxy/requests" lists the last signed
	// requests seen.
	ControlURL string `json:"control_url"`
	// Upstream is the emulator endpoint it forwards to (Moto.Endpoint).
	Upstream string `json:"upstream"`
	// Port is the TCP port on 127.0.0.1.
	Port int `json:"port"`
	// PID is the proxy process (leader of its own session and process
	// group).
	PID int `json:"pid"`
	// PIDFile is the file holding PID, in the state directory.
	PIDFile string `json:"pid_file"`
	// LogPath is its log.
	LogPath string `json:"log_path"`
	// Command is the command line it was started with.
	Command []string `json:"command"`
}

// Region is one slot: an AWS region with its database and processor.
type Region struct {
	// Slot is "primary" or "secondary" (the key in Manifest.Regions).
	Slot Slot `json:"slot"`
	// Name is the AWS region name, such as "us-east-1".
	Name string `json:"name"`
	// Namespace is the network namespace the slot's database and processor
	// run in, and Address the slot's address on the fabric, which they
	// listen on: Network's member of this slot. Both are empty without
	// Network; then Host() is 127.0.0.1.
	Namespace netns.Namespace `json:"namespace,omitempty"`
	Address   string          `json:"address,omitempty"`
	// Database is the slot's PostgreSQL server.
	Database Database `json:"database"`
	// Processor is the slot's payment processor.
	Processor Processor `json:"processor"`
	// RPOGuard is the slot's RPO guard (paydr rpo-guard); nil when none
	// was started.
	RPOGuard *RPOGuard `json:"rpo_guard,omitempty"`
}

// Database records one PostgreSQL server standing in for a region's Aurora
// cluster.
type Database struct {
	// Name is the server's name: its application_name and replication slot
	// name when it is a standby.
	Name string `json:"name"`
	// DataDir is the absolute data directory (pg.Open takes it).
	DataDir string `json:"data_dir"`
	// Port is the TCP port on the region's Host().
	Port int `json:"port"`
	// DSN is the connection URL of the paydr database as superuser.
	DSN string `json:"dsn"`
	// Database is the database name inside the server holding the ledger.
	Database string `json:"database"`
	// PID is the postmaster when the manifest was written (pg.Open reads the
	// live one from postmaster.pid).
	PID int `json:"pid"`
	// LogPath is the server's log.
	LogPath string `json:"log_path"`
	// Role is what the server is now: writer or standby.
	Role DBRole `json:"role"`
}

// Processor records one payment processor process.
type Processor struct {
	// URL is its base URL, such as "http://127.0.0.1:8081" (the region's
	// Host()); GET URL+"/health".
	URL string `json:"url"`
	// Port is the TCP port on the region's Host().
	Port int `json:"port"`
	// PID is the process (leader of its own session and process group).
	PID int `json:"pid"`
	// PIDFile is the file holding PID, in the state directory.
	PIDFile string `json:"pid_file"`
	// LogPath is its stdout and stderr.
	LogPath string `json:"log_path"`
	// Command is the command line it was started with.
	Command []string `json:"command"`
	// Env is the PAYDR_* environment it was started with (PAYDR_REGION,
	// PAYDR_DB_DSN, PAYDR_SESSIONS_TABLE, PAYDR_EVENT_BUS,
	// PAYDR_AWS_ENDPOINT, PAYDR_LISTEN, ...) and, when the emulator
	// enforces IAM, its role's credentials (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; see IAM). Restarting it
	// with the same Command and Env restores it.
	Env map[string]string `json:"env"`
}

// RPO is the environment's bound on loss, which each region's RPO guard
// (package rpoguard) enforces: once the oldest commit the standby has not
// flushed is about Bound old, the writer's commits wait for the standby
// until it catches up, so losing the writer region loses at most Bound of
// acknowledged payments.
type RPO struct {
	// Bound is the loss window not to exceed; 0 is RPO-0: every commit
	// waits for the standby (synchronous replication).
	Bound Duration `json:"bound"`
	// Enforced lists the slots whose writes the bound is enforced on. paydr
	// up enforces it on the writer's slot; dr relax-rpo removes a slot,
	// dr enforce-rpo adds one.
	Enforced []Slot `json:"enforced,omitempty"`
}

// Enforces reports whether the bound is enforced on slot s's writes; false
// for a nil RPO.
func (r *RPO) Enforces(s Slot) bool { return r != nil && slices.Contains(r.Enforced, s) }

// SetEnforced records whether the bound is enforced on slot s's writes,
// keeping Enforced in slot order. It changes r only; Manifest.Save writes
// it.
func (r *RPO) SetEnforced(s Slot, on bool) {
	var out []Slot
	for _, x := range Slots {
		if x == s && on || x != s && r.Enforces(x) {
			out = append(out, x)
		}
	}
	r.Enforced = out
}

// RPOGuard records one region's RPO guard process (paydr rpo-guard).
type RPOGuard struct {
	// PID is the process (leader of its own session and process group).
	PID int `json:"pid"`
	// PIDFile is the file holding PID, in the state directory.
	PIDFile string `json:"pid_file"`
	// LogPath is its log: a line for each change it makes.
	LogPath string `json:"log_path"`
	// Command is the command line it was started with.
	Command []string `json:"command"`
}

// Router records the failover router process.
type Router struct {
	// URL is the one address clients call, such as "http://127.0.0.1:8080";
	// status at URL+"/_router/status", events at URL+"/_router/events".
	URL string `json:"url"`
	// Port is the TCP port on 127.0.0.1.
	Port int `json:"port"`
	// PID is the router process.
	PID int `json:"pid"`
	// PIDFile is the file holding PID, in the state directory.
	PIDFile string `json:"pid_file"`
	// LogPath is its log.
	LogPath string `json:"log_path"`
	// Command is the command line it was started with.
	Command []string `json:"command"`
	// HealthInterval is the time between health checks (Route 53
	// request_interval, shortened locally).
	HealthInterval Duration `json:"health_interval"`
	// FailureThreshold is the number of consecutive failed checks that make
	// a region unhealthy (Route 53 failure_threshold).
	FailureThreshold int `json:"failure_threshold"`
	// Primary and Secondary are the slots the router's primary and secondary
	// targets are: the processors of those slots.
	Primary   Slot `json:"primary"`
	Secondary Slot `json:"secondary"`
}

// Stack records the synthesized stack and its Terraform working directory.
type Stack struct {
	// Name is the stack name, such as "TapStacklocal".
	Name string `json:"name"`
	// Dir is the Terraform working directory holding cdk.tf.json, the
	// processor zip and the local state.
	Dir string `json:"dir"`
	// File is the synthesized cdk.tf.json.
	File string `json:"file"`
	// StatePath is the local Terraform state file.
	StatePath string `json:"state_path"`
	// LogPath is the log of terraform init and apply.
	LogPath string `json:"log_path"`
	// Hash is the SHA-256 of cdk.tf.json and the processor zip that were
	// applied; paydr up skips apply when it is unchanged and the emulator
	// still holds the resources.
	Hash string `json:"hash"`
	// Resources is the number of resources in the applied state.
	Resources int `json:"resources"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("2s").
type Duration time.Duration

// MarshalJSON writes d as a string such as "2s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string, or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: %s is neither a duration string nor nanoseconds", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Path returns the manifest's path in stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, File) }

// StateDirFromEnv returns $PAYDR_STATE_DIR, or DefaultStateDir when unset.
func StateDirFromEnv() string {
	if v := os.Getenv(EnvStateDir); v != "" {
		return v
	}
	return DefaultStateDir
}

// Load reads and checks stateDir's env.json. When there is none, the error
// matches ErrNoManifest.
func Load(stateDir string) (*Manifest, error) {
	path := Path(stateDir)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("local: load manifest: %s: %w; run paydr up (or pass its --state-dir)", path, ErrNoManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("local: load manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("local: load manifest: parse %s: %w; run paydr down and paydr up to recreate it", path, err)
	}
	if m.Version != Version {
		return nil, fmt.Errorf("local: load manifest: %s has version %d, this paydr reads %d; run paydr down and paydr up to recreate it", path, m.Version, Version)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("local: load manifest: %s: %w", path, err)
	}
	return &m, nil
}

// Validate checks that the manifest names both slots, each with its region
// name, and exactly one writer, and that a fault proxy, when recorded, has
// its URLs.
func (m *Manifest) Validate() error {
	var errs []error
	for _, s := range Slots {
		r := m.Regions[s]
		if r == nil {
			errs = append(errs, fmt.Errorf("regions.%s is missing", s))
			continue
		}
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("regions.%s.name is empty", s))
		}
		if r.Database.Role != RoleWriter && r.Database.Role != RoleStandby {
			errs = append(errs, fmt.Errorf("regions.%s.database.role is %q, want writer or standby", s, r.Database.Role))
		}
	}
	if m.FaultProxy != nil && (m.FaultProxy.URL == "" || m.FaultProxy.ControlURL == "") {
		errs = append(errs, errors.New("fault_proxy.url or fault_proxy.control_url is empty"))
	}
	errs = append(errs, m.validateNetwork()...)
	if len(errs) == 0 {
		if w := m.Writers(); len(w) != 1 {
			errs = append(errs, fmt.Errorf("%d slots hold the writer (%v), want exactly 1", len(w), w))
		}
	}
	return errors.Join(errs...)
}

// Host returns the address the region's database and processor listen on:
// Address with a Network, else 127.0.0.1.
func (r *Region) Host() string {
	if r.Address != "" {
		return r.Address
	}
	return "127.0.0.1"
}

// validateNetwork checks that Network, when recorded, has a member for each
// slot whose namespace and address the slot's region repeats.
func (m *Manifest) validateNetwork() []error {
	var errs []error
	if m.Network == nil {
		for _, s := range Slots {
			if r := m.Regions[s]; r != nil && (r.Namespace != "" || r.Address != "") {
				errs = append(errs, fmt.Errorf("regions.%s has a namespace or address but there is no network", s))
			}
		}
		return errs
	}
	if !m.Network.Gateway.IsValid() || !m.Network.Subnet.IsValid() {
		errs = append(errs, errors.New("network.gateway or network.subnet is empty"))
	}
	for _, s := range Slots {
		r := m.Regions[s]
		mem, err := m.Network.Member(string(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("network.members: no member %s", s))
			continue
		}
		if r != nil && (r.Namespace != mem.Namespace || r.Address != mem.Address.String()) {
			errs = append(errs, fmt.Errorf("regions.%s is in %q at %s, network.members says %q at %s", s, r.Namespace, r.Address, mem.Namespace, mem.Address))
		}
	}
	return errs
}

// Region returns the slot's region, or nil.
func (m *Manifest) Region(s Slot) *Region { return m.Regions[s] }

// Writers returns the slots whose database is recorded as the writer, in
// slot order.
func (m *Manifest) Writers() []Slot {
	var out []Slot
	for _, s := range Slots {
		if r := m.Regions[s]; r != nil && r.Database.Role == RoleWriter {
			out = append(out, s)
		}
	}
	return out
}

// Writer returns the slot recorded as holding the writer, and false unless
// exactly one does.
func (m *Manifest) Writer() (Slot, bool) {
	w := m.Writers()
	if len(w) != 1 {
		return "", false
	}
	return w[0], true
}

// SetWriter records the database of slot w as the writer and the other
// slot's as its standby, as a promotion leaves them. It changes m only;
// Save writes it.
func (m *Manifest) SetWriter(w Slot) error {
	if w != SlotPrimary && w != SlotSecondary {
		return fmt.Errorf("local: manifest: set writer: %q is not a slot", w)
	}
	for _, s := range Slots {
		if m.Regions[s] == nil {
			return fmt.Errorf("local: manifest: set writer: regions.%s is missing", s)
		}
	}
	m.Regions[w].Database.Role = RoleWriter
	m.Regions[w.Other()].Database.Role = RoleStandby
	return nil
}

// AWSEndpoint returns the endpoint the local clients of the emulator use
// (the processors, and whatever else should see the fault proxy's faults):
// FaultProxy.URL when paydr up runs one, else Moto.Endpoint. Terraform
// always applies straight to Moto.Endpoint.
func (m *Manifest) AWSEndpoint() string {
	if m.FaultProxy != nil && m.FaultProxy.URL != "" {
		return m.FaultProxy.URL
	}
	return m.Moto.Endpoint
}

// Output decodes the Terraform output name into v (a *string, *[]string, ...).
func (m *Manifest) Output(name string, v any) error {
	raw, ok := m.Outputs[name]
	if !ok {
		return fmt.Errorf("local: manifest: no terraform output %q", name)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("local: manifest: terraform output %q: %w", name, err)
	}
	return nil
}

// OutputString returns the string Terraform output name, or "" when there is
// none or it is not a string.
func (m *Manifest) OutputString(name string) string {
	var s string
	if m.Output(name, &s) != nil {
		return ""
	}
	return s
}

// OutputNames returns the names of the Terraform outputs, sorted.
func (m *Manifest) OutputNames() []string {
	names := make([]string, 0, len(m.Outputs))
	for k := range m.Outputs {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Save writes the manifest to StateDir/env.json atomically (a temporary file
// renamed over it), setting UpdatedAt.
func (m *Manifest) Save() error {
	if m.StateDir == "" {
		return errors.New("local: save manifest: StateDir is empty")
	}
	m.Version = Version
	m.UpdatedAt = time.Now().UTC()
	if m.CreatedAt.IsZero() {
		m.CreatedAt = m.UpdatedAt
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("local: save manifest: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(m.StateDir, File+".*")
	if err != nil {
		return fmt.Errorf("local: save manifest: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("local: save manifest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("local: save manifest: %w", err)
	}
	if err := os.Rename(tmp.Name(), Path(m.StateDir)); err != nil {
		return fmt.Errorf("local: save manifest: %w", err)
	}
	return nil
}
