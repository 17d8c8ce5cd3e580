package local_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/jackc/pgx/v5"

	"paydr/internal/apikey"
	"paydr/internal/cli"
	"paydr/internal/cli/awsapi"
	"paydr/internal/dr/localdr"
	"paydr/internal/local"
	"paydr/internal/local/env"
	"paydr/internal/local/faultproxy"
	"paydr/internal/local/identity"
	"paydr/internal/local/netns"
	"paydr/internal/local/pg/pgtest"
	"paydr/internal/local/router"
	"paydr/internal/needs"
	"paydr/internal/sessions"
)

// envAsPaydr makes this test binary act as the paydr command, so the
// processes paydr up starts (paydr serve, paydr router, paydr fault-proxy)
// run this very build.
const envAsPaydr = local.EnvTestAsPaydr

func TestMain(m *testing.M) {
	if os.Getenv(envAsPaydr) == "1" {
		os.Exit(cli.Main(awsapi.Backends()))
	}
	// Every test here is parallel, so that TestLocalEnvironment, whose up
	// is mostly the provider's waiting, starts at once instead of after
	// the others (about 40 s of PostgreSQL servers and emulators). With
	// GOMAXPROCS (2 here) as the limit it might start last.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}

// requireTools skips when a tool paydr up needs is missing, or fails when
// CI is set.
func requireTools(t *testing.T) {
	t.Helper()
	exe, _ := os.Executable()
	_, err := local.CheckPrerequisites(exe, true, nil)
	needs.Tool(t, err)
	if testing.Short() {
		t.Skip("skipping the local environment test in -short mode: paydr up takes about 2½ minutes")
	}
}

// logWriter sends progress lines to t.Log.
type logWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line)
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

