package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

const waitLimit = 20 * time.Second

func openDB(t testing.TB, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var counter atomic.Int64

func newMerchant(t testing.TB, db *DB) *dollr.Merchant {
	t.Helper()
	n := counter.Add(1)
	m := &dollr.Merchant{Name: "m", ClientID: fmt.Sprintf("client-%d-%d", n, time.Now().UnixNano()), ClientSecretHash: "h"}
	if err := db.CreateMerchant(context.Background(), m); err != nil {
		t.Fatalf("CreateMerchant: %v", err)
	}
	return m
}

// newPending stores a source, session and account and returns an unsaved
// PENDING execution on them.
func newPending(t testing.TB, db *DB, m *dollr.Merchant) *dollr.Execution {
	t.Helper()
	ctx := context.Background()
	n := counter.Add(1)
	party := &dollr.Party{MerchantID: m.ID, Name: "p", Phone: fmt.Sprintf("23177%07d", n)}
	src := &dollr.Source{MerchantID: m.ID, Type: dollr.SourceInvoice, Status: dollr.SourceActive, Currency: "USD",
		Items: []dollr.Item{{Name: "x", Currency: "USD", Amount: 1000}}, TotalAmount: 1000, Mode: dollr.ModeDirect}
	if err := db.CreateCheckoutSource(ctx, party, src); err != nil {
		t.Fatalf("CreateCheckoutSource: %v", err)
	}
	sess := &dollr.Session{MerchantID: m.ID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: time.Now().Add(time.Hour)}
	if err := db.CreateSession(ctx, sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	acct := &dollr.PaymentAccount{MerchantID: m.ID, PartyID: party.ID, AccountName: "a", Provider: dollr.ProviderPawapay,
		Method: "MTN_MOMO_LBR", AccountNumber: party.Phone, OperationType: dollr.OperationCollection, IsActive: true}
	if err := db.CreatePaymentAccount(ctx, acct); err != nil {
		t.Fatalf("CreatePaymentAccount: %v", err)
	}
	return &dollr.Execution{MerchantID: m.ID, ReferenceID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), SessionID: sess.ID,
		SourceID: src.ID, SourceType: src.Type, PaymentAccountID: acct.ID, PaymentMethod: acct.Method, Status: dollr.StatusPending,
		PayerAmount: 1000, PayerCurrency: "USD", PayeeAmount: 980, PayeeCurrency: "USD", OperationType: dollr.OperationCollection}
}

func createExecution(t testing.TB, db *DB, e *dollr.Execution, jobs ...dollr.Job) *dollr.Execution {
	t.Helper()
	stored, created, err := db.CreateExecution(context.Background(), e, jobs)
	if err != nil || !created {
		t.Fatalf("CreateExecution = %v, %v", created, err)
	}
	return stored
}

// collector records what a Follow delivers.
type collector struct {
	mu      sync.Mutex
	changes []dollr.Change
	updated chan struct{}
	done    chan error
}

func collect(t *testing.T, db *DB, after uint64, gate <-chan struct{}) *collector {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{updated: make(chan struct{}, 1), done: make(chan error, 1)}
	go func() {
		c.done <- db.Follow(ctx, after, func(batch []dollr.Change) error {
			if gate != nil {
				<-gate
			}
			c.mu.Lock()
			c.changes = append(c.changes, batch...)
			c.mu.Unlock()
			select {
			case c.updated <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	return c
}

// waitN waits until at least n changes arrived and returns them.
func (c *collector) waitN(t *testing.T, n int) []dollr.Change {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got := append([]dollr.Change(nil), c.changes...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.updated:
		case <-deadline.C:
			t.Fatalf("got %d changes, want %d", len(got), n)
		}
	}
}

// checkContiguous checks the changes have seq from, from+1, ...
func checkContiguous(t *testing.T, cs []dollr.Change, from uint64) {
	t.Helper()
	for i, c := range cs {
		if c.Seq != from+uint64(i) {
			t.Fatalf("change %d has seq %d, want %d", i, c.Seq, from+uint64(i))
		}
	}
}

func TestReopenKeepsDataAndJobs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dollr.db")
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Microsecond)

	db := openDB(t, path)
	m := newMerchant(t, db)
	e := createExecution(t, db, newPending(t, db, m), dollr.Job{Kind: "leased", RunAt: t0}, dollr.Job{Kind: "later", RunAt: t0.Add(time.Minute)})
	processing, _, err := db.ApplyTransition(ctx, dollr.Transition{ExecutionID: e.ID, From: dollr.StatusPending, To: dollr.StatusProcessing, At: t0})
	if err != nil {
		t.Fatalf("ApplyTransition: %v", err)
	}
	claimed, err := db.ClaimJobs(ctx, t0, 1, time.Hour)
	if err != nil || len(claimed) != 1 || claimed[0].Kind != "leased" {
		t.Fatalf("ClaimJobs = %v, %v", claimed, err)
	}
	secret, _ := db.Setting(ctx, "secret", "s1")
	head, _ := db.Head(ctx)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	db2 := openDB(t, path)
	if got, err := db2.Merchant(ctx, m.ID); err != nil || got.ClientID != m.ClientID {
		t.Fatalf("merchant after reopen = %v, %v", got, err)
	}
	if got, err := db2.ExecutionByID(ctx, e.ID); err != nil || got.Status != dollr.StatusProcessing {
		t.Fatalf("execution after reopen = %v, %v", got, err)
	}
	if got, _ := db2.Setting(ctx, "secret", "s2"); got != secret {
		t.Fatalf("setting after reopen = %q, want %q", got, secret)
	}
	if h, err := db2.Head(ctx); err != nil || h != head {
		t.Fatalf("Head after reopen = %d, %v; want %d", h, err, head)
	}
	// The pending job runs when due; the leased one once its lease lapses.
	if at, ok, err := db2.NextJobAt(ctx); err != nil || !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Fatalf("NextJobAt after reopen = %v, %v, %v", at, ok, err)
	}
	jobs, err := db2.ClaimJobs(ctx, t0.Add(time.Minute), 10, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].Kind != "later" || jobs[0].ExecutionID != e.ID {
		t.Fatalf("due jobs after reopen = %+v, %v", jobs, err)
	}
	jobs, err = db2.ClaimJobs(ctx, t0.Add(2*time.Hour), 10, time.Minute)
	if err != nil || len(jobs) != 2 || jobs[0].Kind != "leased" || jobs[0].Attempts != 2 {
		t.Fatalf("jobs after the lease = %+v, %v; want leased (attempt 2) and later", jobs, err)
	}

	// The old changes replay from change_log with the types of dollr.Change.
	c := collect(t, db2, 0, nil)
	got := c.waitN(t, 2)
	checkContiguous(t, got, 1)
	if !reflect.DeepEqual(got[0].Record, e.PublicStatus().Record()) || got[0].Type != dollr.ChangeInsert || got[0].OldRecord != nil {
		t.Errorf("replayed insert = %+v\nwant record %v", got[0], e.PublicStatus().Record())
	}
	if !reflect.DeepEqual(got[1].Record, processing.PublicStatus().Record()) ||
		!reflect.DeepEqual(got[1].OldRecord, map[string]any{"id": e.ID}) || !reflect.DeepEqual(got[1].Columns, dollr.PublicStatusColumns) {
		t.Errorf("replayed update = %+v", got[1])
	}
	// New changes continue the sequence.
	createExecution(t, db2, newPending(t, db2, m))
	got = c.waitN(t, 3)
	checkContiguous(t, got, 1)
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dollr.db")
	// Concurrent opens of a new file (as two processes would) both succeed.
	var wg sync.WaitGroup
	dbs := make([]*DB, 3)
	errs := make([]error, 3)
	for i := range dbs {
		wg.Go(func() { dbs[i], errs[i] = Open(context.Background(), path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		dbs[i].Close()
	}
	db := openDB(t, path)
	all, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var n, max int
	if err := db.read.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(all) || max != all[len(all)-1].version {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d up to %d", n, max, len(all), all[len(all)-1].version)
	}
}

func TestPragmas(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "dollr.db"))
	var mode string
	var fk, busy int
	if err := db.read.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	for _, pool := range []interface {
		QueryRow(string, ...any) *sql.Row
	}{db.read, writerConn{db.writer}} {
		withWriter(db, func() {
			if err := pool.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
				t.Errorf("foreign_keys = %d, %v", fk, err)
			}
			if err := pool.QueryRow(`PRAGMA busy_timeout`).Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
				t.Errorf("busy_timeout = %d, %v", busy, err)
			}
		})
	}
	if _, err := db.read.Exec(`DELETE FROM merchants`); err == nil {
		t.Errorf("the read pool accepted a write")
	}
}

