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
	"strings"
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
		if errors.Is(err, moto.ErrNotInstalled) {
			needs.Tool(t, fmt.Errorf("mototest: %w", err))
		}
		t.Fatalf("mototest: %v", err)
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
