package nats

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/nats/internal/wire"
	"github.com/dollr/dollr/nats/natstest"
	"github.com/dollr/dollr/storetest"
)

// waitLimit bounds every wait; passing tests never wait it out.
const waitLimit = 30 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects a bus's log, shown if the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type testBus struct {
	*Bus
	log *logBuffer
	reg *prometheus.Registry
}

// connect opens a bus on url for installation id, closed when t ends.
func connect(t *testing.T, url, id string, reconnectWait time.Duration) *testBus {
	t.Helper()
	return connectWith(t, url, id, func(c *Config) { c.ReconnectWait = reconnectWait })
}

// pubSub starts a NATS server and connects a publisher and a follower of one
// installation (store id).
func pubSub(t *testing.T) (ns *natstest.Server, id string, pub, sub *testBus) {
	t.Helper()
	ns = natstest.Start(t)
	id = uuid.NewString()
	return ns, id, connect(t, ns.URL, id, 0), connect(t, ns.URL, id, 0)
}

// changeBatch is a transaction at seq of n UPDATEs to the public status table.
func changeBatch(seq uint64, n int) []dollr.Change {
	out := make([]dollr.Change, n)
	for i := range out {
		id := int64(seq)*10 + int64(i)
		row := dollr.PublicStatus{ID: id, ReferenceID: uuid.NewString(), SessionID: id, SourceType: dollr.SourceInvoice,
			SourceID: id, Status: dollr.StatusProcessing, PayerAmount: 1250, PayerCurrency: "USD", PaymentMethod: "MTN_MOMO_LBR",
			GatewayMessage: "waiting", CreatedAt: time.Unix(1700000000, 123456000).UTC(), UpdatedAt: time.Unix(1700000001, 0).UTC()}
		out[i] = dollr.Change{Seq: seq, Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable, Type: dollr.ChangeUpdate,
			CommitTime: time.Unix(1700000002, 987654321).UTC(), Columns: dollr.PublicStatusColumns,
			Record: row.Record(), OldRecord: map[string]any{"id": id}}
	}
	return out
}

func publish(t *testing.T, b *testBus, batch []dollr.Change) {
	t.Helper()
	if err := b.Publish(testContext(t), batch); err != nil {
		t.Fatal(err)
	}
}

// publishRaw stores a message on the installation's subject without a
// message id, bypassing Publish and the stream's duplicate check.
func publishRaw(t *testing.T, b *testBus, data []byte) {
	t.Helper()
	if _, err := b.js.Publish(testContext(t), b.subject, data); err != nil {
		t.Fatal(err)
	}
}

func seqs(cs []dollr.Change) []uint64 {
	var out []uint64
	for _, c := range cs {
		if len(out) == 0 || out[len(out)-1] != c.Seq {
			out = append(out, c.Seq)
		}
	}
	return out
}