// TestLocalEnvironment brings the local environment up once, with the fault
// proxy (--fault-proxy, no rules), and checks it through the AWS APIs on the
// emulator, the Terraform outputs, a payment end to end (its AWS calls
// through the proxy), a second up, status and down. TestFaultProxyStep
// covers the proxy step on its own, and paydr up without the flag.
func TestLocalEnvironment(t *testing.T) {
	t.Parallel()
	requireTools(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(pgtest.TempDir(t), "state")
	out := &logWriter{t: t}
	opts := local.UpOptions{
		StateDir:       dir,
		Exe:            exe,
		ExeEnv:         []string{envAsPaydr + "=1"},
		HealthInterval: 500 * time.Millisecond,
		FaultProxy:     true,
		Identities:     identity.Maker{},
		Out:            out,
	}
	// Stop short of go test's own timeout, so a slow bring-up fails cleanly
	// and stops what it started instead of leaving detached processes behind.
	ctx := context.Background()
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
		defer cancel()
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if _, err := local.Down(context.Background(), dir, out); err != nil {
				t.Errorf("Down (cleanup) error = %v", err)
			}
		}
	})
	rep, err := local.Up(ctx, opts)
	if err != nil {
		t.Fatalf("Up error = %v", err)
	}
	m := rep.Manifest
	t.Logf("up in %s", rep.Total)
	for _, s := range rep.Steps {
		t.Logf("  step %-60s %s", s.Name, s.Elapsed.Round(10*time.Millisecond))
	}

	t.Run("manifest", func(t *testing.T) {
		got, err := env.Load(dir)
		if err != nil {
			t.Fatalf("env.Load error = %v", err)
		}
		if w, ok := got.Writer(); !ok || w != env.SlotPrimary {
			t.Errorf("Writer() = %q, %v, want primary, true", w, ok)
		}
		if got.Regions[env.SlotPrimary].Name != "us-east-1" || got.Regions[env.SlotSecondary].Name != "us-west-2" {
			t.Errorf("regions = %s, %s, want us-east-1, us-west-2", got.Regions[env.SlotPrimary].Name, got.Regions[env.SlotSecondary].Name)
		}
		if len(got.Gaps) < 5 {
			t.Errorf("Gaps = %q, want the stack's local gaps and paydr up's workarounds", got.Gaps)
		}
		for _, s := range env.Slots {
			r := got.Regions[s]
			if h, p := r.Processor.Env["PAYDR_DB_HOST"], r.Processor.Env["PAYDR_DB_PORT"]; h != r.Host() || p != strconv.Itoa(r.Database.Port) {
				t.Errorf("%s processor PAYDR_DB_HOST:PORT = %s:%s, want its slot's database %s:%d", s, h, p, r.Host(), r.Database.Port)
			}
		}
		if got.FaultProxy == nil || got.FaultProxy.Upstream != got.Moto.Endpoint {
			t.Fatalf("FaultProxy = %+v, want a proxy in front of moto %s", got.FaultProxy, got.Moto.Endpoint)
		}
		for _, s := range env.Slots {
			if ep := got.Regions[s].Processor.Env["PAYDR_AWS_ENDPOINT"]; ep != got.FaultProxy.URL {
				t.Errorf("%s processor PAYDR_AWS_ENDPOINT = %q, want the fault proxy %q", s, ep, got.FaultProxy.URL)
			}
		}
		if got.Router.FailureThreshold != 3 || time.Duration(got.Router.HealthInterval) != 500*time.Millisecond {
			t.Errorf("router settings = %s/%d, want 500ms/3", time.Duration(got.Router.HealthInterval), got.Router.FailureThreshold)
		}
	})

	t.Run("network", func(t *testing.T) { checkNetwork(t, m) })
	t.Run("aws", func(t *testing.T) { checkAWS(t, m) })
	t.Run("payment end to end", func(t *testing.T) { checkPayment(t, m) })
	t.Run("iam enforced, each component on its role", func(t *testing.T) { checkIAM(t, m) })
	t.Run("processors connect as payment_app over verify-full TLS", func(t *testing.T) { checkDatabaseConnections(t, m) })
	t.Run("processors reach AWS through the fault proxy", func(t *testing.T) { checkThroughProxy(t, m) })
	t.Run("plan after a switchover and a fence moves nothing back and keeps the processors fenced", func(t *testing.T) {
		checkPlansAfterDROperations(t, ctx, m, switchoverCheck, fenceCheck)
	})

	t.Run("up again adopts everything", func(t *testing.T) {
		start := time.Now()
		again, err := local.Up(ctx, opts)
		if err != nil {
			t.Fatalf("second Up error = %v", err)
		}
		if again.Apply != nil {
			t.Errorf("second Up applied again (%d changes); want apply skipped for an unchanged stack", again.Apply.Done)
		}
		for _, s := range env.Slots {
			if a, b := again.Manifest.Regions[s].Processor.PID, m.Regions[s].Processor.PID; a != b {
				t.Errorf("%s processor pid = %d after second up, want %d (adopted)", s, a, b)
			}
		}
		if a, b := again.Manifest.Router.PID, m.Router.PID; a != b {
			t.Errorf("router pid = %d after second up, want %d (adopted)", a, b)
		}
		if a, b := again.Manifest.FaultProxy.PID, m.FaultProxy.PID; a != b {
			t.Errorf("fault proxy pid = %d after second up, want %d (adopted)", a, b)
		}
		t.Logf("second up in %s", time.Since(start).Round(time.Millisecond))
	})

	t.Run("status", func(t *testing.T) {
		st, err := local.GetStatus(ctx, dir)
		if err != nil {
			t.Fatalf("GetStatus error = %v", err)
		}
		var b strings.Builder
		local.PrintStatus(&b, st)
		t.Log("\n" + b.String())
		if !st.Up || st.Writer != env.SlotPrimary || len(st.Components) != 7 {
			t.Errorf("status up=%v writer=%q components=%d, want true primary 7 (with the fault proxy)", st.Up, st.Writer, len(st.Components))
		}
		checkStatus(t, st, m)
	})

	t.Run("down", func(t *testing.T) {
		var pids []int
		var ports []int
		pids = append(pids, m.Moto.PID, m.Router.PID, m.FaultProxy.PID)
		ports = append(ports, m.Moto.Port, m.Router.Port, m.FaultProxy.Port)
		for _, s := range env.Slots {
			r := m.Regions[s]
			pids = append(pids, r.Processor.PID, r.Database.PID)
			if r.RPOGuard != nil {
				pids = append(pids, r.RPOGuard.PID)
			}
			ports = append(ports, r.Processor.Port, r.Database.Port)
		}
		start := time.Now()
		drep, err := local.Down(ctx, dir, out)
		downDone = true
		if err != nil {
			t.Fatalf("Down error = %v", err)
		}
		elapsed := time.Since(start)
		t.Logf("down in %s: %s", elapsed.Round(time.Millisecond), strings.Join(drep.Stopped, ", "))
		if elapsed > 10*time.Second {
			t.Errorf("Down took %s, want under 10s", elapsed)
		}
		wantStopped := 9 // router, 2 processors, 2 rpo guards, fault proxy, 2 databases, moto
		if m.Network != nil {
			wantStopped++ // the namespaces
		}
		if len(drep.Stopped) != wantStopped {
			t.Errorf("Down stopped %d pieces (%v), want %d", len(drep.Stopped), drep.Stopped, wantStopped)
		}
		if m.Network != nil && m.Network.Exists(ctx) {
			t.Errorf("the network namespaces of %s are left after Down", m.Network.Bridge)
		}
		for _, pid := range pids {
			if pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) {
				t.Errorf("pid %d still runs after Down", pid)
			}
		}
		for _, p := range ports {
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 300*time.Millisecond); err == nil {
				c.Close()
				t.Errorf("port %d still accepts connections after Down", p)
			}
		}
		if _, err := env.Load(dir); err == nil {
			t.Errorf("env.Load after Down = nil error, want ErrNoManifest")
		}
	})
}

