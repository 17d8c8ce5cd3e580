// Package netnstest gates tests on network namespaces and makes fabrics for
// them: when namespaces cannot be made here (not root, no iproute2) a test
// skips with the reason, unless the environment variable CI is set: then it
// fails, because CI must run every tier.
package netnstest

import (
	"context"
	"testing"
	"time"

	"paydr/internal/local/netns"
	"paydr/internal/needs"
)

// Need skips or fails t when network namespaces cannot be made here.
func Need(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	needs.Tool(t, netns.Available(ctx))
}

// Fabric creates a fabric named after t's temporary directory with the
// given members and deletes it when the test ends.
func Fabric(t testing.TB, members ...string) *netns.Fabric {
	t.Helper()
	Need(t)
	f, err := netns.New(t.TempDir(), members...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.Delete(ctx); err != nil {
			t.Errorf("netnstest: %v", err)
		}
	})
	if err := f.Create(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}