// waitValue waits until a metric has the value want, and returns its value.
func waitValue(c prometheus.Collector, want float64) float64 {
	deadline := time.Now().Add(waitLimit)
	for {
		v := testutil.ToFloat64(c)
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitSeqs(t *testing.T, f *storetest.Follower, want []uint64) {
	t.Helper()
	got, ok := f.Await(func(cs []dollr.Change) bool { return len(seqs(cs)) >= len(want) }, waitLimit)
	if !ok {
		t.Fatalf("received batches %v, want %v", seqs(f.Snapshot()), want)
	}
	if !reflect.DeepEqual(seqs(got), want) {
		t.Fatalf("received batches %v, want %v", seqs(got), want)
	}
}

func TestOrderKept(t *testing.T) {
	ns, _, pub, sub := pubSub(t)
	other := connect(t, ns.URL, uuid.NewString(), 0) // another installation on the same stream
	f := storetest.Follow(t, sub, 0, nil)
	var want []dollr.Change
	var wantSeqs []uint64
	for seq := uint64(1); seq <= 60; seq++ {
		b := changeBatch(seq*7, int(seq%3)+1)
		publish(t, pub, b)
		publish(t, other, changeBatch(seq, 1))
		want = append(want, b...)
		wantSeqs = append(wantSeqs, seq*7)
	}
	waitSeqs(t, f, wantSeqs)
	if got := f.Snapshot(); !storetest.EqualChanges(got, want) {
		t.Fatalf("received changes differ from those published:\n got %+v\nwant %+v", got[0], want[0])
	}
	// Counted once the handler has returned, a moment after it recorded them.
	if n := waitValue(sub.m.received, 60); n != 60 {
		t.Errorf("dollr_nats_batches_received_total = %v, want 60", n)
	}
	if n := testutil.ToFloat64(pub.m.published.WithLabelValues(resultStored)); n != 60 {
		t.Errorf("dollr_nats_batches_published_total{result=stored} = %v, want 60", n)
	}
	if head, err := sub.Head(testContext(t)); err != nil || head != 60*7 {
		t.Errorf("Head = %d, %v; want %d", head, err, 60*7)
	}
}

func TestDuplicatesDropped(t *testing.T) {
	ns, id, pub, sub := pubSub(t)
	f := storetest.Follow(t, sub, 0, nil)
	publish(t, pub, changeBatch(10, 2))
	publish(t, pub, changeBatch(20, 1))
	publish(t, pub, changeBatch(20, 1)) // a re-capture within the duplicate window: stored once
	old, err := wire.Encode(changeBatch(10, 1))
	if err != nil {
		t.Fatal(err)
	}
	publishRaw(t, pub, old) // a re-capture the window missed: dropped by the follower
	publishRaw(t, pub, old)
	publish(t, pub, changeBatch(30, 1))
	waitSeqs(t, f, []uint64{10, 20, 30})
	if n := testutil.ToFloat64(pub.m.published.WithLabelValues(resultDuplicate)); n != 1 {
		t.Errorf("duplicate publishes = %v, want 1", n)
	}
	if n := testutil.ToFloat64(sub.m.stale); n != 2 {
		t.Errorf("stale batches = %v, want 2", n)
	}
	// A follower started after a position drops what is not above it.
	late := connect(t, ns.URL, id, 0)
	f2 := storetest.Follow(t, late, 35, nil)
	publish(t, pub, changeBatch(35, 1))
	publish(t, pub, changeBatch(40, 1))
	waitSeqs(t, f2, []uint64{40})
}

func TestLaterFollowerGetsOnlyNewBatches(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	pub := connect(t, ns.URL, id, 0)
	for seq := uint64(1); seq <= 3; seq++ {
		publish(t, pub, changeBatch(seq, 1))
	}
	sub := connect(t, ns.URL, id, 0)
	if head, err := sub.Head(testContext(t)); err != nil || head != 3 {
		t.Errorf("Head = %d, %v; want 3", head, err)
	}
	// Published after Connect but before Follow starts: still delivered.
	publish(t, pub, changeBatch(4, 1))
	f := storetest.Follow(t, sub, 0, nil)
	publish(t, pub, changeBatch(5, 1))
	waitSeqs(t, f, []uint64{4, 5})
}

func TestServerRestartLosesNothing(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	pub := connect(t, ns.URL, id, 50*time.Millisecond)
	// The follower reconnects later than the publisher, so batches are
	// published while it is still cut off.
	sub := connect(t, ns.URL, id, time.Second)
	f := storetest.Follow(t, sub, 0, nil)
	var want []uint64
	for seq := uint64(1); seq <= 5; seq++ {
		publish(t, pub, changeBatch(seq, 1))
		want = append(want, seq)
	}
	waitSeqs(t, f, want)
	ns.Restart()
	for seq := uint64(6); seq <= 10; seq++ {
		// Publish fails until the publisher has reconnected; a retry of a
		// batch that was stored after all is a duplicate, stored once.
		deadline := time.Now().Add(waitLimit)
		for {
			err := pub.Publish(testContext(t), changeBatch(seq, 1))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %d after the restart: %v", seq, err)
			}
			time.Sleep(20 * time.Millisecond) // "no responders" fails at once while JetStream starts
		}
		want = append(want, seq)
	}
	waitSeqs(t, f, want)
	if !strings.Contains(sub.log.String(), "nats reconnected") {
		t.Errorf("the follower did not log its reconnect:\n%s", sub.log)
	}
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opGap)); n != 0 {
		t.Errorf("gap errors = %v after a restart that lost nothing", n)
	}
}

