package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
	"github.com/jackc/pgx/v5"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctxT(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	// to_jsonb renders timestamptz in the session's zone; the feed's is UTC.
	if _, err := conn.Exec(ctxT(t), "SET timezone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// canonical round-trips v through JSON so a feed record and a to_jsonb
// value compare by JSON value, not Go type.
func canonical(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// toJSONB returns PostgreSQL's own rendering of a row.
func toJSONB(t *testing.T, conn *pgx.Conn, table string, id int64) any {
	t.Helper()
	var raw string
	if err := conn.QueryRow(ctxT(t), "SELECT to_jsonb(r)::text FROM "+table+" r WHERE id = $1", id).Scan(&raw); err != nil {
		t.Fatalf("to_jsonb of %s %d: %v", table, id, err)
	}
	var v any
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// A support engineer's UPDATE in psql reaches the feed like the API's own.
func TestExternalWritesReachFollow(t *testing.T) {
	db, url := open(t)
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	e := mustPending(t, db, m)
	conn := connect(t, url)
	if _, err := conn.Exec(ctxT(t), `UPDATE checkout_payment_intent_public_status
		SET status = 'COMPLETED', gateway_message = 'fixed by support', payer_amount = 99.9, updated_at = now()
		WHERE id = $1`, e.ID); err != nil {
		t.Fatal(err)
	}
	want := toJSONB(t, conn, dollr.PublicStatusTable, e.ID)
	if _, err := conn.Exec(ctxT(t), "DELETE FROM checkout_payment_intent_public_status WHERE id = $1", e.ID); err != nil {
		t.Fatal(err)
	}
	got := f.WaitFor(t, "the external UPDATE and DELETE", func(cs []dollr.Change) bool {
		return has(cs, e.ID, dollr.ChangeDelete, "")
	})
	var upd, del *dollr.Change
	for i := range got {
		if rowID(got[i]) == e.ID && got[i].Type == dollr.ChangeUpdate {
			upd = &got[i]
		}
		if rowID(got[i]) == e.ID && got[i].Type == dollr.ChangeDelete {
			del = &got[i]
		}
	}
	if upd == nil {
		t.Fatal("no UPDATE change")
	}
	if !reflect.DeepEqual(canonical(t, upd.Record), want) {
		t.Errorf("UPDATE record\n got %v\nwant %v (to_jsonb)", upd.Record, want)
	}
	if upd.Record["payer_amount"] != json.Number("99.90") || upd.Record["id"] != e.ID {
		t.Errorf("UPDATE record types: payer_amount %#v, id %#v", upd.Record["payer_amount"], upd.Record["id"])
	}
	if !reflect.DeepEqual(upd.OldRecord, map[string]any{"id": e.ID}) {
		t.Errorf("UPDATE old record = %v, want the primary key", upd.OldRecord)
	}
	if !reflect.DeepEqual(upd.Columns, dollr.PublicStatusColumns) {
		t.Errorf("columns = %v", upd.Columns)
	}
	if del.Record != nil || !reflect.DeepEqual(del.OldRecord, map[string]any{"id": e.ID}) || del.Seq <= upd.Seq {
		t.Errorf("DELETE = %+v after UPDATE seq %d, want old record {id} only and a later seq", del, upd.Seq)
	}
}

// Every type the decoder renders, checked against PostgreSQL's to_jsonb.
func TestDecodeMatchesToJSONB(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	if _, err := conn.Exec(ctxT(t), `
		CREATE TYPE mood AS ENUM ('sad', 'happy');
		CREATE DOMAIN amount AS numeric(18,2);
		CREATE TABLE decode_test (
			id int8 PRIMARY KEY, i2 int2, i4 int4, n numeric, nn numeric(10,3), f8 float8, f4 float4, b bool,
			t text, vc varchar(20), u uuid, j jsonb, js json, ts timestamptz, tsn timestamp, d date,
			at text[], ai int8[], aj jsonb[], a2 int4[], m mood, am mood[], dm amount, by bytea, nul text);
		CREATE PUBLICATION decode_pub FOR TABLE decode_test`); err != nil {
		t.Fatal(err)
	}
	db := openURL(t, url, postgres.Options{Publication: "decode_pub"})
	f := follow(t, db, 0)
	rows := []string{
		`(1, 7, -2147483648, 12.50, 1.5, 1.5e-7, 'Infinity', true, 'plain', 'short', '7d444840-9dc0-11d1-b245-5ffdce74fad2',
		  '{"a": 1, "b": [true, null, "x"], "c": {"d": 2.50}}', '[1, "two", {"three": 3}, 1e2, -2.5E-1, 1.0e0]',
		  '2026-03-04 05:06:07.123456+00', '2026-03-04 05:06:07.5', '2026-03-04',
		  ARRAY['a', 'b c', '', NULL, 'NULL', 'q"uote', 'back\slash', '{brace}'], ARRAY[1, -2, NULL]::int8[],
		  ARRAY['{"k": 2}', '[]']::jsonb[], '{{1,2},{3,4}}', 'happy', '{sad,happy}', 1234.5, '\x0102ff', NULL)`,
		`(2, NULL, 0, 'NaN', NULL, -0.0, 'NaN', false, '', NULL, NULL, 'null', '"s"',
		  'infinity', '-infinity', '2000-02-29', '{}', '{}', '{}', '[0:1]={5,6}', NULL, '{}', -0.01, '', 'x')`,
		`(3, 32767, 1, -0.000001, 999.999, 1e300, -1.25, NULL, E'line\nbreak \u00e9 \\ "q"', 'ünïcödé', NULL,
		  '[]', 'true', '1999-12-31 23:59:59.999999+00', NULL, NULL, NULL, NULL, NULL, NULL, 'sad', NULL, NULL, NULL, NULL)`,
	}
	for _, r := range rows {
		if _, err := conn.Exec(ctxT(t), "INSERT INTO decode_test VALUES "+r); err != nil {
			t.Fatalf("insert %s: %v", r, err)
		}
	}
	got := f.WaitFor(t, "three inserts", func(cs []dollr.Change) bool { return len(cs) >= 3 })
	wantColumns := []dollr.Column{
		{Name: "id", Type: "int8"}, {Name: "i2", Type: "int2"}, {Name: "i4", Type: "int4"}, {Name: "n", Type: "numeric"},
		{Name: "nn", Type: "numeric"}, {Name: "f8", Type: "float8"}, {Name: "f4", Type: "float4"}, {Name: "b", Type: "bool"},
		{Name: "t", Type: "text"}, {Name: "vc", Type: "varchar"}, {Name: "u", Type: "uuid"}, {Name: "j", Type: "jsonb"},
		{Name: "js", Type: "json"}, {Name: "ts", Type: "timestamptz"}, {Name: "tsn", Type: "timestamp"}, {Name: "d", Type: "date"},
		{Name: "at", Type: "_text"}, {Name: "ai", Type: "_int8"}, {Name: "aj", Type: "_jsonb"}, {Name: "a2", Type: "_int4"},
		{Name: "m", Type: "mood"}, {Name: "am", Type: "_mood"}, {Name: "dm", Type: "amount"}, {Name: "by", Type: "bytea"},
		{Name: "nul", Type: "text"},
	}
	for i, c := range got[:3] {
		id := int64(i + 1)
		if c.Type != dollr.ChangeInsert || c.Table != "decode_test" || c.Schema != "public" || rowID(c) != id {
			t.Fatalf("change %d = %s %s.%s row %d", i, c.Type, c.Schema, c.Table, rowID(c))
		}
		if !reflect.DeepEqual(c.Columns, wantColumns) {
			t.Errorf("columns = %v\nwant %v", c.Columns, wantColumns)
		}
		want := toJSONB(t, conn, "decode_test", id)
		if g := canonical(t, c.Record); !reflect.DeepEqual(g, want) {
			for k, w := range want.(map[string]any) {
				if gv := g.(map[string]any)[k]; !reflect.DeepEqual(gv, w) {
					t.Errorf("row %d column %s = %#v, to_jsonb has %#v", id, k, gv, w)
				}
			}
		}
	}
	// Go types the realtime server relies on.
	r := got[0].Record
	for col, want := range map[string]any{"id": int64(1), "i2": int64(7), "n": json.Number("12.50"), "b": true,
		"f4": "Infinity", "ts": "2026-03-04T05:06:07.123456+00:00", "ai": []any{int64(1), int64(-2), nil}, "nul": nil} {
		if !reflect.DeepEqual(r[col], want) {
			t.Errorf("column %s = %#v, want %#v", col, r[col], want)
		}
	}
	// The key of an UPDATE that changes it, and of a DELETE.
	if _, err := conn.Exec(ctxT(t), "UPDATE decode_test SET id = 10, t = 'moved' WHERE id = 1; DELETE FROM decode_test WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	got = f.WaitFor(t, "update and delete", func(cs []dollr.Change) bool { return len(cs) >= 5 })
	upd, del := got[3], got[4]
	if upd.Type != dollr.ChangeUpdate || !reflect.DeepEqual(upd.OldRecord, map[string]any{"id": int64(1)}) || upd.Record["id"] != int64(10) || upd.Record["t"] != "moved" {
		t.Errorf("key-changing UPDATE = %s old %v new id %v", upd.Type, upd.OldRecord, upd.Record["id"])
	}
	if del.Type != dollr.ChangeDelete || !reflect.DeepEqual(del.OldRecord, map[string]any{"id": int64(2)}) || del.Record != nil {
		t.Errorf("DELETE = %s old %v record %v", del.Type, del.OldRecord, del.Record)
	}
	// One transaction: one Seq, changes in statement order.
	if upd.Seq != del.Seq || upd.Seq <= got[2].Seq {
		t.Errorf("seqs %d, %d after %d: want one shared seq above the previous commit", upd.Seq, del.Seq, got[2].Seq)
	}
}

// writer commits executions until stopped and remembers the ones whose
// commit was acknowledged. Errors (a restarting server) are retried.
type writer struct {
	mu   sync.Mutex
	ids  []int64
	stop chan struct{}
	done chan struct{}
	more chan struct{}
}

func startWriter(t *testing.T, s dollr.Store, m *dollr.Merchant) *writer {
	w := &writer{stop: make(chan struct{}), done: make(chan struct{}), more: make(chan struct{}, 1)}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e, err := newPending(ctx, s, m)
			cancel()
			if err != nil {
				select {
				case <-w.stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				continue
			}
			w.mu.Lock()
			w.ids = append(w.ids, e.ID)
			w.mu.Unlock()
			select {
			case w.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

func (w *writer) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

// waitCount waits until at least n executions were committed.
func (w *writer) waitCount(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(waitLimit)
	for w.count() < n {
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("writer committed %d executions, want %d", w.count(), n)
		}
	}
}

func (w *writer) committed() []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.ids...)
}

// missing returns the committed executions whose INSERT no follower saw.
func missing(ids []int64, followers ...*follower) []int64 {
	seen := map[int64]bool{}
	for _, f := range followers {
		for _, c := range f.Snapshot() {
			if c.Type == dollr.ChangeInsert {
				seen[rowID(c)] = true
			}
		}
	}
	var out []int64
	for _, id := range ids {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return out
}

func waitNoneMissing(t *testing.T, w *writer, followers ...*follower) {
	t.Helper()
	ids := w.committed()
	last := followers[len(followers)-1]
	if _, ok := last.Await(func([]dollr.Change) bool { return len(missing(ids, followers...)) == 0 }, waitLimit); !ok {
		t.Fatalf("%d of %d committed executions never delivered: %v", len(missing(ids, followers...)), len(ids), missing(ids, followers...))
	}
}

// A capture that dies mid-stream (its process crashed: no memory of what it
// delivered) resumes from the slot on restart: nothing committed is lost.
func TestCaptureRestartLosesNothing(t *testing.T) {
	db, _ := open(t)
	m := newMerchant(t, db)
	first := follow(t, db, 0)
	first.Live(t, db, m)
	w := startWriter(t, db, m)
	w.waitCount(t, 10)
	first.WaitFor(t, "some of the writer's changes", func(cs []dollr.Change) bool { return len(cs) > 5 })
	first.Stop(t) // mid-stream
	n := w.count()
	w.waitCount(t, n+10) // committed while nobody captures
	second := follow(t, db, 0)
	w.waitCount(t, w.count()+10)
	w.halt()
	waitNoneMissing(t, w, first, second)
}

// A replication connection killed by the server is reopened by Follow itself.
func TestCaptureReconnects(t *testing.T) {
	db, url := open(t)
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	w := startWriter(t, db, m)
	conn := connect(t, url)
	for range 3 {
		w.waitCount(t, w.count()+5)
		var killed bool
		if err := conn.QueryRow(ctxT(t), `SELECT coalesce(bool_or(pg_terminate_backend(active_pid)), false)
			FROM pg_replication_slots WHERE slot_name = $1`, db.Slot()).Scan(&killed); err != nil {
			t.Fatal(err)
		}
	}
	w.waitCount(t, w.count()+5)
	w.halt()
	waitNoneMissing(t, w, f)
	checkNonDecreasing(t, f.Snapshot())
}

func checkNonDecreasing(t *testing.T, cs []dollr.Change) {
	t.Helper()
	for i := 1; i < len(cs); i++ {
		if cs[i].Seq < cs[i-1].Seq {
			t.Fatalf("change %d seq %d after %d", i, cs[i].Seq, cs[i-1].Seq)
		}
	}
}

// PostgreSQL itself restarts mid-stream: delivery resumes, nothing is lost.
func TestPostgresRestartMidStream(t *testing.T) {
	c := pgtest.Start(t)
	url, _, err := c.CreateDatabase(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	db := openURL(t, url, postgres.Options{CaptureRetry: 200 * time.Millisecond})
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	w := startWriter(t, db, m)
	w.waitCount(t, 10)
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	after := w.count()
	w.waitCount(t, after+10)
	w.halt()
	waitNoneMissing(t, w, f)
	got := f.Snapshot()
	checkNonDecreasing(t, got)
	// And the feed still runs: a new change arrives.
	e := mustPending(t, db, m)
	f.WaitFor(t, "a change after the restart", func(cs []dollr.Change) bool { return has(cs, e.ID, dollr.ChangeInsert, "") })
}

// Two servers share the database: only one captures; when it stops the
// other takes over.
func TestOneCapturePerSlot(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := openURL(t, url, postgres.Options{CaptureRetry: 200 * time.Millisecond})
	b := openURL(t, url, postgres.Options{CaptureRetry: 200 * time.Millisecond})
	m := newMerchant(t, a)
	fa := follow(t, a, 0)
	fa.Live(t, a, m)
	fb := follow(t, b, 0)
	for range 5 {
		e := mustPending(t, b, m) // b serves the API meanwhile
		fa.WaitFor(t, "a change", func(cs []dollr.Change) bool { return has(cs, e.ID, dollr.ChangeInsert, "") })
	}
	if n := len(fb.Snapshot()); n != 0 {
		t.Fatalf("the second capture received %d changes while the first held the slot", n)
	}
	fa.Stop(t)
	fb.Live(t, b, m)
}

// heldHandler follows db with a handler that stops at the commit of one new
// execution until release is closed; seq is that commit's position.
type heldHandler struct {
	f       *follower
	seq     uint64
	release chan struct{}
}

func holdHandler(t *testing.T, db *postgres.DB, m *dollr.Merchant) *heldHandler {
	t.Helper()
	e, err := newProto(ctxT(t), db, m)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan uint64, 1)
	h := &heldHandler{release: make(chan struct{})}
	h.f = followWith(t, db, 0, func(batch []dollr.Change) {
		for _, c := range batch {
			if c.Record["reference_id"] == e.ReferenceID {
				held <- c.Seq
				<-h.release
			}
		}
	})
	h.f.Live(t, db, m)
	if _, _, err := db.CreateExecution(ctxT(t), e, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case h.seq = <-held:
	case <-time.After(waitLimit):
		t.Fatal("handler never saw the execution")
	}
	return h
}

// checkNotConfirmed fails if the slot was acknowledged past the held commit.
func (h *heldHandler) checkNotConfirmed(t *testing.T, db *postgres.DB) {
	t.Helper()
	if flushed := confirmedFlush(t, db); flushed >= h.seq {
		t.Fatalf("slot confirmed %d while the handler of commit %d had not returned", flushed, h.seq)
	}
}

// The slot's position moves only after the handler returned.
func TestAcknowledgeAfterHandle(t *testing.T) {
	db, _ := open(t)
	m := newMerchant(t, db)
	h := holdHandler(t, db, m)
	h.checkNotConfirmed(t, db)
	close(h.release)
	deadline := time.Now().Add(waitLimit)
	for confirmedFlush(t, db) < h.seq {
		if time.Now().After(deadline) {
			t.Fatalf("slot never confirmed commit %d after the handler returned", h.seq)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// While the handler is busy, capture goes on reading: what commits meanwhile
// is handed over afterwards, in commit order, each change once, and the slot
// is not acknowledged past a transaction the handler has not returned from.
func TestSlowHandlerGetsLaterCommitsInOrder(t *testing.T) {
	db, _ := open(t)
	m := newMerchant(t, db)
	h := holdHandler(t, db, m)
	var later []string
	for range 30 {
		e, err := newProto(ctxT(t), db, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.CreateExecution(ctxT(t), e, nil); err != nil {
			t.Fatal(err)
		}
		later = append(later, e.ReferenceID)
	}
	h.checkNotConfirmed(t, db)
	close(h.release)
	cs := h.f.WaitFor(t, "the executions committed while the handler was busy", func(cs []dollr.Change) bool {
		n := 0
		for _, c := range cs {
			if slices.Contains(later, fmt.Sprint(c.Record["reference_id"])) {
				n++
			}
		}
		return n >= len(later)
	})
	var got []string
	var last uint64
	for _, c := range cs {
		if c.Seq < last {
			t.Fatalf("change of commit %d after commit %d", c.Seq, last)
		}
		last = c.Seq
		if ref := fmt.Sprint(c.Record["reference_id"]); slices.Contains(later, ref) {
			got = append(got, ref)
		}
	}
	if !slices.Equal(got, later) {
		t.Fatalf("executions arrived as %v, want each once in commit order %v", got, later)
	}
}

func confirmedFlush(t *testing.T, db *postgres.DB) uint64 {
	t.Helper()
	var lsn int64
	if err := db.Pool().QueryRow(ctxT(t), `SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots
		WHERE slot_name = $1`, db.Slot()).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	return uint64(lsn)
}

// With no change to publish the slot still advances, so it does not make
// PostgreSQL keep WAL written for other tables.
func TestIdleSlotAdvances(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db := openURL(t, url, postgres.Options{StatusInterval: 50 * time.Millisecond})
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	conn := connect(t, url)
	before, err := db.Head(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctxT(t), "CREATE TABLE unpublished (x int); INSERT INTO unpublished SELECT generate_series(1, 1000)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for confirmedFlush(t, db) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("slot stayed at %d, below %d, with only unpublished writes", confirmedFlush(t, db), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Idempotent execute holds across two servers on one database.
func TestCreateExecutionTwoServers(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := openURL(t, url, postgres.Options{})
	b := openURL(t, url, postgres.Options{})
	m := newMerchant(t, a)
	proto, err := newProto(ctxT(t), a, m)
	if err != nil {
		t.Fatal(err)
	}
	const callers = 40
	type result struct {
		id      int64
		created bool
		err     error
	}
	results := make([]result, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		server := a
		if i%2 == 1 {
			server = b
		}
		wg.Go(func() {
			e := *proto
			<-start
			got, created, err := server.CreateExecution(ctxT(t), &e, []dollr.Job{{Kind: "once", RunAt: time.Now()}})
			if err == nil {
				results[i] = result{got.ID, created, nil}
			} else {
				results[i] = result{err: err}
			}
		})
	}
	close(start)
	wg.Wait()
	created := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.id != results[0].id {
			t.Fatalf("caller %d got execution %d, caller 0 got %d", i, r.id, results[0].id)
		}
		if r.created {
			created++
		}
	}
	if created != 1 {
		t.Fatalf("%d callers created the execution, want 1", created)
	}
	jobs, err := b.ClaimJobs(ctxT(t), time.Now().Add(time.Hour), 100, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs = %v, %v; want exactly the one created execution's job", jobs, err)
	}
}

// A job scheduled through one server wakes the other's runner (NOTIFY).
func TestJobAddedAcrossServers(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a := openURL(t, url, postgres.Options{})
	b := openURL(t, url, postgres.Options{})
	m := newMerchant(t, a)
	proto, err := newProto(ctxT(t), a, m)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for b's listener to be up (it signals once when it starts
	// listening), then drain.
	select {
	case <-b.JobAdded():
	case <-time.After(waitLimit):
		t.Fatal("b's job listener never started")
	}
	if _, _, err := a.CreateExecution(ctxT(t), proto, []dollr.Job{{Kind: "k", RunAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.JobAdded():
	case <-time.After(waitLimit):
		t.Fatal("a job added through a never reached b")
	}
	if jobs, err := b.ClaimJobs(ctxT(t), time.Now().Add(time.Minute), 10, time.Minute); err != nil || len(jobs) != 1 {
		t.Fatalf("b claims %v, %v; want the job", jobs, err)
	}
}

// A snapshot's commit time is no earlier than the commit of the state it
// shows, as the feed reports that commit.
func TestPublicStatusCommitTime(t *testing.T) {
	db, _ := open(t)
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	e := mustPending(t, db, m)
	got := f.WaitFor(t, "the insert", func(cs []dollr.Change) bool { return has(cs, e.ID, dollr.ChangeInsert, "") })
	var commit time.Time
	for _, c := range got {
		if rowID(c) == e.ID {
			commit = c.CommitTime
		}
	}
	row, _, err := db.PublicStatus(ctxT(t), e.SessionID, e.ReferenceID)
	if err != nil {
		t.Fatal(err)
	}
	if row.CommitTime.Before(commit) || row.CommitTime.Before(row.UpdatedAt) {
		t.Fatalf("snapshot commit time %v is before the row's commit %v or updated_at %v", row.CommitTime, commit, row.UpdatedAt)
	}
}