// A follower that falls behind the in-memory window catches up from change_log.
func TestFollowBehindWindow(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "dollr.db"))
	db.feed.size = 4
	m := newMerchant(t, db)
	gate := make(chan struct{})
	c := collect(t, db, 0, gate)
	const n = 40
	for range n {
		createExecution(t, db, newPending(t, db, m))
	}
	close(gate)
	got := c.waitN(t, n)
	if len(got) != n {
		t.Fatalf("got %d changes, want %d", len(got), n)
	}
	checkContiguous(t, got, 1)
	if db.feed.base == 0 {
		t.Fatalf("the window never moved: the test did not exercise the catch-up")
	}
	for _, ch := range got {
		if _, ok := ch.Record["id"].(int64); !ok {
			t.Fatalf("record id is %T", ch.Record["id"])
		}
	}
}

// A write by another process (here another DB on the same file) reaches this
// process's followers with the next local commit, in order.
func TestFollowSeesOtherWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dollr.db")
	a := openDB(t, path)
	b := openDB(t, path)
	m := newMerchant(t, a)
	c := collect(t, a, 0, nil)
	createExecution(t, a, newPending(t, a, m))
	c.waitN(t, 1)
	createExecution(t, b, newPending(t, b, m))
	createExecution(t, a, newPending(t, a, m))
	got := c.waitN(t, 3)
	checkContiguous(t, got, 1)
	// With no local commit after it, the other writer's change still arrives.
	createExecution(t, b, newPending(t, b, m))
	got = c.waitN(t, 4)
	checkContiguous(t, got, 1)
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "dollr.db"))
	db.feed.size = 4
	m := newMerchant(t, db)
	for range 30 {
		createExecution(t, db, newPending(t, db, m))
	}
	// Keep the newest 10.
	n, err := db.prune(ctx, time.Now().Add(-time.Hour), 10)
	if err != nil || n != 20 {
		t.Fatalf("prune by count deleted %d, %v; want 20", n, err)
	}
	var oldest int64
	if err := db.read.QueryRow(`SELECT min(seq) FROM change_log`).Scan(&oldest); err != nil || oldest != 21 {
		t.Fatalf("oldest seq = %d, %v; want 21", oldest, err)
	}
	// Everything older than the cutoff goes; the head survives it.
	if n, err := db.prune(ctx, time.Now().Add(time.Hour), 1000); err != nil || n != 10 {
		t.Fatalf("prune by age deleted %d, %v; want 10", n, err)
	}
	if h, err := db.Head(ctx); err != nil || h != 30 {
		t.Fatalf("Head after pruning everything = %d, %v; want 30", h, err)
	}
	// A follower asking for pruned history starts with what is left: the
	// in-memory window.
	db.feed.mu.Lock()
	base := db.feed.base
	db.feed.mu.Unlock()
	if base <= 5 {
		t.Fatalf("window base %d: the test needs the window past seq 5", base)
	}
	c := collect(t, db, 5, nil)
	createExecution(t, db, newPending(t, db, m))
	got := c.waitN(t, int(31-base))
	checkContiguous(t, got, base+1)
}