func TestCorruptMessagesSkipped(t *testing.T) {
	_, _, pub, sub := pubSub(t)
	f := storetest.Follow(t, sub, 0, nil)
	bad := []string{
		``,
		`not json`,
		`{"changes":[]}`,
		`{"changes":null}`,
		`{"changes":[{"seq":"1","type":"INSERT","table":"t"}]}`,
		`{"changes":[{"seq":0,"type":"INSERT","table":"t"}]}`,
		`{"changes":[{"seq":3,"type":"UPSERT","table":"t"}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":""}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":"t"},{"seq":2,"type":"INSERT","table":"t"}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":"t","columns":[{"name":"id","type":"int8"}],"record":{"id":1.5}}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":"t","columns":[{"name":"ids","type":"_int8"}],"record":{"ids":[1,[2,"x"],3e30]}}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":"t","record":[]}]}`,
		`{"changes":[{"seq":3,"type":"INSERT","table":"t"}]} {}`,
	}
	for _, b := range bad {
		publishRaw(t, pub, []byte(b))
	}
	// A batch that cannot be encoded is logged and skipped, not retried
	// forever (it would hold up every later change).
	unencodable := changeBatch(6, 1)
	unencodable[0].Record["bad"] = func() {}
	publish(t, pub, unencodable)
	if n := testutil.ToFloat64(pub.m.errors.WithLabelValues(opEncode)); n != 1 {
		t.Errorf("encode errors = %v, want 1", n)
	}
	publish(t, pub, changeBatch(7, 1))
	waitSeqs(t, f, []uint64{7})
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opDecode)); n != float64(len(bad)) {
		t.Errorf("decode errors = %v, want %d", n, len(bad))
	}
	if got := strings.Count(sub.log.String(), "skipping a message that is not a change batch"); got != len(bad) {
		t.Errorf("logged %d skipped messages, want %d:\n%s", got, len(bad), sub.log)
	}
}

func TestHandlerErrorResumes(t *testing.T) {
	_, _, pub, sub := pubSub(t)
	publish(t, pub, changeBatch(1, 1))
	publish(t, pub, changeBatch(2, 1))
	ctx := testContext(t)
	failed := fmt.Errorf("handler failed")
	var got []uint64
	err := sub.Follow(ctx, 0, func(b []dollr.Change) error {
		if b[0].Seq == 2 {
			return failed
		}
		got = append(got, b[0].Seq)
		return nil
	})
	if err != failed || !reflect.DeepEqual(got, []uint64{1}) {
		t.Fatalf("Follow = %v after handing %v, want the handler's error after [1]", err, got)
	}
	// The next Follow hands the batch that failed first.
	f := storetest.Follow(t, sub, 1, nil)
	publish(t, pub, changeBatch(3, 1))
	waitSeqs(t, f, []uint64{2, 3})
}

func TestConnectErrors(t *testing.T) {
	ctx := testContext(t)
	if _, err := Connect(ctx, Config{URL: "nats://127.0.0.1:1", StoreID: "x"}); err == nil {
		t.Error("Connect to a closed port succeeded")
	}
	for _, id := range []string{"", "a.b", "a*", ">", "a b"} {
		if _, err := Connect(ctx, Config{URL: "nats://127.0.0.1:1", StoreID: id}); err == nil || !strings.Contains(err.Error(), "store id") {
			t.Errorf("Connect with store id %q: %v, want a store id error", id, err)
		}
	}
}

