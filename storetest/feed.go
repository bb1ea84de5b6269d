package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// waitLimit bounds every wait for something asynchronous. It is generous
// because a loaded 2-core machine can stall; passing tests never wait it out.
const waitLimit = 20 * time.Second

// Follower runs a change feed in the background and records every change;
// backend packages use it for their own feed tests.
type Follower struct {
	mu      sync.Mutex
	changes []dollr.Change
	batches int
	bad     string        // the first contract violation seen by the handler
	updated chan struct{} // signalled (coalescing) when changes grow
	done    chan error    // Follow's return value
	cancel  context.CancelFunc
}

func follow(t *testing.T, s dollr.Store, after uint64) *Follower { return Follow(t, s, after, nil) }

// Follow runs feed.Follow(after) in the background until the test ends,
// recording every change and any contract violation (an empty batch, a change
// at or before after), which Stop reports. block, if not nil, is called with
// each batch before it is recorded, so a test can hold the handler.
func Follow(t *testing.T, feed dollr.ChangeFeed, after uint64, block func([]dollr.Change)) *Follower {
	t.Helper()
	c, cancel := context.WithCancel(context.Background())
	f := &Follower{updated: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- feed.Follow(c, after, func(batch []dollr.Change) error {
			if block != nil {
				block(batch)
			}
			f.mu.Lock()
			if len(batch) == 0 && f.bad == "" {
				f.bad = "handle called with an empty batch"
			}
			for _, ch := range batch {
				if ch.Seq <= after && f.bad == "" {
					f.bad = fmt.Sprintf("change seq %d delivered to Follow(after=%d)", ch.Seq, after)
				}
			}
			f.changes = append(f.changes, batch...)
			f.batches++
			f.mu.Unlock()
			select {
			case f.updated <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() { f.Stop(t) })
	return f
}

// Stop cancels Follow and checks that it returned the context's error.
func (f *Follower) Stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	select {
	case err := <-f.done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Follow returned %v after its context was canceled, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Errorf("Follow did not return after its context was canceled")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.bad != "" {
		t.Errorf("Follow: %s", f.bad)
	}
}

// Snapshot returns a copy of the changes seen so far.
func (f *Follower) Snapshot() []dollr.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dollr.Change(nil), f.changes...)
}

// WaitFor waits until cond holds for the changes seen so far, or fails.
func (f *Follower) WaitFor(t *testing.T, what string, cond func([]dollr.Change) bool) []dollr.Change {
	t.Helper()
	if got, ok := f.Await(cond, waitLimit); ok {
		return got
	}
	t.Fatalf("Follower: timed out waiting for %s; got %d changes", what, len(f.Snapshot()))
	return nil
}

// Await waits up to limit for cond to hold for the changes seen so far.
func (f *Follower) Await(cond func([]dollr.Change) bool, limit time.Duration) ([]dollr.Change, bool) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if got := f.Snapshot(); cond(got) {
			return got, true
		}
		select {
		case <-f.updated:
		case <-deadline.C:
			return nil, false
		case err := <-f.done:
			f.done <- err
			if got := f.Snapshot(); cond(got) {
				return got, true
			}
			return nil, false
		}
	}
}

// Live makes sure the Follower receives new commits: a backend may start a
// feed later than the position asked for, so probes are committed until one
// arrives. Every change committed after live returns must be delivered.
func (f *Follower) Live(t *testing.T, s dollr.Store, m *dollr.Merchant) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		_, probe := newExecution(t, s, m)
		if _, ok := f.Await(func(cs []dollr.Change) bool { return indexOf(cs, probe.ID, dollr.ChangeInsert, "") >= 0 }, time.Second); ok {
			return
		}
	}
	t.Fatalf("Follower never received a probe change")
}

// RowID returns the id of the row a change is about.
func RowID(c dollr.Change) int64 {
	rec := c.Record
	if rec == nil {
		rec = c.OldRecord
	}
	id, _ := rec["id"].(int64)
	return id
}

// indexOf returns the position of the change of row id with the given type
// and status ("" for any), or -1.
func indexOf(cs []dollr.Change, id int64, typ dollr.ChangeType, status dollr.ExecutionStatus) int {
	for i, c := range cs {
		if RowID(c) == id && c.Type == typ && (status == "" || c.Record["status"] == string(status)) {
			return i
		}
	}
	return -1
}

