package router

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The paths of the router's own API; every other path is proxied.
const (
	StatusPath = "/_router/status"
	EventsPath = "/_router/events"
)

// Client reads a router's API: its Status and its Events, with the types
// the router's handler writes.
type Client struct {
	// URL is the router's base URL, such as "http://127.0.0.1:8080".
	URL string
	// HTTP sends the requests; nil means http.DefaultClient. Bound its
	// timeout, or pass a ctx with a deadline.
	HTTP *http.Client
}

// Status fetches the router's state (GET StatusPath).
func (c Client) Status(ctx context.Context) (Status, error) {
	var st Status
	if err := c.get(ctx, StatusPath, &st); err != nil {
		return Status{}, fmt.Errorf("router status: %w", err)
	}
	return st, nil
}

// Events fetches every health and routing change so far, oldest first
// (GET EventsPath).
func (c Client) Events(ctx context.Context) ([]Event, error) {
	var evs []Event
	if err := c.get(ctx, EventsPath, &evs); err != nil {
		return nil, fmt.Errorf("router events: %w", err)
	}
	return evs, nil
}

// get GETs path and decodes its JSON answer into v.
func (c Client) get(ctx context.Context, path string, v any) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return err
	}
	return nil
}
