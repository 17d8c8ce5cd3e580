package env

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"net/netip"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/netns"
)

func testManifest(dir string) *Manifest {
	return &Manifest{
		StateDir: dir,
		Suffix:   "local",
		Moto:     Moto{Endpoint: "http://127.0.0.1:5000", Port: 5000, PID: 10},
		Regions: map[Slot]*Region{
			SlotPrimary: {Slot: SlotPrimary, Name: "us-east-1",
				Database:  Database{Name: "primary", Port: 5433, DSN: "postgres://postgres@127.0.0.1:5433/payments", Role: RoleWriter},
				Processor: Processor{URL: "http://127.0.0.1:8081", Port: 8081, Env: map[string]string{"PAYDR_REGION": "us-east-1"}}},
			SlotSecondary: {Slot: SlotSecondary, Name: "us-west-2",
				Database: Database{Name: "secondary", Port: 5434, Role: RoleStandby}},
		},
		Router:  Router{URL: "http://127.0.0.1:8080", HealthInterval: Duration(1500 * time.Millisecond), FailureThreshold: 3, Primary: SlotPrimary, Secondary: SlotSecondary},
		Outputs: nil,
		Gaps:    []string{"a gap"},
	}
}

func TestManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m := testManifest(dir)
	m.Outputs = nil
	if err := m.Save(); err != nil {
		t.Fatalf("Save error = %v", err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load error = %v", err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("Load(Save(m)) mismatch (-want +got):\n%s", diff)
	}
	if w, ok := got.Writer(); !ok || w != SlotPrimary {
		t.Errorf("Writer() = %q, %v, want primary, true", w, ok)
	}
}

func TestManifestWriterMoves(t *testing.T) {
	dir := t.TempDir()
	m := testManifest(dir)
	m.Outputs = nil
	m.Regions[SlotPrimary].Database.Role = RoleStandby
	m.Regions[SlotSecondary].Database.Role = RoleWriter
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load error = %v", err)
	}
	if w, _ := got.Writer(); w != SlotSecondary {
		t.Errorf("Writer() = %q after promotion, want secondary", w)
	}
	if got.Regions[SlotPrimary].Processor.Env["PAYDR_REGION"] != "us-east-1" {
		t.Errorf("the primary slot's processor moved with the writer")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errors.Is(err, ErrNoManifest) {
		t.Errorf("Load(empty dir) = %v, want ErrNoManifest", err)
	}
	m := testManifest(dir)
	m.Outputs = nil
	m.Regions[SlotSecondary].Database.Role = RoleWriter
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "2 slots hold the writer") {
		t.Errorf("Load(two writers) = %v, want an error naming 2 writers", err)
	}
}

func TestDurationJSON(t *testing.T) {
	var d Duration
	for in, want := range map[string]time.Duration{`"1.5s"`: 1500 * time.Millisecond, `2000000000`: 2 * time.Second} {
		if err := d.UnmarshalJSON([]byte(in)); err != nil || time.Duration(d) != want {
			t.Errorf("UnmarshalJSON(%s) = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	if b, _ := Duration(time.Second).MarshalJSON(); string(b) != `"1s"` {
		t.Errorf("MarshalJSON(1s) = %s, want \"1s\"", b)
	}
}

// TestManifestFaultProxy: env.json has no fault_proxy without paydr up
// --fault-proxy, and the processors' endpoint follows the proxy when there
// is one.
func TestManifestFaultProxy(t *testing.T) {
	dir := t.TempDir()
	m := testManifest(dir)
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(Path(dir))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "fault_proxy") {
		t.Errorf("env.json without a fault proxy mentions fault_proxy:\n%s", b)
	}
	if got := m.AWSEndpoint(); got != m.Moto.Endpoint {
		t.Errorf("AWSEndpoint() without a fault proxy = %q, want moto's %q", got, m.Moto.Endpoint)
	}

	m.FaultProxy = &FaultProxy{URL: "http://127.0.0.1:5001", ControlURL: "http://127.0.0.1:5001/_faultproxy/rules", Upstream: m.Moto.Endpoint,
		Port: 5001, PID: 11, PIDFile: dir + "/run/fault-proxy.pid", LogPath: dir + "/logs/fault-proxy.log", Command: []string{"paydr", "fault-proxy"}}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load error = %v", err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("Load(Save(m)) mismatch (-want +got):\n%s", diff)
	}
	if got := got.AWSEndpoint(); got != "http://127.0.0.1:5001" {
		t.Errorf("AWSEndpoint() with a fault proxy = %q, want the proxy http://127.0.0.1:5001", got)
	}

	m.FaultProxy.ControlURL = ""
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "fault_proxy") {
		t.Errorf("Load(fault proxy without control URL) = %v, want an error naming fault_proxy", err)
	}
}