// of returns the changes of one row, in delivery order.
func of(cs []dollr.Change, id int64) []dollr.Change {
	var out []dollr.Change
	for _, c := range cs {
		if RowID(c) == id {
			out = append(out, c)
		}
	}
	return out
}

// checkOrder checks that Seq never decreases: the feed is in commit order.
func checkOrder(t *testing.T, cs []dollr.Change) {
	t.Helper()
	for i := 1; i < len(cs); i++ {
		if cs[i].Seq < cs[i-1].Seq {
			t.Fatalf("change %d has seq %d after seq %d: not in commit order", i, cs[i].Seq, cs[i-1].Seq)
		}
	}
}

// checkChange checks one change against the row it must carry.
func checkChange(t *testing.T, c dollr.Change, typ dollr.ChangeType, row dollr.PublicStatus) {
	t.Helper()
	if c.Schema != dollr.PublicSchema || c.Table != dollr.PublicStatusTable {
		t.Errorf("change of %s.%s, want %s.%s", c.Schema, c.Table, dollr.PublicSchema, dollr.PublicStatusTable)
	}
	if c.Type != typ {
		t.Errorf("change type %s, want %s", c.Type, typ)
	}
	if c.Seq == 0 {
		t.Errorf("change has seq 0")
	}
	if !reflect.DeepEqual(c.Columns, dollr.PublicStatusColumns) {
		t.Errorf("columns = %v, want %v", c.Columns, dollr.PublicStatusColumns)
	}
	if c.CommitTime.IsZero() || c.CommitTime.Before(row.UpdatedAt.Add(-time.Hour)) || c.CommitTime.After(time.Now().Add(time.Hour)) {
		t.Errorf("commit time %v, want about now", c.CommitTime)
	}
	if want := row.Record(); !reflect.DeepEqual(c.Record, want) {
		t.Errorf("record:\n got %s\nwant %s", typed(c.Record), typed(want))
	}
	switch typ {
	case dollr.ChangeInsert:
		if c.OldRecord != nil {
			t.Errorf("INSERT old_record = %v, want nil", c.OldRecord)
		}
	case dollr.ChangeUpdate:
		if want := map[string]any{dollr.PublicStatusKey: row.ID}; !reflect.DeepEqual(c.OldRecord, want) {
			t.Errorf("UPDATE old_record = %s, want %s", typed(c.OldRecord), typed(want))
		}
	}
}

// typed renders a record with the Go type of every value, so a json.Number
// where an int64 belongs shows up in a failure message.
func typed(rec map[string]any) string {
	out := "{"
	for _, col := range dollr.PublicStatusColumns {
		if v, ok := rec[col.Name]; ok {
			out += fmt.Sprintf(" %s:%T(%v)", col.Name, v, v)
		}
	}
	for k, v := range rec {
		found := false
		for _, col := range dollr.PublicStatusColumns {
			found = found || col.Name == k
		}
		if !found {
			out += fmt.Sprintf(" EXTRA %s:%T(%v)", k, v, v)
		}
	}
	return out + " }"
}

func testFollowFromHead(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	_, before := newExecution(t, s, m)
	head, err := s.Head(ctx(t))
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if head == 0 {
		t.Fatalf("Head = 0 after a committed change")
	}
	f := follow(t, s, head)
	f.Live(t, s, m)
	_, e := newExecution(t, s, m)
	e = transition(t, s, e, dollr.StatusProcessing)
	got := f.WaitFor(t, "INSERT and UPDATE", func(cs []dollr.Change) bool {
		return indexOf(cs, e.ID, dollr.ChangeUpdate, dollr.StatusProcessing) >= 0
	})
	checkOrder(t, got)
	for _, c := range got {
		if c.Seq <= head {
			t.Errorf("Follow(Head=%d) delivered seq %d", head, c.Seq)
		}
	}
	if n := len(of(got, before.ID)); n != 0 {
		t.Errorf("Follow(Head) delivered %d changes committed before Head", n)
	}
	if rows := of(got, e.ID); len(rows) != 2 || rows[0].Type != dollr.ChangeInsert || rows[1].Type != dollr.ChangeUpdate || rows[0].Seq >= rows[1].Seq {
		t.Errorf("changes of the row = %+v, want INSERT then UPDATE with increasing seq", rows)
	}
	if h, err := s.Head(ctx(t)); err != nil || h < got[len(got)-1].Seq {
		t.Errorf("Head = %d, %v; want >= the last delivered seq %d", h, err, got[len(got)-1].Seq)
	}
}