// TestCutOffFollowerCatchesUp: batches published while a follower is cut
// off from NATS reach it, in order, once it reconnects.
func TestCutOffFollowerCatchesUp(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	pub := connect(t, ns.URL, id, 0)
	px := natstest.StartProxy(t, ns.URL)
	sub := connect(t, px.URL(), id, 50*time.Millisecond)
	f := storetest.Follow(t, sub, 0, nil)
	publish(t, pub, changeBatch(1, 1))
	waitSeqs(t, f, []uint64{1})
	px.SetCut(true)
	for seq := uint64(2); seq <= 6; seq++ {
		publish(t, pub, changeBatch(seq, 2))
	}
	px.SetCut(false)
	publish(t, pub, changeBatch(7, 1))
	waitSeqs(t, f, []uint64{1, 2, 3, 4, 5, 6, 7})
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opGap)); n != 0 {
		t.Errorf("gap errors = %v after a cut that lost nothing", n)
	}
}

// TestCutOffTooLongIsLogged: when the stream's max age removes batches a
// cut-off follower had not read, it says so loudly and goes on.
func TestCutOffTooLongIsLogged(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	ctx := testContext(t)
	// The first Connect creates the stream, with a short max age.
	pb, err := Connect(ctx, Config{URL: ns.URL, StoreID: id, MaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	pub := &testBus{Bus: pb, log: &logBuffer{}}
	px := natstest.StartProxy(t, ns.URL)
	sub := connect(t, px.URL(), id, 50*time.Millisecond)
	f := storetest.Follow(t, sub, 0, nil)
	publish(t, pub, changeBatch(1, 1))
	waitSeqs(t, f, []uint64{1})
	px.SetCut(true)
	publish(t, pub, changeBatch(2, 1))
	publish(t, pub, changeBatch(3, 1))
	deadline := time.Now().Add(waitLimit)
	for {
		info, err := pub.stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 { // 2 and 3 aged out unread
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream still holds %d messages", info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	publish(t, pub, changeBatch(4, 1))
	px.SetCut(false)
	waitSeqs(t, f, []uint64{1, 4})
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opGap)); n != 1 {
		t.Errorf("gap errors = %v, want 1", n)
	}
	if !strings.Contains(sub.log.String(), "changes may have been lost while disconnected") {
		t.Errorf("the lost changes were not logged:\n%s", sub.log)
	}
}

// behindProxy is a bus connected to a new NATS server through a proxy the
// test can partition, with short probes (PublishTimeout bounds them).
func behindProxy(t *testing.T) (*natstest.Proxy, *testBus) {
	t.Helper()
	ns := natstest.Start(t)
	px := natstest.StartProxy(t, ns.URL)
	return px, connectWith(t, px.URL(), uuid.NewString(), func(c *Config) { c.PublishTimeout = 200 * time.Millisecond })
}

// TestWaitReachableThroughPartition: a connection whose packets are dropped
// still looks connected; WaitReachable sees through it, waits while NATS
// cannot answer, says so once, and returns when the partition heals.
func TestWaitReachableThroughPartition(t *testing.T) {
	px, b := behindProxy(t)
	ctx := testContext(t)
	if err := b.WaitReachable(ctx); err != nil {
		t.Fatalf("WaitReachable with NATS reachable: %v", err)
	}
	// A lost stream is an answer too: Publish recreates it.
	if err := b.js.DeleteStream(ctx, StreamName); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReachable(ctx); err != nil {
		t.Fatalf("WaitReachable with the stream deleted: %v", err)
	}
	if v := testutil.ToFloat64(b.m.errors.WithLabelValues(opUnreachable)); v != 0 {
		t.Fatalf("unreachable errors = %v while NATS answered", v)
	}

	px.Partition()
	done := make(chan error, 1)
	go func() { done <- b.WaitReachable(ctx) }()
	// The first probe times out: it has said so, and has not returned.
	if v := waitValue(b.m.errors.WithLabelValues(opUnreachable), 1); v != 1 {
		t.Fatalf("unreachable errors = %v during a partition, want 1", v)
	}
	if !strings.Contains(b.log.String(), "NATS does not answer") {
		t.Errorf("the partition was not logged:\n%s", b.log)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitReachable returned %v during a partition", err)
	default:
	}
	px.Heal()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("WaitReachable after the partition healed: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WaitReachable did not return after the partition healed")
	}
	if !strings.Contains(b.log.String(), "NATS answers again") {
		t.Errorf("the recovery was not logged:\n%s", b.log)
	}
	if v := testutil.ToFloat64(b.m.errors.WithLabelValues(opUnreachable)); v != 1 {
		t.Errorf("unreachable errors = %v after one outage, want 1 (counted once, not per probe)", v)
	}

	// A caller that gives up gets its context's error.
	px.Partition()
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- b.WaitReachable(cctx) }()
	waitValue(b.m.errors.WithLabelValues(opUnreachable), 2)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Errorf("WaitReachable after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("WaitReachable did not return after its context ended")
	}
	px.Heal()
}

