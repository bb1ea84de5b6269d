package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// retries records OnRetry's events.
type retries struct {
	mu     sync.Mutex
	events []RetryEvent
}

func (r *retries) add(e RetryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *retries) all() []RetryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RetryEvent(nil), r.events...)
}

// fastPolling polls every few milliseconds, so a test sees several retries
// well within its deadline.
func fastPolling(r *retries) WaitOptions {
	return WaitOptions{PollInterval: 5 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond, OnRetry: r.add}
}

// stopAfter ends ctx once OnRetry has seen n events, so a test waits for
// what it asserts rather than for a fixed time.
func stopAfter(r *retries, n int, cancel context.CancelFunc) WaitOptions {
	opts := fastPolling(r)
	opts.OnRetry = func(e RetryEvent) {
		r.add(e)
		if len(r.all()) >= n {
			cancel()
		}
	}
	return opts
}

// fakeAPI serves a token and answers the Status API's nth call (from 1) with
// status: an API that fails on cue, which the real server cannot be made to.
func fakeAPI(t *testing.T, status func(n int64, w http.ResponseWriter)) *Client {
	t.Helper()
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/jwt/client/obtain/token":
			w.Write([]byte(`{"access_token":"tok","expires_in":60}`))
		case strings.HasPrefix(r.URL.Path, "/v1/status/collection/"):
			status(polls.Add(1), w)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWaitForCollectionUnreachable: with nothing listening, every poll fails
// with "connection refused"; OnRetry sees each failure numbered from 1, and
// the error when ctx ends names both the end and the refused connection.
func TestWaitForCollectionUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := New(Config{BaseURL: "http://" + addr, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	var r retries
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = c.WaitForCollection(ctx, "00000000-0000-4000-8000-000000000000", stopAfter(&r, 3, cancel))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v; want the end of ctx and the refused connection", err)
	}
	events := r.all()
	if len(events) < 3 {
		t.Fatalf("OnRetry called %d times, want one per failed poll", len(events))
	}
	for i, e := range events {
		if e.Err == nil || e.Failures != i+1 || e.RetryIn <= 0 || e.At.IsZero() {
			t.Fatalf("event %d = %+v; want failure %d with a pause", i, e, i+1)
		}
	}
}

// TestWaitForCollectionRetryRecovers: two 503s, then the final status. OnRetry
// reports both failures and then the recovery (nil Err, Failures 2).
func TestWaitForCollectionRetryRecovers(t *testing.T) {
	c := fakeAPI(t, func(n int64, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"detail":"down for a moment"}`))
			return
		}
		w.Write([]byte(`{"reference_id":"r","status":"COMPLETED","payer_amount":12.5,"payer_currency":"USD","gateway_message":"Payment completed"}`))
	})
	var r retries
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.WaitForCollection(ctx, "r", fastPolling(&r))
	if err != nil || res.Status != dollr.StatusCompleted {
		t.Fatalf("WaitForCollection = %+v, %v", res, err)
	}
	events := r.all()
	if len(events) != 3 {
		t.Fatalf("OnRetry events %+v; want two failures and the recovery", events)
	}
	for i, e := range events[:2] {
		if StatusCode(e.Err) != http.StatusServiceUnavailable || e.Failures != i+1 {
			t.Errorf("event %d = %+v; want 503 failure %d", i, e, i+1)
		}
	}
	if last := events[2]; last.Err != nil || last.Failures != 2 || last.RetryIn != 0 {
		t.Errorf("recovery event %+v; want nil Err after 2 failures", last)
	}
}

// TestWaitForCollectionTimeoutAfterRecovery: when the latest poll succeeded,
// the error when ctx ends names the last status and no stale failure.
func TestWaitForCollectionTimeoutAfterRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := fakeAPI(t, func(n int64, w http.ResponseWriter) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(`{"reference_id":"r","status":"PROCESSING","payer_amount":12.5,"payer_currency":"USD"}`))
		if n == 3 {
			cancel() // two answers after the failure: ctx ends with the last one good
		}
	})
	var r retries
	_, err := c.WaitForCollection(ctx, "r", fastPolling(&r))
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still PROCESSING") || strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v; want the end of ctx and the last status only", err)
	}
	if events := r.all(); len(events) != 2 || events[1].Err != nil {
		t.Fatalf("OnRetry events %+v; want one failure and the recovery", events)
	}
}