// Close ends Follow.
func TestCloseEndsFollow(t *testing.T) {
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "dollr.db"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.Follow(context.Background(), 0, func([]dollr.Change) error { return nil }) }()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != ErrClosed {
			t.Fatalf("Follow returned %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Follow did not return after Close")
	}
}

// writerConn lets a test query the writer connection.
type writerConn struct{ c *sql.Conn }

func (w writerConn) QueryRow(q string, args ...any) *sql.Row {
	return w.c.QueryRowContext(context.Background(), q, args...)
}

// withWriter runs fn while no write transaction is running.
func withWriter(db *DB, fn func()) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	fn()
}

func TestCheckpoint(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "dollr.db"))
	m := newMerchant(t, db)
	for range 20 {
		createExecution(t, db, newPending(t, db, m))
	}
	// A read that overlaps a checkpoint (the background checkpointer's own, or a
	// pooled reader) can hold back frames for one round; a full copy must
	// follow soon after on an idle database.
	deadline := time.Now().Add(waitLimit)
	for {
		frames, copied, err := db.checkpoint(context.Background())
		if err != nil {
			t.Fatalf("checkpoint: %v", err)
		}
		if copied == frames {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint copied %d of %d WAL frames with no writer active", copied, frames)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Checkpointed data reads back after a reopen.
	path := db.path
	db.Close()
	db2 := openDB(t, path)
	if _, err := db2.Merchant(context.Background(), m.ID); err != nil {
		t.Fatalf("Merchant after checkpoint and reopen: %v", err)
	}
}

// A full database (here capped with max_page_count, as a full disk would
// stop it) is EUNAVAILABLE, which the API answers 503 with Retry-After, and
// writes work again once there is room.
func TestFullDatabaseUnavailable(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "dollr.db"))
	ctx := context.Background()
	setMaxPages := func(q string) {
		t.Helper()
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
		if _, err := db.writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	setMaxPages("PRAGMA max_page_count = 1") // clamped to the pages in use: no room left
	var err error
	for i := 0; i < 1000 && err == nil; i++ { // the free pages fill up
		err = db.CreateMerchant(ctx, &dollr.Merchant{Name: strings.Repeat("m", 2000), ClientID: fmt.Sprintf("full-%d", i), ClientSecretHash: "00"})
	}
	if !dollr.IsUnavailable(err) {
		t.Fatalf("write to a full database: %v (code %s), want %s", err, dollr.ErrorCode(err), dollr.EUNAVAILABLE)
	}
	setMaxPages("PRAGMA max_page_count = 1073741823")
	if err := db.CreateMerchant(ctx, &dollr.Merchant{Name: "m", ClientID: "after-full", ClientSecretHash: "00"}); err != nil {
		t.Fatalf("write once there is room: %v", err)
	}
}