// checkStatus asserts what status reports of the environment m describes:
// every component running as the process up recorded, the primary slot's
// database the writer and the secondary's its standby, the processors'
// health, the fault proxy in front of moto with no rules, and traffic to
// the primary.
func checkStatus(t *testing.T, st *local.Status, m *env.Manifest) {
	t.Helper()
	p, s := m.Regions[env.SlotPrimary], m.Regions[env.SlotSecondary]
	want := []struct {
		name, address string
		pid           int
		state         string // a prefix of the component's State
	}{
		{"moto", m.Moto.Endpoint, m.Moto.PID, ""},
		{"fault proxy", m.FaultProxy.URL, m.FaultProxy.PID, "in front of " + m.Moto.Endpoint + "; no rules"},
		{"database primary", fmt.Sprintf("%s:%d", p.Host(), p.Database.Port), p.Database.PID, "writer"},
		{"database secondary", fmt.Sprintf("%s:%d", s.Host(), s.Database.Port), s.Database.PID, "standby"},
		{"processor primary", p.Processor.URL, p.Processor.PID, p.Name + " /health 200"},
		{"processor secondary", s.Processor.URL, s.Processor.PID, s.Name + " /health "},
		{"router", m.Router.URL, m.Router.PID, "traffic -> primary (" + p.Name + ")"},
	}
	byName := map[string]local.Component{}
	for _, c := range st.Components {
		byName[c.Name] = c
	}
	for _, w := range want {
		c, ok := byName[w.name]
		if !ok {
			t.Errorf("status has no %q component; components: %+v", w.name, st.Components)
			continue
		}
		if !c.Running || c.PID != w.pid || c.Address != w.address {
			t.Errorf("status %s = running %v pid %d at %s, want running pid %d at %s", w.name, c.Running, c.PID, c.Address, w.pid, w.address)
		}
		if !strings.HasPrefix(c.State, w.state) || strings.Contains(c.State, "manifest says") {
			t.Errorf("status %s state = %q, want it to start with %q (and agree with the manifest)", w.name, c.State, w.state)
		}
	}
	if !strings.HasPrefix(st.Routing, "primary (") {
		t.Errorf("status routing = %q, want primary (...)", st.Routing)
	}
}

// checkThroughProxy asserts that the processors' DynamoDB calls (the
// session written for a payment, the health checks' pings) went through
// the fault proxy, signed for their regions.
func checkThroughProxy(t *testing.T, m *env.Manifest) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen, err := (faultproxy.Client{URL: m.FaultProxy.URL}).Requests(ctx)
	if err != nil {
		t.Fatalf("the proxy's requests: %v", err)
	}
	for _, s := range env.Slots {
		region, n := m.Regions[s].Name, 0
		for _, r := range seen {
			if r.Service == "dynamodb" && r.SignedRegion == region && r.Fault == "" {
				n++
			}
		}
		if n == 0 {
			t.Errorf("the fault proxy saw no DynamoDB request signed for %s among its last %d; want the %s processor's", region, len(seen), s)
		}
	}
	code, body := get(t, m.FaultProxy.ControlURL)
	if code != http.StatusOK || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("GET %s = %d %s, want 200 [] (no rules at start)", m.FaultProxy.ControlURL, code, body)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// post sends body to url's POST /payments with the API key (none when key