func testFollowFromZero(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	_, old := newExecution(t, s, m)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	_, e := newExecution(t, s, m)
	e = transition(t, s, e, dollr.StatusProcessing)
	e = transition(t, s, e, dollr.StatusCompleted)
	got := f.WaitFor(t, "the row's three changes", func(cs []dollr.Change) bool {
		return indexOf(cs, e.ID, dollr.ChangeUpdate, dollr.StatusCompleted) >= 0
	})
	checkOrder(t, got)
	// A backend that replays delivers the older change first, exactly once;
	// one that cannot may leave it out.
	if olds := of(got, old.ID); len(olds) > 1 {
		t.Errorf("the change before Follow was delivered %d times", len(olds))
	} else if len(olds) == 1 && olds[0].Seq >= of(got, e.ID)[0].Seq {
		t.Errorf("the change before Follow came after later ones")
	}
	rows := of(got, e.ID)
	if len(rows) != 3 {
		t.Fatalf("row changes = %d, want 3 (INSERT, PROCESSING, COMPLETED)", len(rows))
	}
	for i, st := range []dollr.ExecutionStatus{dollr.StatusPending, dollr.StatusProcessing, dollr.StatusCompleted} {
		if rows[i].Record["status"] != string(st) {
			t.Errorf("change %d status %v, want %s", i, rows[i].Record["status"], st)
		}
		if i > 0 && rows[i].Seq <= rows[i-1].Seq {
			t.Errorf("seq %d after %d: separate commits must have increasing seq", rows[i].Seq, rows[i-1].Seq)
		}
	}
}

func testChangeRecords(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)

	c := newChain(t, s, m)
	ex := c.execution()
	ex.PayerAmount = 1205 // 12.05 keeps its zero: numeric renders as 12.05
	inserted := create(t, s, ex)
	msg := "Approve the prompt on your phone"
	processing, _, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: inserted.ID, From: dollr.StatusPending,
		To: dollr.StatusProcessing, At: inserted.CreatedAt.Add(1500 * time.Microsecond), GatewayMessage: &msg, RequiresAction: new(bool)})
	if err != nil {
		t.Fatalf("ApplyTransition: %v", err)
	}
	yes := true
	completed, _, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: inserted.ID, From: dollr.StatusProcessing,
		To: dollr.StatusCompleted, At: processing.UpdatedAt.Add(time.Second), RequiresAction: &yes})
	if err != nil {
		t.Fatalf("ApplyTransition: %v", err)
	}
	got := f.WaitFor(t, "three changes", func(cs []dollr.Change) bool {
		return indexOf(cs, inserted.ID, dollr.ChangeUpdate, dollr.StatusCompleted) >= 0
	})
	rows := of(got, inserted.ID)
	if len(rows) != 3 {
		t.Fatalf("got %d changes of the row, want 3", len(rows))
	}
	checkChange(t, rows[0], dollr.ChangeInsert, inserted.PublicStatus())
	checkChange(t, rows[1], dollr.ChangeUpdate, processing.PublicStatus())
	checkChange(t, rows[2], dollr.ChangeUpdate, completed.PublicStatus())

	// Spot-check the JSON types the realtime server relies on.
	r := rows[0].Record
	if _, ok := r["id"].(int64); !ok {
		t.Errorf("id is %T, want int64", r["id"])
	}
	if n, ok := r["payer_amount"].(json.Number); !ok || n != "12.05" {
		t.Errorf("payer_amount is %T(%v), want json.Number 12.05", r["payer_amount"], r["payer_amount"])
	}
	if r["gateway_message"] != nil {
		t.Errorf("empty gateway_message is %v, want nil (NULL)", r["gateway_message"])
	}
	if rows[1].Record["gateway_message"] != msg || rows[2].Record["requires_action"] != true {
		t.Errorf("updated record = %s", typed(rows[2].Record))
	}
	if ts, ok := r["created_at"].(string); !ok || ts != dollr.FormatTimestamptz(inserted.CreatedAt) {
		t.Errorf("created_at is %T(%v), want %q", r["created_at"], r["created_at"], dollr.FormatTimestamptz(inserted.CreatedAt))
	}
}

