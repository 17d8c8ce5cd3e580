package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/daemon"
	"paydr/internal/local/env"
	"paydr/internal/local/faultproxy"
	"paydr/internal/local/moto/mototest"
	"paydr/internal/sdkhttp"
)

// EnvTestAsPaydr, set to 1, makes this package's test binary act as the
// paydr command (TestMain in local_test.go), so the processes paydr up
// starts run this very build.
const EnvTestAsPaydr = "PAYDR_LOCAL_TEST_AS_PAYDR"

// The tests below drive the fault proxy step of paydr up --fault-proxy
// (startFaultProxy) on a real emulator, with the proxy started as up starts
// it: this test binary acting as paydr fault-proxy, detached, with its pid
// file and log in the state directory. The full paydr up with the flag is
// TestLocalEnvironment.

// proxyRun returns a run of paydr up in dir, as far as the fault proxy step
// goes.
func proxyRun(t *testing.T, dir string, on bool) *upRun {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o, err := UpOptions{StateDir: dir, Exe: exe, ExeEnv: []string{EnvTestAsPaydr + "=1"}, FaultProxy: on, Out: testLog{t}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &upRun{o: o, l: env.Layout{Root: o.StateDir}}
}

// testLog sends lines to t.Log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// proxyManifest is a manifest of an environment in dir with the emulator
// at endpoint (env's testManifest, with that emulator).
func proxyManifest(dir, endpoint string) *env.Manifest {
	port, _ := strconv.Atoi(endpoint[strings.LastIndexByte(endpoint, ':')+1:])
	return &env.Manifest{
		StateDir: dir,
		Suffix:   "local",
		Moto:     env.Moto{Endpoint: endpoint, Port: port},
		Regions: map[env.Slot]*env.Region{
			env.SlotPrimary: {Slot: env.SlotPrimary, Name: "us-east-1",
				Database:  env.Database{Name: "primary", Port: 5433, DSN: "postgres://postgres@127.0.0.1:5433/payments", Role: env.RoleWriter},
				Processor: env.Processor{URL: "http://127.0.0.1:8081", Port: 8081, Env: map[string]string{"PAYDR_REGION": "us-east-1"}}},
			env.SlotSecondary: {Slot: env.SlotSecondary, Name: "us-west-2",
				Database: env.Database{Name: "secondary", Port: 5434, Role: env.RoleStandby}},
		},
		Router: env.Router{URL: "http://127.0.0.1:8080", HealthInterval: env.Duration(1500 * time.Millisecond), FailureThreshold: 3, Primary: env.SlotPrimary, Secondary: env.SlotSecondary},
		Gaps:   []string{"a gap"},
	}
}

// listTables calls DynamoDB ListTables in region through endpoint, once
// (no retries), within timeout.
func listTables(endpoint, region string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := dynamodb.NewFromConfig(aws.Config{APIOptions: sdkhttp.APIOptions(), Region: region, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint), RetryMaxAttempts: 1})
	_, err := c.ListTables(ctx, &dynamodb.ListTablesInput{})
	return err
}

// putRules replaces the rules through the control API of the proxy at url.
func putRules(t *testing.T, url string, rules ...faultproxy.Rule) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := (faultproxy.Client{URL: url}).SetRules(ctx, rules...); err != nil {
		t.Fatalf("SetRules %v: %v", rules, err)
	}
}

func gone(t *testing.T, what string, pid, port int) {
	t.Helper()
	if daemon.Alive(pid, "") {
		t.Errorf("%s pid %d still runs", what, pid)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 300*time.Millisecond); err == nil {
		c.Close()
		t.Errorf("%s port %d still accepts connections", what, port)
	}
}

