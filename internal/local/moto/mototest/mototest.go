// Package mototest starts moto_server for tests on a free loopback port,
// stopped when the test ends.
//
// When moto_server is missing the test is skipped with the reason, unless the
// environment variable CI is set: then it fails, because CI must run every
// tier.
package mototest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"paydr/internal/local/moto"
	"paydr/internal/needs"
)

// Start starts moto_server with its state and log in t.TempDir() and stops
// it when the test ends. Use srv.Endpoint() as the endpoint of every AWS
// client, whatever its region.
func Start(t testing.TB) *moto.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := moto.Start(ctx, moto.Options{StateDir: t.TempDir()})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("mototest: %v", err)
		}
	})
	return srv
}

// startFailed ends t for a server that did not start: skipped (failed in
// CI) when moto_server is not installed, failed otherwise.
func startFailed(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, moto.ErrNotInstalled) {
		needs.Tool(t, fmt.Errorf("mototest: %w", err))
	}
	t.Fatalf("mototest: %v", err)
}

// shared is the server Shared hands out: one per test binary.
var shared struct {
	mu  sync.Mutex
	srv *moto.Server
	dir string
	err error
}

// Shared returns the one moto_server this test binary's tests share,
// started on first use, with its state reset: IAM enforcement off, then
// every emulated resource gone (/moto-api/reset). A reset takes
// milliseconds where a start costs some 2 s of CPU, and the services'
// code stays loaded. The tests that use it must not run in parallel with
// each other, and the binary's TestMain must call StopShared after m.Run.
func Shared(t testing.TB) *moto.Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.dir, shared.err = os.MkdirTemp("", "paydr-mototest-")
		if shared.err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			shared.srv, shared.err = moto.Start(ctx, moto.Options{StateDir: shared.dir})
			cancel()
		}
	}
	if shared.err != nil {
		startFailed(t, shared.err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := shared.srv.EnforceIAM(ctx, false); err != nil {
		t.Fatalf("mototest: shared: %v", err)
	}
	if err := shared.srv.Reset(ctx); err != nil {
		t.Fatalf("mototest: shared: %v", err)
	}
	return shared.srv
}

// StopShared stops the server Shared started, if any, and removes its
// directory. Call it from TestMain after m.Run.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var err error
	if shared.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = shared.srv.Stop(ctx)
		cancel()
		shared.srv = nil
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
		shared.dir = ""
	}
	return err
}

// EnforceIAM sets how many requests the moto at endpoint still takes
// without checking IAM:
// "0" enforces IAM from now on (every request must be signed by a known
// identity and allowed by its policies), "inf" never. It uses moto's
// /moto-api/reset-auth.
func EnforceIAM(t testing.TB, endpoint, count string) {
	t.Helper()
	resp, err := http.Post(endpoint+"/moto-api/reset-auth", "text/plain", strings.NewReader(count))
	if err != nil {
		t.Fatalf("mototest: moto-api/reset-auth: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mototest: moto-api/reset-auth %s: %s", count, resp.Status)
	}
}

// Denied reports whether err is an authorization refusal: HTTP 403 (moto
// answers JSON-protocol services' refusals in XML, which their clients
// cannot decode, so the status is what is certain) or an AccessDenied code.
func Denied(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "AccessDenied")
}
