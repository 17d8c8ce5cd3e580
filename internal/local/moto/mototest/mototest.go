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
	"testing"
	"time"

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
