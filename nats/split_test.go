package nats

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/nats/internal/wire"
	"github.com/dollr/dollr/nats/natstest"
	"github.com/dollr/dollr/storetest"
)

// connectWith opens a bus like connect, with changes to its Config.
func connectWith(t *testing.T, url, id string, change func(*Config)) *testBus {
	t.Helper()
	tb := &testBus{log: &logBuffer{}, reg: prometheus.NewRegistry()}
	c := Config{URL: url, StoreID: id, PublishTimeout: 2 * time.Second, StreamCheckInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(tb.log, nil)), Registerer: tb.reg}
	if change != nil {
		change(&c)
	}
	b, err := Connect(testContext(t), c)
	if err != nil {
		t.Fatal(err)
	}
	tb.Bus = b
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("bus %s log:\n%s", id, tb.log)
		}
	})
	return tb
}

// publishPart stores changes as a part of one transaction starting at index
// off, as Publish does for a transaction too large for one message.
func publishPart(t *testing.T, b *testBus, off int, changes []dollr.Change) {
	t.Helper()
	data, err := wire.Encode(changes)
	if err != nil {
		t.Fatal(err)
	}
	msg := &natsgo.Msg{Subject: b.subject, Data: data, Header: natsgo.Header{}}
	msg.Header.Set(hdrOffset, strconv.Itoa(off))
	if _, err := b.js.PublishMsg(testContext(t), msg); err != nil {
		t.Fatal(err)
	}
}

// waitChanges waits until f has received len(want) changes and checks they
// are want, in order.
func waitChanges(t *testing.T, f *storetest.Follower, want []dollr.Change) {
	t.Helper()
	got, ok := f.Await(func(cs []dollr.Change) bool { return len(cs) >= len(want) }, waitLimit)
	if !ok {
		t.Fatalf("received %d changes (transactions %v), want %d", len(got), seqs(got), len(want))
	}
	if len(got) != len(want) || !storetest.EqualChanges(got, want) {
		t.Fatalf("received %d changes (transactions %v), want %d (%v), in order, once each", len(got), seqs(got), len(want), seqs(want))
	}
}

func streamMsgs(t *testing.T, b *testBus) uint64 {
	t.Helper()
	info, err := b.currentStream().Info(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestLargeTransactionsSplit: with a small max payload, a transaction larger
// than a message is published over several and reaches the follower whole,
// once, in order; batches of several transactions are cut between them.
func TestLargeTransactionsSplit(t *testing.T) {
	ns := natstest.Start(t, natstest.MaxPayload(8<<10))
	id := uuid.NewString()
	pub := connectWith(t, ns.URL, id, nil)
	sub := connectWith(t, ns.URL, id, nil)
	if mp := pub.nc.MaxPayload(); mp != 8<<10 {
		t.Fatalf("max payload %d, want %d", mp, 8<<10)
	}
	f := storetest.Follow(t, sub, 0, nil)
	big := changeBatch(2, 100) // about 70 kB
	coalesced := append(append(changeBatch(3, 3), changeBatch(4, 40)...), changeBatch(5, 1)...)
	var want []dollr.Change
	for _, b := range [][]dollr.Change{changeBatch(1, 1), big, coalesced} {
		publish(t, pub, b)
		want = append(want, b...)
	}
	waitChanges(t, f, want)
	if n := streamMsgs(t, pub); n < 10 {
		t.Errorf("the stream holds %d messages, want the large transactions split (10 or more)", n)
	}
	// Published again within the duplicate window (a failover): stored once.
	before := streamMsgs(t, pub)
	publish(t, pub, big)
	if n := streamMsgs(t, pub); n != before {
		t.Errorf("republishing a split transaction stored %d more messages", n-before)
	}
	if n := testutil.ToFloat64(pub.m.published.WithLabelValues(resultDuplicate)); n != 1 {
		t.Errorf("duplicate publishes = %v, want 1", n)
	}
	// Past the window, or split differently by another capturer: parts
	// already handed on are dropped, overlapping ones handed from where the
	// follower is.
	publishPart(t, pub, 50, big[50:55])
	tx := changeBatch(6, 8)
	publishPart(t, pub, 0, tx[:3])
	publishPart(t, pub, 1, tx[1:5])
	publishPart(t, pub, 5, tx[5:])
	publishPart(t, pub, 0, tx[:4]) // all handed on already
	last := changeBatch(7, 1)
	publish(t, pub, last)
	want = append(append(want, tx...), last...)
	waitChanges(t, f, want)
	if n := waitValue(sub.m.stale, 2); n != 2 {
		t.Errorf("stale messages = %v, want 2", n)
	}
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opOversize)); n != 0 {
		t.Errorf("oversize errors = %v", n)
	}
	if got := testutil.ToFloat64(pub.m.lastPublished); got != 7 {
		t.Errorf("dollr_nats_last_published_seq = %v, want 7", got)
	}
	if got := waitValue(sub.m.lastDelivered, 7); got != 7 {
		t.Errorf("dollr_nats_last_delivered_seq = %v, want 7", got)
	}
	if got := testutil.ToFloat64(sub.m.sinceRead); got < 0 || got > waitLimit.Seconds() {
		t.Errorf("dollr_nats_seconds_since_last_batch = %v", got)
	}
	if head, err := sub.Head(testContext(t)); err != nil || head != 7 {
		t.Errorf("Head = %d, %v; want 7", head, err)
	}
}