// TestDroppedLinkFailsOver: a follower whose route to NATS starts dropping
// packets (no reset, so the connection still looks open) notices through its
// pings and reconnects by another route, reading what was published
// meanwhile without waiting for the broken route to heal.
func TestDroppedLinkFailsOver(t *testing.T) {
	ns := natstest.Start(t)
	routes := []*natstest.Proxy{natstest.StartProxy(t, ns.URL), natstest.StartProxy(t, ns.URL)}
	id := uuid.NewString()
	pub := connect(t, ns.URL, id, 0)
	sub := connectWith(t, routes[0].URL()+","+routes[1].URL(), id, func(c *Config) {
		c.PingInterval = 100 * time.Millisecond
		c.ReconnectWait = 50 * time.Millisecond
	})
	f := storetest.Follow(t, sub, 0, nil)
	publish(t, pub, changeBatch(1, 1))
	waitSeqs(t, f, []uint64{1})
	used := routes[0]
	if sub.nc.ConnectedUrl() == routes[1].URL() {
		used = routes[1]
	}
	used.Partition()
	t.Cleanup(used.Heal) // before the proxies stop (cleanups run last first)
	publish(t, pub, changeBatch(2, 1))
	waitSeqs(t, f, []uint64{1, 2})
	if got := sub.nc.ConnectedUrl(); got == used.URL() {
		t.Errorf("still connected through the partitioned route %s", got)
	}
	if !strings.Contains(sub.log.String(), "nats disconnected") {
		t.Errorf("the dropped link was not logged:\n%s", sub.log)
	}
}

// TestWatchReachableReportsLoss: a server following the change feed learns
// that NATS stopped answering (a partition, the connection still open) from
// its own probes, after two in a row fail, and the watch ends with its
// context.
func TestWatchReachableReportsLoss(t *testing.T) {
	px, b := behindProxy(t)
	ctx := testContext(t)

	lost := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.WatchReachable(ctx, 20*time.Millisecond, func(err error) { lost <- err })
	}()
	px.Partition()
	select {
	case err := <-lost:
		if err == nil {
			t.Error("lost was called with a nil error")
		}
	case <-time.After(waitLimit):
		t.Fatal("the watch did not report a partition")
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("the watch went on after reporting the loss")
	}
	if !strings.Contains(b.log.String(), "NATS stopped answering") {
		t.Errorf("the loss was not logged:\n%s", b.log)
	}
	px.Heal()

	// With NATS answering, five probes in a row succeed and report nothing;
	// the watch ends when its context does.
	probes := make(chan error, 100)
	b.watchProbed = func(err error) { probes <- err }
	wctx, cancel := context.WithCancel(ctx)
	done = make(chan struct{})
	go func() {
		defer close(done)
		b.WatchReachable(wctx, 20*time.Millisecond, func(err error) { lost <- err })
	}()
	for i := range 5 {
		select {
		case err := <-probes:
			if err != nil {
				t.Fatalf("probe %d with NATS answering: %v", i+1, err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("only %d probes", i)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("the watch did not end with its context")
	}
	select {
	case err := <-lost:
		t.Errorf("the watch reported %v with NATS answering", err)
	default:
	}
}