func testChangeCommitOrder(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)

	const writers, perWriter = 4, 8
	ids := make(chan int64, writers*perWriter)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range perWriter {
				c := newChain(t, s, m)
				e, created, err := s.CreateExecution(ctx(t), c.execution(), nil)
				if err != nil || !created {
					t.Errorf("CreateExecution: %v", err)
					return
				}
				ids <- e.ID
				for _, to := range []dollr.ExecutionStatus{dollr.StatusProcessing, dollr.StatusCompleted} {
					next, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: e.ID, From: e.Status, To: to, At: now()})
					if err != nil || !applied {
						t.Errorf("ApplyTransition: %v", err)
						return
					}
					e = next
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	if t.Failed() {
		return
	}
	var all []int64
	for id := range ids {
		all = append(all, id)
	}
	got := f.WaitFor(t, "every change", func(cs []dollr.Change) bool {
		for _, id := range all {
			if indexOf(cs, id, dollr.ChangeUpdate, dollr.StatusCompleted) < 0 {
				return false
			}
		}
		return true
	})
	// Every change here is its own commit, so seq strictly increases.
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("change %d has seq %d after %d: separate commits need increasing seq", i, got[i].Seq, got[i-1].Seq)
		}
	}
	for _, id := range all {
		rows := of(got, id)
		if len(rows) != 3 || rows[0].Type != dollr.ChangeInsert ||
			rows[1].Record["status"] != string(dollr.StatusProcessing) || rows[2].Record["status"] != string(dollr.StatusCompleted) {
			t.Errorf("row %d changes = %d, want INSERT, PROCESSING, COMPLETED once each in order", id, len(rows))
		}
	}
	head, err := s.Head(ctx(t))
	if err != nil || head < got[len(got)-1].Seq {
		t.Errorf("Head = %d, %v; want >= %d", head, err, got[len(got)-1].Seq)
	}
}

func testChangeRolledBack(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)

	c, a := newExecution(t, s, m)
	// Each of these fails or is a no-op and must emit nothing.
	conflict := c.execution()
	if _, _, err := s.CreateExecution(ctx(t), conflict, nil); dollr.ErrorCode(err) != dollr.ECONFLICT {
		t.Fatalf("CreateExecution on a used session = %v, want ECONFLICT", err)
	}
	retry := *a
	retry.ID = 0
	if _, created, err := s.CreateExecution(ctx(t), &retry, nil); err != nil || created {
		t.Fatalf("idempotent retry = created %v, %v", created, err)
	}
	if _, _, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: a.ID, From: dollr.StatusCompleted, To: dollr.StatusPending, At: now()}); dollr.ErrorCode(err) != dollr.EINVALID {
		t.Fatalf("illegal transition = %v, want EINVALID", err)
	}
	if _, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: a.ID, From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: now()}); err != nil || applied {
		t.Fatalf("stale transition = applied %v, %v", applied, err)
	}
	_, sentinel := newExecution(t, s, m)
	got := f.WaitFor(t, "the sentinel", func(cs []dollr.Change) bool {
		return indexOf(cs, sentinel.ID, dollr.ChangeInsert, "") >= 0
	})
	from := indexOf(got, a.ID, dollr.ChangeInsert, "")
	to := indexOf(got, sentinel.ID, dollr.ChangeInsert, "")
	if from < 0 || to < from {
		t.Fatalf("insert of a at %d, sentinel at %d", from, to)
	}
	for _, c := range got[from+1 : to] {
		if RowID(c) == a.ID || c.Record["reference_id"] == conflict.ReferenceID {
			t.Errorf("a failed or no-op write emitted %s of row %d: %s", c.Type, RowID(c), typed(c.Record))
		}
	}
}