// TestOversizeChangeSkipped: a change too large for any message is logged,
// counted and left out; the rest of its transaction and later ones go on.
func TestOversizeChangeSkipped(t *testing.T) {
	ns := natstest.Start(t, natstest.MaxPayload(8<<10))
	id := uuid.NewString()
	pub := connectWith(t, ns.URL, id, nil)
	sub := connectWith(t, ns.URL, id, nil)
	f := storetest.Follow(t, sub, 0, nil)
	tx := changeBatch(1, 3)
	tx[1].Record["gateway_message"] = strings.Repeat("x", 10<<10)
	next := changeBatch(2, 1)
	publish(t, pub, tx)
	publish(t, pub, next)
	waitChanges(t, f, append([]dollr.Change{tx[0], tx[2]}, next...))
	if n := testutil.ToFloat64(pub.m.errors.WithLabelValues(opOversize)); n != 1 {
		t.Errorf("oversize errors = %v, want 1", n)
	}
}

// TestSplitTransactionHandlerErrorResumes: when the handler fails on a part
// of a transaction, the next Follow (after the transaction's Seq, as
// `dollr serve` calls it) hands the remaining parts, never the first ones
// again.
func TestSplitTransactionHandlerErrorResumes(t *testing.T) {
	ns := natstest.Start(t, natstest.MaxPayload(8<<10))
	id := uuid.NewString()
	pub := connectWith(t, ns.URL, id, nil)
	sub := connectWith(t, ns.URL, id, nil)
	big := changeBatch(5, 60)
	publish(t, pub, big)
	failed := errors.New("handler failed")
	var got []dollr.Change
	calls := 0
	err := sub.Follow(testContext(t), 0, func(b []dollr.Change) error {
		if calls++; calls == 2 {
			return failed
		}
		got = append(got, b...)
		return nil
	})
	if err != failed || len(got) == 0 || len(got) >= len(big) {
		t.Fatalf("Follow = %v after %d changes, want the handler's error after the first part", err, len(got))
	}
	next := changeBatch(6, 1)
	publish(t, pub, next)
	want := append(append([]dollr.Change{}, big[len(got):]...), next...)
	ctx, cancel := context.WithTimeout(testContext(t), waitLimit)
	defer cancel()
	var rest []dollr.Change
	err = sub.Follow(ctx, 5, func(b []dollr.Change) error {
		if rest = append(rest, b...); len(rest) >= len(want) {
			cancel()
		}
		return nil
	})
	if err != context.Canceled || !storetest.EqualChanges(rest, want) {
		t.Fatalf("Follow(after=5) = %v after %d changes (transactions %v), want the %d changes not handed on before, then seq 6",
			err, len(rest), seqs(rest), len(want))
	}
}