// is empty).
func post(t *testing.T, url, key, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/payments", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		apikey.Set(req.Header, key)
	}
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s/payments: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// checkPayment sends a payment through the router, with the API key read
// from the emulator as the processors read it, and follows it into the
// primary ledger, the standby, the session table, and a retry. The same
// payment without the key is refused (401), as on AWS.
func checkPayment(t *testing.T, m *env.Manifest) {
	ctx := context.Background()
	p, s := m.Regions[env.SlotPrimary], m.Regions[env.SlotSecondary]
	key, err := localdr.APIKey(ctx, m, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	if other, err := localdr.APIKey(ctx, m, s.Name); err != nil || other != key {
		t.Errorf("the API key in %s differs from %s's (%v): a failover would change the credential", s.Name, p.Name, err)
	}
	id := fmt.Sprintf("local-e2e-%d", time.Now().UnixNano())
	body := fmt.Sprintf(`{"payment_id":%q,"amount":"12.34","currency":"EUR","session_id":"s-local-e2e"}`, id)
	if status, _, b := post(t, m.Router.URL, "", body); status != http.StatusUnauthorized {
		t.Errorf("POST via router without the API key = %d %s, want 401", status, b)
	}
	status, hdr, first := post(t, m.Router.URL, key, body)
	if status != http.StatusCreated {
		t.Fatalf("POST via router = %d %s, want 201", status, first)
	}
	if got := hdr.Get(router.TargetHeader); got != p.Name {
		t.Errorf("served by %q, want the primary region %q", got, p.Name)
	}

	count := func(dsn string) (int, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, "SELECT count(*) FROM payments WHERE payment_id = $1 AND amount_minor = 1234 AND currency = 'EUR'", id).Scan(&n)
		return n, err
	}
	if n, err := count(p.Database.DSN); err != nil || n != 1 {
		t.Errorf("primary ledger rows for %s = %d, %v; want 1", id, n, err)
	}
	start := time.Now()
	for {
		n, err := count(s.Database.DSN)
		if err == nil && n == 1 {
			t.Logf("on the standby after %s", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("standby ledger rows for %s = %d, %v after 10s; want 1 (replication lag)", id, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	ddb := dynamodb.NewFromConfig(awsConfig(m, p.Name))
	rec, found, err := sessions.New(ddb, m.OutputString("sessions_table_name"), sessions.Options{}).Lookup(ctx, id)
	if err != nil || !found {
		t.Errorf("session table lookup of %s = found %v, %v; want found", id, found, err)
	} else if !bytes.Equal(rec.Response, first) {
		t.Errorf("session table response = %s, want %s", rec.Response, first)
	}

	status, hdr, again := post(t, m.Router.URL, key, body)
	if status != http.StatusCreated || !bytes.Equal(again, first) {
		t.Errorf("retry = %d %s, want 201 with the same bytes %s", status, again, first)
	}
	if hdr.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry Idempotent-Replayed = %q, want true", hdr.Get("Idempotent-Replayed"))
	}
	if n, err := count(p.Database.DSN); err != nil || n != 1 {
		t.Errorf("primary ledger rows for %s after retry = %d, %v; want 1", id, n, err)
	}
}

// checkNetwork asserts where the regions run: with namespaces available
// (root), each region's database and processor in its own namespace,
// listening on the region's address, moto on the bridge's; else all on
// 127.0.0.1.
func checkNetwork(t *testing.T, m *env.Manifest) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := netns.Available(ctx); err != nil {
		if m.Network != nil {
			t.Errorf("Network = %+v although namespaces cannot be made (%v)", m.Network, err)
		}
		t.Skipf("no network namespaces here, regions on 127.0.0.1: %v", err)
	}
	if m.Network == nil {
		t.Fatalf("Network = nil with namespaces available; want --netns auto to use them")
	}
	if want := "http://" + m.Network.Gateway.String() + ":"; !strings.HasPrefix(m.Moto.Endpoint, want) {
		t.Errorf("moto endpoint %s, want on the bridge %s", m.Moto.Endpoint, want)
	}
	for _, s := range env.Slots {
		r := m.Regions[s]
		if r.Namespace == "" || !r.Namespace.Exists() {
			t.Errorf("%s namespace %q does not exist", s, r.Namespace)
			continue
		}
		if !strings.HasPrefix(r.Processor.URL, "http://"+r.Address+":") || !strings.Contains(r.Database.DSN, "@"+r.Address+":") {
			t.Errorf("%s processor %s, database %s; want both on the region address %s", s, r.Processor.URL, r.Database.DSN, r.Address)
		}
		want, err := os.Stat(r.Namespace.Path())
		if err != nil {
			t.Fatal(err)
		}
		for what, pid := range map[string]int{"processor": r.Processor.PID, "database": r.Database.PID} {
			got, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil || !os.SameFile(want, got) {
				t.Errorf("%s %s (pid %d) is not in namespace %s (%v)", s, what, pid, r.Namespace, err)
			}
		}
	}
}

// checkDatabaseConnections: each processor is configured as the
// application role over verify-full TLS with its password in a 0600 file
// (in no environment or env.json); the writer's processor is connected that
// way (pg_stat_ssl); both servers serve TLS; and a plaintext connection as
// the role is refused.
func checkDatabaseConnections(t *testing.T, m *env.Manifest) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	manifest, err := os.ReadFile(env.Path(m.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	var password string
	for _, s := range env.Slots {
		r := m.Regions[s]
		e := r.Processor.Env
		if e["PAYDR_DB_USER"] != "payment_app" || e["PAYDR_DB_CA_FILE"] == "" || e["PAYDR_DB_PASSWORD"] != "" || e["PAYDR_DB_DSN"] != "" {
			t.Errorf("%s processor database settings = user %q, CA %q, password set %v, DSN %q; want payment_app, a CA, the password in a file only",
				s, e["PAYDR_DB_USER"], e["PAYDR_DB_CA_FILE"], e["PAYDR_DB_PASSWORD"] != "", e["PAYDR_DB_DSN"])
		}
		fi, err := os.Stat(e["PAYDR_DB_PASSWORD_FILE"])
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s password file %s: %v, %v; want mode 0600", s, e["PAYDR_DB_PASSWORD_FILE"], fi, err)
		} else if b, err := os.ReadFile(e["PAYDR_DB_PASSWORD_FILE"]); err == nil {
			password = strings.TrimSpace(string(b))
		}
		conn, err := pgx.Connect(ctx, r.Database.DSN)
		if err != nil {
			t.Fatal(err)
		}
		var ssl string
		if err := conn.QueryRow(ctx, "SHOW ssl").Scan(&ssl); err != nil || ssl != "on" {
			t.Errorf("%s database: ssl = %q, %v; want on", s, ssl, err)
		}
		if r.Database.Role == env.RoleWriter {
			var tlsConns, plain int
			err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
				FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'payment_app'`).Scan(&tlsConns, &plain)
			if err != nil || tlsConns == 0 || plain != 0 {
				t.Errorf("%s (writer): payment_app connections over TLS %d, plaintext %d (%v); want some over TLS, none plaintext", s, tlsConns, plain, err)
			}
		}
		conn.Close(ctx)
	}
	if len(password) < 20 {
		t.Fatalf("the application password (%d characters) was not read", len(password))
	}
	if strings.Contains(string(manifest), password) {
		t.Error("env.json holds the application role's password")
	}
	w := m.Regions[env.SlotPrimary]
	plain := fmt.Sprintf("postgres://payment_app:%s@%s/payments?sslmode=disable", password, net.JoinHostPort(w.Host(), strconv.Itoa(w.Database.Port)))
	if c, err := pgx.Connect(ctx, plain); err == nil {
		c.Close(ctx)
		t.Error("a plaintext connection as payment_app was accepted")
	} else if !strings.Contains(err.Error(), "no encryption") {
		t.Errorf("plaintext connection as payment_app: %v, want pg_hba.conf's rejection (no encryption)", err)
	}
}
