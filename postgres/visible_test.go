package postgres

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
)

func TestParseSnapshot(t *testing.T) {
	for _, tc := range []struct {
		text    string
		visible []uint32
		hidden  []uint32
	}{
		{"10:20:", []uint32{9, 10, 19}, []uint32{20, 21}},
		{"10:20:12,15", []uint32{11, 13, 19}, []uint32{12, 15, 20}},
		// 64-bit ids carry an epoch; the stream's 32-bit ids wrap past it.
		{"4294967300:4294967310:4294967305", []uint32{4294967290, 4, 8, 10, 13}, []uint32{9, 14, 20}},
	} {
		snap, err := parseSnapshot(tc.text)
		if err != nil {
			t.Fatalf("%q: %v", tc.text, err)
		}
		for _, x := range tc.visible {
			if !snap.sees(x) {
				t.Errorf("%q should see %d", tc.text, x)
			}
		}
		for _, x := range tc.hidden {
			if snap.sees(x) {
				t.Errorf("%q should not see %d", tc.text, x)
			}
		}
	}
	for _, bad := range []string{"", "1:2", "1:2:3:4", "a:2:", "1:b:", "1:2:x", "1:2:3,", "-1:2:"} {
		if _, err := parseSnapshot(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestCommittedVisible checks the snapshot test against PostgreSQL: a
// transaction still open is not visible, the same one committed is.
func TestCommittedVisible(t *testing.T) {
	ctx, db := openInternal(t)
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	var text string
	if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&text); err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	xid := uint32(id)
	if ok, err := db.committedVisible(ctx, []uint32{xid}); err != nil || ok {
		t.Fatalf("open transaction %d: visible %v, %v", xid, ok, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.committedVisible(ctx, []uint32{xid}); err != nil || !ok {
		t.Fatalf("committed transaction %d: visible %v, %v", xid, ok, err)
	}
}

// TestHandoffWaitsForVisibility: a transaction with changes reaches handle
// only after the visibility check passes; one without changes never waits.
func TestHandoffWaitsForVisibility(t *testing.T) {
	var checks atomic.Int32
	var checked []uint32
	handled := make(chan int32, 2)
	h := newHandoff(0, func(cs []dollr.Change) error {
		handled <- checks.Load()
		return nil
	})
	h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	h.visible = func(_ context.Context, xids []uint32) (bool, error) {
		checked = xids
		return checks.Add(1) >= 3, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	go h.run(ctx, cancel)
	defer func() { cancel(); <-h.done }()

	h.put(ctx, committedTxn{seq: 1, end: 1, xid: 6}) // nothing published
	h.put(ctx, committedTxn{changes: []dollr.Change{{Table: "t"}}, seq: 2, end: 2, xid: 7})
	select {
	case n := <-handled:
		if n != 3 {
			t.Fatalf("handled after %d checks, want after the third (the first to pass)", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("never handled")
	}
	if len(checked) != 1 || checked[0] != 7 {
		t.Fatalf("checked %v, want [7]: only transactions with changes wait", checked)
	}
}

// TestWaitVisibleBounded: a check that never answers (every pool connection
// busy, say) holds delivery no longer than maxVisibilityWait.
func TestWaitVisibleBounded(t *testing.T) {
	var logged atomic.Int32
	log := warnFunc(func(string, ...any) { logged.Add(1) })
	hang := func(ctx context.Context, _ []uint32) (bool, error) {
		<-ctx.Done()
		return false, ctx.Err()
	}
	done := make(chan struct{})
	go func() {
		waitVisible(context.Background(), []uint32{7}, hang, log)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(maxVisibilityWait + 20*time.Second):
		t.Fatal("waitVisible still waiting on a check that never answers")
	}
	if logged.Load() != 1 {
		t.Fatalf("%d warnings, want one saying it delivered anyway", logged.Load())
	}
}

type warnFunc func(string, ...any)

func (f warnFunc) Warn(msg string, args ...any) { f(msg, args...) }

// openInternal opens a store on a new database for a test of this package's
// internals, closed when t ends; ctx ends after a minute.
func openInternal(t *testing.T) (context.Context, *DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	db, err := Open(ctx, pgtest.NewDatabase(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return ctx, db
}
