package moto

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serverAt is a Server for the HTTP server at url (no process).
func serverAt(t *testing.T, url string) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return &Server{host: host, port: p}
}

func TestWarmNamesEachRefusedCall(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), "/lambda/") {
			http.Error(w, "no such route", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	err := serverAt(t, srv.URL).Warm(context.Background(), "us-east-1", "us-west-2")
	if err == nil {
		t.Fatal("Warm against a server refusing Lambda's calls = nil, want an error")
	}
	for _, want := range []string{"warm lambda in us-east-1", "warm lambda in us-west-2", "404", "no such route"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Warm error = %q, want it to name %q", err, want)
		}
	}
	global := 0
	for _, c := range warmCalls {
		if c.global {
			global++
		}
	}
	if got, want := int(calls.Load()), 2*len(warmCalls)-global; got != want {
		t.Errorf("Warm sent %d calls, want %d (every call in each region, global ones once): a refusal must not stop the rest", got, want)
	}
}

func TestWarmStopsAtAnUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	err = serverAt(t, "http://"+addr).Warm(context.Background(), "us-east-1", "us-west-2")
	if !errors.Is(err, errUnreachable) {
		t.Fatalf("Warm against a closed port = %v, want an unreachable error", err)
	}
	if n := strings.Count(err.Error(), "moto: warm"); n != 1 {
		t.Errorf("Warm against a closed port reported %d calls, want it to stop at the first: %v", n, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Warm against a closed port took %s", d)
	}
}

func TestWarmNeedsARegion(t *testing.T) {
	if err := (&Server{port: 1}).Warm(context.Background()); err == nil || !strings.Contains(err.Error(), "no regions") {
		t.Errorf("Warm() without regions = %v, want an error saying so", err)
	}
}
