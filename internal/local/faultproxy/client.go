package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// RulesPath and RequestsPath are the control API's routes under the
// proxy's URL.
const (
	RulesPath    = ControlPath + "rules"
	RequestsPath = ControlPath + "requests"
)

// Client drives a fault proxy's control API with the types its handler
// writes: the rules in force and the requests seen.
type Client struct {
	// URL is the proxy's base URL, such as "http://127.0.0.1:41234"
	// (Proxy.URL).
	URL string
	// HTTP sends the requests; nil means http.DefaultClient. Bound its
	// timeout, or pass a ctx with a deadline.
	HTTP *http.Client
}

// Rules fetches the rules in force (GET RulesPath).
func (c Client) Rules(ctx context.Context) ([]Rule, error) {
	var rules []Rule
	if err := c.do(ctx, http.MethodGet, RulesPath, nil, &rules); err != nil {
		return nil, fmt.Errorf("fault proxy rules: %w", err)
	}
	return rules, nil
}

// SetRules replaces the rules in force (PUT RulesPath) and returns them as
// the proxy now holds them. The proxy refuses an invalid rule, keeping the
// rules it had, and the error says why.
func (c Client) SetRules(ctx context.Context, rules ...Rule) ([]Rule, error) {
	body, err := json.Marshal(ruleList(rules))
	if err != nil {
		return nil, fmt.Errorf("fault proxy set rules: %w", err)
	}
	var got []Rule
	if err := c.do(ctx, http.MethodPut, RulesPath, body, &got); err != nil {
		return nil, fmt.Errorf("fault proxy set rules: %w", err)
	}
	return got, nil
}

// ClearRules removes every rule (DELETE RulesPath).
func (c Client) ClearRules(ctx context.Context) error {
	var got []Rule
	if err := c.do(ctx, http.MethodDelete, RulesPath, nil, &got); err != nil {
		return fmt.Errorf("fault proxy clear rules: %w", err)
	}
	return nil
}

// Requests fetches the last signed requests the proxy saw, oldest first
// (GET RequestsPath).
func (c Client) Requests(ctx context.Context) ([]Request, error) {
	var reqs []Request
	if err := c.do(ctx, http.MethodGet, RequestsPath, nil, &reqs); err != nil {
		return nil, fmt.Errorf("fault proxy requests: %w", err)
	}
	return reqs, nil
}

// do sends method path with body and decodes the JSON answer into v. An
// answer other than 200 is an error carrying the proxy's message.
func (c Client) do(ctx context.Context, method, path string, body []byte, v any) error {
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, v)
}