// TestStreamDeletedRecovers: when the stream disappears (NATS restarted
// with an empty store), the publisher recreates it and followers notice the
// new stream and read on from its start.
func TestStreamDeletedRecovers(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	pub := connectWith(t, ns.URL, id, nil)
	sub := connectWith(t, ns.URL, id, nil)
	own := storetest.Follow(t, pub, 0, nil) // the capturer follows too
	f := storetest.Follow(t, sub, 0, nil)
	var want []uint64
	for seq := uint64(1); seq <= 5; seq++ {
		publish(t, pub, changeBatch(seq, 1))
		want = append(want, seq)
	}
	waitSeqs(t, f, want)
	waitSeqs(t, own, want)
	if err := pub.js.DeleteStream(testContext(t), StreamName); err != nil {
		t.Fatal(err)
	}
	// Fewer messages than the followers had read, so the new stream's
	// sequences stay below where they were.
	for seq := uint64(6); seq <= 7; seq++ {
		publish(t, pub, changeBatch(seq, 1))
		want = append(want, seq)
	}
	waitSeqs(t, f, want)
	waitSeqs(t, own, want)
	if !strings.Contains(pub.log.String(), "the stream is missing") {
		t.Errorf("the publisher did not log recreating the stream:\n%s", pub.log)
	}
	for _, b := range []*testBus{sub, pub} {
		if n := testutil.ToFloat64(b.m.errors.WithLabelValues(opReset)); n != 1 {
			t.Errorf("reset errors = %v, want 1", n)
		}
		if !strings.Contains(b.log.String(), "the stream was deleted or recreated") {
			t.Errorf("the follower did not log the reset:\n%s", b.log)
		}
	}
	// Deleted again, and recreated by someone else this time, with more
	// messages than the followers had read: noticed by its creation time.
	if err := pub.js.DeleteStream(testContext(t), StreamName); err != nil {
		t.Fatal(err)
	}
	other := connectWith(t, ns.URL, uuid.NewString(), nil) // creates the stream
	for seq := uint64(1); seq <= 20; seq++ {
		publish(t, other, changeBatch(seq, 1))
	}
	publish(t, pub, changeBatch(8, 1))
	want = append(want, 8)
	waitSeqs(t, f, want)
	if n := testutil.ToFloat64(sub.m.errors.WithLabelValues(opReset)); n != 2 {
		t.Errorf("reset errors = %v, want 2", n)
	}
}

// TestStreamLimits: the stream is bounded by bytes as well as age, and a
// stream the bus created before it had a size limit gets one.
func TestStreamLimits(t *testing.T) {
	ns := natstest.Start(t)
	ctx := testContext(t)
	nc, err := natsgo.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info := func() jetstream.StreamConfig {
		s, err := js.Stream(ctx, StreamName)
		if err != nil {
			t.Fatal(err)
		}
		i, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return i.Config
	}
	connectWith(t, ns.URL, uuid.NewString(), nil)
	if c := info(); c.MaxBytes != DefaultMaxBytes || c.MaxAge != DefaultMaxAge || c.Discard != jetstream.DiscardOld {
		t.Errorf("stream limits max_bytes %d, max_age %s, discard %s", c.MaxBytes, c.MaxAge, c.Discard)
	}
	// As an earlier dollr created it: no size limit.
	if err := js.DeleteStream(ctx, StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: StreamName, Description: streamDescription,
		Subjects: []string{subjectPrefix + ">"}, MaxAge: time.Hour, Duplicates: duplicateWindow}); err != nil {
		t.Fatal(err)
	}
	b := connectWith(t, ns.URL, uuid.NewString(), func(c *Config) { c.MaxBytes = 1 << 20 })
	if c := info(); c.MaxBytes != 1<<20 {
		t.Errorf("stream max_bytes %d after Connect, want %d", c.MaxBytes, 1<<20)
	}
	if !strings.Contains(b.log.String(), "bounded the stream's size") {
		t.Errorf("the update was not logged:\n%s", b.log)
	}
	// Someone else's stream: used as it is, the difference logged.
	b = connectWith(t, ns.URL, uuid.NewString(), func(c *Config) { c.MaxBytes = 2 << 20 })
	if c := info(); c.MaxBytes != 1<<20 {
		t.Errorf("stream max_bytes %d, want it left at %d", c.MaxBytes, 1<<20)
	}
	if !strings.Contains(b.log.String(), "other limits than configured") {
		t.Errorf("the difference was not logged:\n%s", b.log)
	}
}

