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

// TestWaitForCollectionUnreachable: with nothing listening, every poll fails
// with "connection refused"; OnRetry sees each failure numbered from 1, and
// the error when ctx ends names both the deadline and the refused connection.
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
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = c.WaitForCollection(ctx, "00000000-0000-4000-8000-000000000000", fastPolling(&r))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v; want the deadline and the refused connection", err)
	}
	events := r.all()
	if len(events) < 2 {
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
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/jwt/client/obtain/token":
			w.Write([]byte(`{"access_token":"tok","expires_in":60}`))
		case strings.HasPrefix(r.URL.Path, "/v1/status/collection/"):
			if polls.Add(1) <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte(`{"detail":"down for a moment"}`))
				return
			}
			w.Write([]byte(`{"reference_id":"r","status":"COMPLETED","payer_amount":12.5,"payer_currency":"USD","gateway_message":"Payment completed"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	var r retries
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	var polls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/jwt/client/obtain/token":
			w.Write([]byte(`{"access_token":"tok","expires_in":60}`))
		case polls.Add(1) == 1:
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Write([]byte(`{"reference_id":"r","status":"PROCESSING","payer_amount":12.5,"payer_currency":"USD"}`))
		}
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	var r retries
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.WaitForCollection(ctx, "r", fastPolling(&r))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "still PROCESSING") || strings.Contains(err.Error(), "502") {
		t.Fatalf("err = %v; want the deadline and the last status only", err)
	}
	if events := r.all(); len(events) != 2 || events[1].Err != nil {
		t.Fatalf("OnRetry events %+v; want one failure and the recovery", events)
	}
}
