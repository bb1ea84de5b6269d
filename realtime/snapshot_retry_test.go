package realtime

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// A join while the snapshot cannot be read (its database down) still
// subscribes: the client hears that the rows are being retried, live changes
// are held, and once a read succeeds it gets "Subscribed to PostgreSQL", the
// current row and then the held changes, in commit order.
func TestSnapshotFailureRetried(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var calls int
	snap := snapshotFunc(func(ctx context.Context, _, _ string, _ map[string]string) ([]dollr.Change, uint64, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		if down.Load() {
			return nil, 0, errors.New("connection refused")
		}
		processing := statusChange(5, refA, 1, dollr.StatusProcessing)
		return []dollr.Change{processing}, 5, nil
	})
	srv := startServer(t, Config{Policy: paymentPolicy, Snapshot: snap})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	ref := c.nextRef()
	c.push(ref, ref, topic, "phx_join", productJoin(realtimeKey(7, refA, time.Hour), refA))
	if m := c.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
		t.Fatalf("join reply: %s", m.Raw)
	}
	if m := c.nextEvent("system"); m.payload()["status"] != "error" || m.payload()["message"] != msgSnapshotRetry {
		t.Fatalf("system: %s", m.Raw)
	}
	// Older than the snapshot to come (4), and newer (6): held meanwhile.
	srv.Publish([]change{statusChange(4, refA, 1, dollr.StatusPending), statusChange(6, refA, 1, dollr.StatusCompleted)})
	eventually(t, "a second read", func() bool { mu.Lock(); defer mu.Unlock(); return calls >= 2 })
	down.Store(false)
	if m := c.nextEvent("system"); m.payload()["status"] != "ok" || m.payload()["message"] != "Subscribed to PostgreSQL" {
		t.Fatalf("system after recovery: %s", m.Raw)
	}
	if m := c.nextEvent("postgres_changes"); statusOf(t, m) != "PROCESSING" {
		t.Fatalf("snapshot row: %s", m.Raw)
	}
	if m := c.nextEvent("postgres_changes"); statusOf(t, m) != "COMPLETED" {
		t.Fatalf("held change: %s", m.Raw)
	}
	if n := counterValue(t, srv.reg, "dollr_realtime_snapshots_total", map[string]string{"result": "error"}); n < 1 {
		t.Errorf("snapshot errors counted: %v", n)
	}
}

// A channel left while its snapshot is being retried stops the retries: the
// read in flight is cancelled (long before its own timeout).
func TestSnapshotRetryEndsWithChannel(t *testing.T) {
	var calls atomic.Int32
	retrying := make(chan struct{})
	cancelled := make(chan struct{})
	snap := snapshotFunc(func(ctx context.Context, _, _ string, _ map[string]string) ([]dollr.Change, uint64, error) {
		if calls.Add(1) == 2 {
			close(retrying)
			<-ctx.Done()
			close(cancelled)
			return nil, 0, ctx.Err()
		}
		return nil, 0, errors.New("connection refused")
	})
	srv := startServer(t, Config{Policy: paymentPolicy, Snapshot: snap, SnapshotTimeout: time.Hour})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	ref := c.nextRef()
	c.push(ref, ref, topic, "phx_join", productJoin(realtimeKey(7, refA, time.Hour), refA))
	c.nextEvent("phx_reply")
	if m := c.nextEvent("system"); !strings.Contains(m.Raw, msgSnapshotRetry) {
		t.Fatalf("system: %s", m.Raw)
	}
	select {
	case <-retrying:
	case <-time.After(10 * time.Second):
		t.Fatal("no retried read")
	}
	c.push(ref, c.nextRef(), topic, "phx_leave", map[string]any{})
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the retried read outlived its channel")
	}
	c.nextEvent("phx_reply") // to the leave
	c.nextEvent("phx_close")
	c.quiet(50 * time.Millisecond)
	if n := calls.Load(); n != 2 {
		t.Errorf("%d reads, want 2 (none after the leave)", n)
	}
}

// A refresh that moves the grant to other rows snapshots them anew; that read
// is retried too when it fails.
func TestRefreshSnapshotFailureRetried(t *testing.T) {
	policy := PolicyFunc(func(claims map[string]any, _ string) (Grant, error) {
		ref, _ := claims["reference_id"].(string)
		return Grant{Allow: true, Rows: map[string]map[string]string{"public." + dollr.PublicStatusTable: {"reference_id": ref}}}, nil
	})
	var down atomic.Bool
	snap := snapshotFunc(func(_ context.Context, _, _ string, eq map[string]string) ([]dollr.Change, uint64, error) {
		if eq["reference_id"] == refB && down.Load() {
			return nil, 0, errors.New("connection refused")
		}
		return []dollr.Change{statusChange(3, eq["reference_id"], 1, dollr.StatusProcessing)}, 3, nil
	})
	srv := startServer(t, Config{Policy: policy, Snapshot: snap})
	c := dial(t, srv, "2.0.0")
	jr, _ := c.joinOK("realtime:watch", joinPayload(realtimeKey(7, refA, time.Hour),
		map[string]any{"event": "*", "schema": "public", "table": dollr.PublicStatusTable})) // reply and system message
	if m := c.nextEvent("postgres_changes"); m.payload()["data"].(map[string]any)["record"].(map[string]any)["reference_id"] != refA {
		t.Fatalf("join snapshot: %s", m.Raw)
	}
	down.Store(true)
	c.push(jr, c.nextRef(), "realtime:watch", "access_token", map[string]any{"access_token": realtimeKey(7, refB, time.Hour)})
	c.nextEvent("system") // the refreshed subscription
	if m := c.nextEvent("system"); m.payload()["status"] != "error" || m.payload()["message"] != msgSnapshotRetry {
		t.Fatalf("system after a failed refresh snapshot: %s", m.Raw)
	}
	down.Store(false)
	if m := c.nextEvent("system"); m.payload()["message"] != "Subscribed to PostgreSQL" {
		t.Fatalf("system after recovery: %s", m.Raw)
	}
	if m := c.nextEvent("postgres_changes"); m.payload()["data"].(map[string]any)["record"].(map[string]any)["reference_id"] != refB {
		t.Fatalf("refresh snapshot: %s", m.Raw)
	}
}