// TestCapturingLogged: a server logs when it starts publishing captured
// changes and when another server has taken over.
func TestCapturingLogged(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	a := connectWith(t, ns.URL, id, func(c *Config) { c.Name = "a" })
	b := connectWith(t, ns.URL, id, func(c *Config) { c.Name = "b" })
	fa := storetest.Follow(t, a, 0, nil)
	publish(t, a, changeBatch(1, 1))
	waitSeqs(t, fa, []uint64{1})
	if got := testutil.ToFloat64(a.m.capturing); got != 1 || !strings.Contains(a.log.String(), "capturing: this server holds the change feed") {
		t.Errorf("capturing = %v; log:\n%s", got, a.log)
	}
	publish(t, b, changeBatch(2, 1)) // b took the feed over
	waitSeqs(t, fa, []uint64{1, 2})
	if got := testutil.ToFloat64(a.m.capturing); got != 0 || !strings.Contains(a.log.String(), "stopped capturing: another server publishes") {
		t.Errorf("capturing = %v after another server published; log:\n%s", got, a.log)
	}
	ctx, cancel := context.WithTimeout(testContext(t), 0)
	defer cancel()
	if err := a.Publish(ctx, changeBatch(3, 1)); err == nil {
		t.Fatal("Publish with an ended context succeeded")
	}
}

// TestResetSkipsNothing: after the stream is recreated the ordered consumer
// resumes on its own at the old stream sequence; what was published to the
// new stream below it must still be handed on, not skipped and then dropped
// as stale once the reset is noticed.
func TestResetSkipsNothing(t *testing.T) {
	ns := natstest.Start(t)
	id := uuid.NewString()
	pub := connectWith(t, ns.URL, id, nil)
	sub := connectWith(t, ns.URL, id, func(c *Config) { c.StreamCheckInterval = 2 * time.Second })
	f := storetest.Follow(t, sub, 0, nil)
	var want []uint64
	for seq := uint64(1); seq <= 5; seq++ {
		publish(t, pub, changeBatch(seq, 1))
		want = append(want, seq)
	}
	waitSeqs(t, f, want)
	if err := pub.js.DeleteStream(testContext(t), StreamName); err != nil {
		t.Fatal(err)
	}
	other := connectWith(t, ns.URL, uuid.NewString(), nil) // recreates the stream
	publish(t, pub, changeBatch(6, 1))                     // the new stream's first message
	for seq := uint64(1); seq <= 10; seq++ {
		publish(t, other, changeBatch(seq, 1)) // another installation's: past the old position
	}
	publish(t, pub, changeBatch(7, 1))
	waitSeqs(t, f, append(want, 6, 7))
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                   "nats://127.0.0.1:4222",
		"nats://u:secretpw@host:4222":             "nats://u:xxxxx@host:4222",
		"nats://s3cr3ttoken@host:4222":            "nats://xxxxx@host:4222",
		"nats://a:p1@h1:4222,nats://b:p2@h2:4222": "nats://a:xxxxx@h1:4222,nats://b:xxxxx@h2:4222",
		"tls://u:p@w@host":                        "tls://u:xxxxx@host",
		"":                                        "",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