// TestFaultProxyStep starts the proxy as paydr up --fault-proxy does,
// takes us-east-1 away through its control API, records it in env.json, has
// a second up adopt it, a moved emulator replace it, paydr status probe it
// and paydr down stop it.
func TestFaultProxyStep(t *testing.T) {
	t.Parallel()
	ms := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	t.Cleanup(func() { _, _ = Down(context.Background(), dir, nil) })

	u := proxyRun(t, dir, true)
	m := proxyManifest(dir, ms.Endpoint())
	start := time.Now()
	detail, err := u.startFaultProxy(ctx, m, nil)
	if err != nil {
		t.Fatalf("startFaultProxy error = %v", err)
	}
	t.Logf("started in %s: %s", time.Since(start).Round(time.Millisecond), detail)
	fp := m.FaultProxy
	if fp == nil {
		t.Fatal("startFaultProxy left Manifest.FaultProxy nil")
	}
	url := "http://127.0.0.1:" + strconv.Itoa(fp.Port)
	want := &env.FaultProxy{URL: url, ControlURL: url + "/_faultproxy/rules", Upstream: ms.Endpoint(), Port: fp.Port, PID: fp.PID,
		PIDFile: filepath.Join(dir, "run", "fault-proxy.pid"), LogPath: filepath.Join(dir, "logs", "fault-proxy.log"),
		Command: []string{u.o.Exe, "fault-proxy", "--upstream", ms.Endpoint(), "--listen", "127.0.0.1:" + strconv.Itoa(fp.Port)}}
	if diff := cmp.Diff(want, fp); diff != "" {
		t.Errorf("Manifest.FaultProxy mismatch (-want +got):\n%s", diff)
	}
	if got := daemon.ReadPIDFile(fp.PIDFile); got != fp.PID || !daemon.Alive(fp.PID, "fault-proxy") {
		t.Errorf("pid file holds %d, want the running proxy %d", got, fp.PID)
	}
	if got := m.AWSEndpoint(); got != url {
		t.Errorf("AWSEndpoint() = %q, want the proxy %q (the processors' PAYDR_AWS_ENDPOINT)", got, url)
	}
	if !strings.Contains(detail, "no rules") {
		t.Errorf("detail = %q, want it to say the proxy starts with no rules", detail)
	}
	if len(u.started) != 1 {
		t.Errorf("%d undo steps recorded, want 1 (a failed up stops the proxy it started)", len(u.started))
	}

	t.Run("takes us-east-1 away through its control API", func(t *testing.T) {
		if err := listTables(url, "us-east-1", 10*time.Second); err != nil {
			t.Fatalf("ListTables in us-east-1 through the proxy with no rules: %v", err)
		}
		putRules(t, fp.URL, faultproxy.Rule{Region: "us-east-1", Fault: faultproxy.Refuse})
		err := listTables(url, "us-east-1", 10*time.Second)
		var re *awshttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
			t.Errorf("ListTables in us-east-1 after a refuse rule = %v, want HTTP 503", err)
		}
		if err := listTables(url, "us-west-2", 10*time.Second); err != nil {
			// Seen once, in CI under heavy load, and not reproduced: say
			// what the proxy saw and what both logs end with.
			rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
			seen, rerr := (faultproxy.Client{URL: fp.URL}).Requests(rctx)
			rcancel()
			t.Errorf("ListTables in us-west-2 after a us-east-1 rule: %v, want it to pass\nthe proxy saw (%v): %+v\nits log ends:\n%s\nmoto's log ends:\n%s",
				err, rerr, seen, daemon.LogTail(fp.LogPath, 0, 20), daemon.LogTail(ms.LogPath(), 0, 20))
		}
		// The example paydr up prints.
		putRules(t, fp.URL, takeUSEast1...)
		begin := time.Now()
		if err := listTables(url, "us-east-1", 500*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("ListTables in us-east-1 after %v = %v, want it held until the client's deadline", takeUSEast1, err)
		}
		t.Logf("black-holed request gave up after %s", time.Since(begin).Round(time.Millisecond))
	})

	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	prev, err := env.Load(dir)
	if err != nil {
		t.Fatalf("env.Load error = %v", err)
	}
	if diff := cmp.Diff(m, prev); diff != "" {
		t.Errorf("env.Load(Save(m)) mismatch (-want +got):\n%s", diff)
	}

	t.Run("a second up adopts it, rules and all", func(t *testing.T) {
		u2 := proxyRun(t, dir, true)
		m2 := proxyManifest(dir, ms.Endpoint())
		detail, err := u2.startFaultProxy(ctx, m2, prev)
		if err != nil {
			t.Fatalf("startFaultProxy (adopt) error = %v", err)
		}
		if diff := cmp.Diff(prev.FaultProxy, m2.FaultProxy); diff != "" {
			t.Errorf("adopted FaultProxy mismatch (-want +got):\n%s", diff)
		}
		if !strings.Contains(detail, "already running") || !strings.Contains(detail, "1 rule in force: us-east-1 blackhole") {
			t.Errorf("detail = %q, want already running with the rule in force named", detail)
		}
		if len(u2.started) != 0 {
			t.Errorf("%d undo steps recorded for an adopted proxy, want 0 (a failed up leaves it running)", len(u2.started))
		}
	})

	t.Run("status probes it", func(t *testing.T) {
		st, err := GetStatus(ctx, dir)
		if err != nil {
			t.Fatalf("GetStatus error = %v", err)
		}
		var got *Component
		for i := range st.Components {
			if st.Components[i].Name == "fault proxy" {
				got = &st.Components[i]
			}
		}
		if got == nil || !got.Running || got.PID != fp.PID || got.Address != url || !strings.Contains(got.State, "us-east-1 blackhole") {
			t.Errorf("fault proxy component = %+v, want running pid %d at %s with the us-east-1 blackhole rule", got, fp.PID, url)
		}
	})

	t.Run("a moved emulator replaces it on the same port", func(t *testing.T) {
		u3 := proxyRun(t, dir, true)
		moved := proxyManifest(dir, "http://127.0.0.1:1")
		detail, err := u3.startFaultProxy(ctx, moved, prev)
		if err != nil {
			t.Fatalf("startFaultProxy (moved) error = %v", err)
		}
		if moved.FaultProxy.PID == fp.PID || daemon.Alive(fp.PID, "") {
			t.Errorf("proxy pid %d (old %d, alive %v), want a new process and the old one gone", moved.FaultProxy.PID, fp.PID, daemon.Alive(fp.PID, ""))
		}
		if moved.FaultProxy.Port != fp.Port || moved.FaultProxy.Upstream != "http://127.0.0.1:1" {
			t.Errorf("replaced proxy port %d upstream %s, want port %d upstream http://127.0.0.1:1", moved.FaultProxy.Port, moved.FaultProxy.Upstream, fp.Port)
		}
		if !strings.Contains(detail, "no rules") {
			t.Errorf("detail = %q, want the new proxy without rules", detail)
		}
		if err := moved.Save(); err != nil {
			t.Fatal(err)
		}
		fp = moved.FaultProxy
	})

	t.Run("down stops it", func(t *testing.T) {
		rep, err := Down(ctx, dir, testLog{t})
		if err != nil {
			t.Fatalf("Down error = %v", err)
		}
		if want := fmt.Sprintf("fault proxy (pid %d)", fp.PID); len(rep.Stopped) != 1 || rep.Stopped[0] != want {
			t.Errorf("Down stopped %q, want [%q]", rep.Stopped, want)
		}
		gone(t, "fault proxy", fp.PID, fp.Port)
		if _, err := os.Stat(fp.PIDFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pid file %s after Down: %v, want it removed", fp.PIDFile, err)
		}
		if _, err := os.Stat(fp.LogPath); err != nil {
			t.Errorf("log %s after Down: %v, want it kept", fp.LogPath, err)
		}
	})
}