func testChangeConcurrentCreateOnce(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	c := newChain(t, s, m)
	proto := c.execution()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			e := *proto
			if _, _, err := s.CreateExecution(ctx(t), &e, nil); err != nil {
				t.Errorf("CreateExecution: %v", err)
			}
		})
	}
	wg.Wait()
	_, sentinel := newExecution(t, s, m)
	got := f.WaitFor(t, "the sentinel", func(cs []dollr.Change) bool {
		return indexOf(cs, sentinel.ID, dollr.ChangeInsert, "") >= 0
	})
	n := 0
	for _, c := range got {
		if c.Record["reference_id"] == proto.ReferenceID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d changes for one idempotent execution, want 1", n)
	}
}

func testFollowStops(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	// handle's error ends Follow and is returned.
	stop := errors.New("stop here")
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(context.Background(), 0, func([]dollr.Change) error { return stop })
	}()
	deadline := time.After(waitLimit)
	for {
		_, _ = newExecution(t, s, m)
		select {
		case err := <-done:
			if !errors.Is(err, stop) {
				t.Fatalf("Follow returned %v, want the handler's error", err)
			}
			return
		case <-deadline:
			t.Fatalf("Follow did not return the handler's error")
		case <-time.After(100 * time.Millisecond):
			// no change reached the handler yet: commit another
		}
	}
}

func testPublicStatus(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	c, e := newExecution(t, s, m)
	e = transition(t, s, e, dollr.StatusProcessing)
	got := f.WaitFor(t, "the update", func(cs []dollr.Change) bool {
		return indexOf(cs, e.ID, dollr.ChangeUpdate, dollr.StatusProcessing) >= 0
	})
	last := got[indexOf(got, e.ID, dollr.ChangeUpdate, dollr.StatusProcessing)]
	row, seq, err := s.PublicStatus(ctx(t), c.sess.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("PublicStatus: %v", err)
	}
	checkPublicStatus(t, "PublicStatus", row, e.PublicStatus())
	if seq < last.Seq {
		t.Errorf("PublicStatus seq %d < seq %d of the row's last change", seq, last.Seq)
	}
	_, _, err = s.PublicStatus(ctx(t), c.sess.ID, newUUID())
	wantCode(t, err, dollr.ENOTFOUND, "PublicStatus(unknown reference)")
	_, _, err = s.PublicStatus(ctx(t), c.sess.ID+1000, e.ReferenceID)
	wantCode(t, err, dollr.ENOTFOUND, "PublicStatus(reference under another session)")
}

func testPublicStatusSnapshotSeq(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	c, e := newExecution(t, s, m)
	// A snapshot followed by the changes with Seq above its seq is never
	// missing a change: what the realtime server sends a joining client.
	row, seq, err := s.PublicStatus(ctx(t), c.sess.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("PublicStatus: %v", err)
	}
	e = transition(t, s, e, dollr.StatusProcessing)
	got := f.WaitFor(t, "the update", func(cs []dollr.Change) bool {
		return indexOf(cs, e.ID, dollr.ChangeUpdate, dollr.StatusProcessing) >= 0
	})
	update := got[indexOf(got, e.ID, dollr.ChangeUpdate, dollr.StatusProcessing)]
	if update.Seq <= seq {
		t.Errorf("change after the snapshot has seq %d <= snapshot seq %d", update.Seq, seq)
	}
	insert := got[indexOf(got, e.ID, dollr.ChangeInsert, "")]
	if insert.Seq > seq {
		t.Errorf("snapshot seq %d is below the seq %d of the insert it shows", seq, insert.Seq)
	}
	// A snapshot's commit time, when the store gives one, sits between the
	// commit it shows and the next change: a UI that drops events older than
	// what it has must neither drop the snapshot nor the change after it.
	if !row.CommitTime.IsZero() {
		if row.CommitTime.Before(insert.CommitTime) {
			t.Errorf("snapshot commit time %v is before the insert it shows (%v)", row.CommitTime, insert.CommitTime)
		}
		if row.CommitTime.After(update.CommitTime) {
			t.Errorf("snapshot commit time %v is after the next change's (%v)", row.CommitTime, update.CommitTime)
		}
	}
}

// EqualChanges compares changes as the realtime server sees them: commit
// times by instant, everything else by value and Go type.
func EqualChanges(a, b []dollr.Change) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.CommitTime.Equal(y.CommitTime) {
			return false
		}
		x.CommitTime, y.CommitTime = time.Time{}, time.Time{}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
