package router_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"paydr/internal/local/router"
)

// TestClientRoundTrip: what the router's handler writes at /_router/status
// and /_router/events, Client reads back as the router's own Status() and
// Events(), after a failover so that every field is set.
func TestClientRoundTrip(t *testing.T) {
	p, s := newBackend(t, "east"), newBackend(t, "west")
	r := newRouter(t, p, s, 2)
	front := httptest.NewServer(r)
	t.Cleanup(front.Close)
	ctx := context.Background()
	c := router.Client{URL: front.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}

	r.CheckNow(ctx)
	p.health.Store(http.StatusServiceUnavailable)
	r.CheckNow(ctx)
	r.CheckNow(ctx) // primary unhealthy: traffic moves to the secondary

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Client.Status() error = %v", err)
	}
	if diff := cmp.Diff(r.Status(), st); diff != "" {
		t.Errorf("Client.Status() mismatch with Router.Status() (-want +got):\n%s", diff)
	}
	if st.Active != router.Secondary || st.Targets[0].Position != router.Primary || st.Targets[0].Healthy {
		t.Errorf("Client.Status() = active %s, first target %s healthy %v; want secondary, primary unhealthy", st.Active, st.Targets[0].Position, st.Targets[0].Healthy)
	}
	evs, err := c.Events(ctx)
	if err != nil {
		t.Fatalf("Client.Events() error = %v", err)
	}
	if diff := cmp.Diff(r.Events(), evs); diff != "" {
		t.Errorf("Client.Events() mismatch with Router.Events() (-want +got):\n%s", diff)
	}
	if len(evs) != 2 || evs[1].Kind != router.RouteChange || evs[1].From != router.Primary || evs[1].Position != router.Secondary {
		t.Errorf("Client.Events() = %+v, want the primary's health change, then the route change to the secondary", evs)
	}
}

// TestWireNames pins the JSON field names of the status and events API, which
// scripts and older paydr read: a Go rename must not change them.
func TestWireNames(t *testing.T) {
	p, s := newBackend(t, "east"), newBackend(t, "west")
	r := newRouter(t, p, s, 1)
	p.health.Store(http.StatusInternalServerError)
	r.CheckNow(context.Background())
	front := httptest.NewServer(r)
	t.Cleanup(front.Close)

	keys := func(path string) (top []string, nested []string) {
		t.Helper()
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw any
		if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		switch v := raw.(type) {
		case map[string]any:
			obj = v
			for _, tg := range v["targets"].([]any) {
				for k := range tg.(map[string]any) {
					nested = append(nested, k)
				}
				break
			}
		case []any:
			obj = map[string]any{}
			for _, e := range v {
				for k, x := range e.(map[string]any) {
					obj[k] = x
				}
			}
		}
		for k := range obj {
			top = append(top, k)
		}
		slices.Sort(top)
		slices.Sort(nested)
		return top, nested
	}

	top, targets := keys(router.StatusPath)
	if want := []string{"active", "active_target", "all_unhealthy", "failure_threshold", "interval_ms", "targets", "timeout_ms"}; !slices.Equal(top, want) {
		t.Errorf("status fields = %s, want %s", strings.Join(top, ","), strings.Join(want, ","))
	}
	if want := []string{"checks", "consecutive_failures", "consecutive_successes", "healthy", "last_change", "last_check", "last_result", "name", "role", "url"}; !slices.Equal(targets, want) {
		t.Errorf("status target fields = %s, want %s", strings.Join(targets, ","), strings.Join(want, ","))
	}
	events, _ := keys(router.EventsPath)
	if want := []string{"from", "kind", "reason", "role", "target", "time"}; !slices.Equal(events, want) {
		t.Errorf("event fields = %s, want %s", strings.Join(events, ","), strings.Join(want, ","))
	}
}

// TestClientErrors: a client of something that is not a router says so.
func TestClientErrors(t *testing.T) {
	notRouter := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notRouter.Close)
	c := router.Client{URL: notRouter.URL}
	if _, err := c.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "router status: HTTP 404") {
		t.Errorf("Status() of a non-router = %v, want router status: HTTP 404", err)
	}
	if _, err := c.Events(context.Background()); err == nil || !strings.Contains(err.Error(), "router events: HTTP 404") {
		t.Errorf("Events() of a non-router = %v, want router events: HTTP 404", err)
	}
}