// TestFaultProxyStepWithoutFlag: paydr up without --fault-proxy stops the
// proxy an earlier up left, and points the processors at the emulator.
func TestFaultProxyStepWithoutFlag(t *testing.T) {
	t.Parallel()
	ms := mototest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	t.Cleanup(func() { _, _ = Down(context.Background(), dir, nil) })
	m := proxyManifest(dir, ms.Endpoint())
	if _, err := proxyRun(t, dir, true).startFaultProxy(ctx, m, nil); err != nil {
		t.Fatal(err)
	}
	fp := m.FaultProxy

	off := proxyRun(t, dir, false)
	detail, err := off.stopFaultProxy(ctx)
	if err != nil {
		t.Fatalf("stopFaultProxy error = %v", err)
	}
	if !strings.Contains(detail, fmt.Sprintf("pid %d", fp.PID)) {
		t.Errorf("detail = %q, want it to name the stopped pid %d", detail, fp.PID)
	}
	gone(t, "fault proxy", fp.PID, fp.Port)
	if detail, err := off.stopFaultProxy(ctx); err != nil || detail != "" {
		t.Errorf("stopFaultProxy with none running = %q, %v, want \"\", nil", detail, err)
	}
	if got := proxyManifest(dir, ms.Endpoint()).AWSEndpoint(); got != ms.Endpoint() {
		t.Errorf("AWSEndpoint() without a fault proxy = %q, want the emulator %q", got, ms.Endpoint())
	}
}
