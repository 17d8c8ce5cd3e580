package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"paydr/internal/bundle"
	"paydr/internal/needs"
	"paydr/internal/processor/processortest"
)

// findRIE locates aws-lambda-rie on PATH or in GOPATH/bin; without it the
// test skips, or fails when CI is set.
func findRIE(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const how = "install it with: go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"
	needs.Tool(t, fmt.Errorf("aws-lambda-rie not found; %s", how))
	return ""
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the emulator's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var initReport = regexp.MustCompile(`INIT REPORT\s*\(durationMs:\s*([0-9.]+)`)

// coldStart runs bootstrap under the emulator, sends one direct invocation
// and returns the function's response and the INIT REPORT duration.
func coldStart(t testing.TB, rie, bootstrap string, env map[string]string, payload string) (map[string]any, float64) {
	t.Helper()
	addr, apiAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", addr, "--runtime-api-address", apiAddr, bootstrap)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start aws-lambda-rie: %v", err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the emulator and the bootstrap it started
		_ = cmd.Wait()
	}()
	url := "http://" + addr + "/2015-03-31/functions/function/invocations"
	var resp *http.Response
	deadline := time.Now().Add(20 * time.Second)
	for {
		var err error
		resp, err = http.Post(url, "application/json", strings.NewReader(payload))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoke %s: %v; emulator log:\n%s", url, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("invocation answered %d %q: %v; emulator log:\n%s", resp.StatusCode, body, err, logs.String())
	}
	var ms float64
	for time.Now().Before(deadline) {
		if m := initReport.FindStringSubmatch(logs.String()); m != nil {
			ms, _ = strconv.ParseFloat(m[1], 64)
			return out, ms
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no INIT REPORT in the emulator log:\n%s", logs.String())
	return nil, 0
}

func buildHostBootstrap(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	art, err := bundle.Build(ctx, bundle.Options{OutDir: t.TempDir(), GOARCH: runtime.GOARCH, ModuleDir: "../.."})
	if err != nil {
		t.Fatalf("build bootstrap: %v", err)
	}
	return art.BinaryPath
}

// TestLambdaUnderRIE runs the shipped binary (built for the host arch) as
// Lambda runs it, against real PostgreSQL and moto, sends a direct
// invocation in the earlier format (authorized by IAM: no API key) and
// reports the init duration, then API Gateway events with and without the
// API key.
func TestLambdaUnderRIE(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the emulator run in -short mode")
	}
	rie := findRIE(t)
	env := processortest.Env(t)
	bootstrap := buildHostBootstrap(t)
	payload := `{"payment_id":"rie-1","session_id":"s","amount":"7.25","currency":"USD"}`
	out, initMs := coldStart(t, rie, bootstrap, env, payload)
	if out["statusCode"] != float64(201) {
		t.Fatalf("direct invocation = %v, want statusCode 201", out)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(out["body"].(string)), &body); err != nil || body["payment_id"] != "rie-1" || body["amount"] != "7.25" {
		t.Errorf("direct invocation body = %v (%v), want payment rie-1 of 7.25", out["body"], err)
	}
	t.Logf("Lambda INIT REPORT durationMs = %.2f (target < 30)", initMs)
	if initMs <= 0 {
		t.Errorf("init duration %.2f ms is not positive", initMs)
	}

	// Through API Gateway the binary checks the API key, read from the
	// SecureString in moto: 201 with it, 401 without.
	for _, tt := range []struct {
		name   string
		auth   string
		status float64
	}{
		{"with the key", "Bearer " + processortest.APIKey, 201},
		{"without a key", "", 401},
	} {
		headers := map[string]string{"content-type": "application/json"}
		if tt.auth != "" {
			headers["authorization"] = tt.auth
		}
		ev, _ := json.Marshal(map[string]any{
			"version": "2.0", "routeKey": "POST /payments", "rawPath": "/payments", "headers": headers,
			"requestContext": map[string]any{"requestId": "rie-apigw", "stage": "$default", "http": map[string]any{"method": "POST", "path": "/payments"}},
			"body":           `{"payment_id":"rie-apigw-1","amount":"1.00","currency":"USD"}`, "isBase64Encoded": false,
		})
		out, _ := coldStart(t, rie, bootstrap, env, string(ev))
		if out["statusCode"] != tt.status {
			t.Errorf("API Gateway event %s = %v, want statusCode %v", tt.name, out, tt.status)
		}
	}
}

// BenchmarkLambdaInit cold-starts the bootstrap under the emulator b.N times
// and reports the mean INIT REPORT duration (target < 30 ms). Init does no
// network I/O, so the stores need not be reachable; each invocation answers
// whatever the stores allow.
func BenchmarkLambdaInit(b *testing.B) {
	rie := findRIE(b)
	bootstrap := buildHostBootstrap(b)
	env := map[string]string{
		"PAYDR_REGION": "us-east-1", "PAYDR_SESSIONS_TABLE": "t", "PAYDR_EVENT_BUS": "b",
		"PAYDR_DB_DSN": "postgres://u:p@127.0.0.1:1/payments?connect_timeout=1", "PAYDR_AWS_ENDPOINT": "http://127.0.0.1:1",
		"PAYDR_API_KEY_PARAM": "/paydr/bench/api/key", // never read: a direct invocation needs no key
	}
	var total, worst float64
	n := 0
	for b.Loop() {
		// An invalid payment is answered without touching the stores.
		out, ms := coldStart(b, rie, bootstrap, env, `{"payment_id":"x","amount":"0","currency":"USD"}`)
		if out["statusCode"] != float64(422) {
			b.Fatalf("invocation = %v, want statusCode 422", out)
		}
		total += ms
		worst = max(worst, ms)
		n++
	}
	b.ReportMetric(total/float64(n), "init-ms")
	b.ReportMetric(worst, "max-init-ms")
}