func TestSetWriter(t *testing.T) {
	m := testManifest(t.TempDir())
	if err := m.SetWriter(SlotSecondary); err != nil {
		t.Fatalf("SetWriter(secondary) error = %v", err)
	}
	got := map[Slot]DBRole{SlotPrimary: m.Regions[SlotPrimary].Database.Role, SlotSecondary: m.Regions[SlotSecondary].Database.Role}
	if diff := cmp.Diff(map[Slot]DBRole{SlotPrimary: RoleStandby, SlotSecondary: RoleWriter}, got); diff != "" {
		t.Errorf("roles after SetWriter(secondary) mismatch (-want +got):\n%s", diff)
	}
	if err := m.Validate(); err != nil {
		t.Errorf("Validate() after SetWriter = %v, want nil", err)
	}
	if err := m.SetWriter("tertiary"); err == nil || !strings.Contains(err.Error(), "not a slot") {
		t.Errorf("SetWriter(tertiary) = %v, want an error saying it is not a slot", err)
	}
	delete(m.Regions, SlotPrimary)
	if err := m.SetWriter(SlotSecondary); err == nil || !strings.Contains(err.Error(), "regions.primary is missing") {
		t.Errorf("SetWriter with no primary region = %v, want an error naming regions.primary", err)
	}
}

// TestLayout pins where things live in a state directory: paydr down, DR
// operations and scripts find them there.
func TestLayout(t *testing.T) {
	l := Layout{Root: "/s"}
	for _, tc := range []struct {
		name, got, want string
	}{
		{"Manifest", l.Manifest(), "/s/env.json"},
		{"MotoDir", l.MotoDir(), "/s/moto"},
		{"DataDir", l.DataDir(SlotSecondary), "/s/pg/secondary"},
		{"StackDir", l.StackDir("TapStacklocal"), "/s/stack/stacks/TapStacklocal"},
		{"Applied", l.Applied("/s/stack/stacks/TapStacklocal"), "/s/stack/stacks/TapStacklocal/paydr-applied.json"},
		{"TerraformLog", l.TerraformLog(), "/s/logs/terraform.log"},
		{"ProcessorLog", l.ProcessorLog(SlotPrimary), "/s/logs/processor-primary.log"},
		{"ProcessorPID", l.ProcessorPID(SlotPrimary), "/s/run/processor-primary.pid"},
		{"RouterLog", l.RouterLog(), "/s/logs/router.log"},
		{"RouterPID", l.RouterPID(), "/s/run/router.pid"},
		{"FaultProxyLog", l.FaultProxyLog(), "/s/logs/fault-proxy.log"},
		{"FaultProxyPID", l.FaultProxyPID(), "/s/run/fault-proxy.pid"},
		{"DRJournalDir", l.DRJournalDir(), "/s/dr/journal"},
		{"DRLock", l.DRLock(), "/s/dr/lock"},
		{"PreservedDir", l.PreservedDir(), "/s/dr/preserved"},
	} {
		if tc.got != tc.want {
			t.Errorf("Layout{/s}.%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestManifestRoundTripWithNetwork(t *testing.T) {
	dir := t.TempDir()
	m := testManifest(dir)
	f, err := netns.New(dir, "primary", "secondary")
	if err != nil {
		t.Fatal(err)
	}
	f.Subnet = netip.MustParsePrefix("10.130.7.0/24")
	f.Gateway = netip.MustParseAddr("10.130.7.1")
	f.Members[0].Address = netip.MustParseAddr("10.130.7.2")
	f.Members[1].Address = netip.MustParseAddr("10.130.7.3")
	m.Network = f
	for i, s := range Slots {
		m.Regions[s].Namespace, m.Regions[s].Address = f.Members[i].Namespace, f.Members[i].Address.String()
	}
	if err := m.Save(); err != nil {
		t.Fatalf("Save error = %v", err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load error = %v", err)
	}
	addrs := cmp.Options{cmp.Comparer(func(a, b netip.Addr) bool { return a == b }), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })}
	if diff := cmp.Diff(m, got, addrs); diff != "" {
		t.Errorf("Load(Save(m)) mismatch (-want +got):\n%s", diff)
	}
	if h := got.Regions[SlotSecondary].Host(); h != "10.130.7.3" {
		t.Errorf("Host() = %s, want the region address", h)
	}

	m.Regions[SlotPrimary].Address = "10.130.7.9"
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "regions.primary is in") {
		t.Errorf("Validate() with a region off its member = %v, want the mismatch named", err)
	}
	m.Network = nil
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "there is no network") {
		t.Errorf("Validate() with addresses but no network = %v, want an error", err)
	}
}
