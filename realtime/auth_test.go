package realtime

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

const (
	refA = "6f1c2d1e-0000-4000-8000-00000000000a"
	refB = "6f1c2d1e-0000-4000-8000-00000000000b"
)

// paymentPolicy is the app's row policy in miniature: a key may join only its
// own payment-intent topic and sees only its own reference's rows.
var paymentPolicy = PolicyFunc(func(claims map[string]any, subTopic string) (Grant, error) {
	ref, _ := claims["reference_id"].(string)
	sess, _ := claims["session_id"].(json.Number)
	if ref == "" || subTopic != fmt.Sprintf("payment-intent:%s:%s", sess, ref) {
		return Grant{}, nil
	}
	return Grant{Allow: true, Rows: map[string]map[string]string{
		dollr.PublicSchema + "." + dollr.PublicStatusTable: {"reference_id": ref},
	}}, nil
})

func realtimeKey(session int64, ref string, ttl time.Duration) string {
	return signToken(testSecret, map[string]any{"role": "anon", "exp": time.Now().Add(ttl).Unix(),
		"session_id": session, "reference_id": ref, "merchant_id": 1})
}

func statusChange(seq uint64, ref string, id int64, status dollr.ExecutionStatus) change {
	typ := dollr.ChangeUpdate
	if status == dollr.StatusPending {
		typ = dollr.ChangeInsert
	}
	row := dollr.PublicStatus{ID: id, ReferenceID: ref, SessionID: 7, SourceType: "INVOICE", SourceID: 3,
		Status: status, PayerAmount: 1250, PayerCurrency: "USD", PaymentMethod: "MTN_MOMO_LBR",
		CreatedAt: commitAt, UpdatedAt: commitAt}
	c := change{Seq: seq, Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable, Type: typ, CommitTime: time.Now(),
		Columns: dollr.PublicStatusColumns, Record: row.Record()}
	if typ == dollr.ChangeUpdate {
		c.OldRecord = map[string]any{"id": id}
	}
	return c
}

func statusOf(t *testing.T, m msg) string {
	t.Helper()
	data, _ := m.payload()["data"].(map[string]any)
	rec, _ := data["record"].(map[string]any)
	s, _ := rec["status"].(string)
	return s
}

func TestPolicyRestrictsRows(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy})
	key := realtimeKey(7, refA, time.Hour)
	topic := "realtime:payment-intent:7:" + refA
	filters := []map[string]any{
		{"event": "*", "schema": "public", "table": dollr.PublicStatusTable, "filter": "reference_id=eq." + refA},
		{"event": "*", "schema": "public", "table": dollr.PublicStatusTable, "filter": "reference_id=neq." + refA},
		{"event": "*", "schema": "public", "table": dollr.PublicStatusTable},
		{"event": "*", "schema": "public", "table": dollr.PublicStatusTable, "filter": "reference_id=eq." + refB},
		{"event": "*", "schema": "public", "table": "items"},
		{"event": "*", "schema": "*"},
	}
	var clients []*client
	for _, f := range filters {
		c := dial(t, srv, "2.0.0")
		c.joinOK(topic, joinPayload(key, f))
		clients = append(clients, c)
	}
	srv.Publish([]change{statusChange(1, refB, 2, dollr.StatusPending), statusChange(2, refA, 1, dollr.StatusPending),
		itemInsert(1, 3), statusChange(4, strings.ToUpper(refB), 2, dollr.StatusCompleted)})
	wantA := []bool{true, false, true, false, false, true}
	for i, c := range clients {
		if wantA[i] {
			m := c.nextEvent("postgres_changes")
			if rec := m.payload()["data"].(map[string]any)["record"].(map[string]any); rec["reference_id"] != refA {
				t.Errorf("filter %v got %v", filters[i], rec)
			}
		}
		c.quiet(20 * time.Millisecond)
	}
}

func TestPolicyRefusesJoin(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy, JoinErrorDelay: 20 * time.Millisecond})
	c := dial(t, srv, "2.0.0")
	cases := []struct{ topic, token string }{
		{"realtime:payment-intent:7:" + refB, realtimeKey(7, refA, time.Hour)}, // another reference
		{"realtime:payment-intent:8:" + refA, realtimeKey(7, refA, time.Hour)}, // another session
		{"realtime:payment-intent:7:" + refA, ""},                              // the anon key alone
	}
	for _, tc := range cases {
		ref := c.nextRef()
		c.push(ref, ref, tc.topic, "phx_join", productJoin(tc.token, refA))
		m := c.nextEvent("phx_reply")
		want := `{"status":"error","response":{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: ` +
			strings.TrimPrefix(tc.topic, "realtime:") + `"}}`
		if string(m.Payload) != want {
			t.Errorf("got %s, want payload %s", m.Raw, want)
		}
	}
	if got := counterValue(t, srv.reg, "dollr_realtime_joins_total", map[string]string{"outcome": "unauthorized"}); got != 3 {
		t.Errorf("unauthorized joins = %v", got)
	}
}

func TestTokenExpiryClosesChannel(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	jr, _ := c.joinOK(topic, productJoin(realtimeKey(7, refA, 1500*time.Millisecond), refA))
	sys := c.nextEvent("system")
	p := sys.payload()
	if p["extension"] != "system" || p["status"] != "error" || p["channel"] != strings.TrimPrefix(topic, "realtime:") ||
		!strings.HasPrefix(p["message"].(string), "Token has expired ") || !strings.HasSuffix(p["message"].(string), " seconds ago") {
		t.Errorf("system: %s", sys.Raw)
	}
	if *sys.JoinRef != jr || sys.Ref != nil {
		t.Errorf("system refs: %s", sys.Raw)
	}
	if got, want := c.next().Raw, `["`+jr+`","`+jr+`","`+topic+`","phx_close",{}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	srv.Publish([]change{statusChange(1, refA, 1, dollr.StatusPending)})
	c.quiet(30 * time.Millisecond)
}

// The sweeper looks at a socket's channels only once its earliest known
// expiry has passed: a refresh to a token that expires sooner must still end
// the channel on time, while the socket's other channel goes on.
func TestSoonerRefreshedTokenStillExpires(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy})
	c := dial(t, srv, "2.0.0")
	topicA, topicB := "realtime:payment-intent:7:"+refA, "realtime:payment-intent:7:"+refB
	jrA, _ := c.joinOK(topicA, productJoin(realtimeKey(7, refA, time.Hour), refA))
	c.joinOK(topicB, productJoin(realtimeKey(7, refB, 5*time.Second), refB))
	c.push(jrA, c.nextRef(), topicA, "access_token", map[string]any{"access_token": realtimeKey(7, refA, 1500*time.Millisecond)})
	if m := c.nextEvent("system"); m.payload()["message"] != "Subscribed to PostgreSQL" { // the same rows
		t.Fatalf("after refresh: %s", m.Raw)
	}
	sys := c.nextEvent("system")
	if msg, _ := sys.payload()["message"].(string); !strings.HasPrefix(msg, "Token has expired ") || *sys.JoinRef != jrA {
		t.Fatalf("want %s to expire, got %s", topicA, sys.Raw)
	}
	if m := c.nextEvent("phx_close"); *m.JoinRef != jrA {
		t.Fatalf("phx_close: %s", m.Raw)
	}
	// Seconds before its own token expires, the other channel still delivers.
	srv.Publish([]change{statusChange(1, refB, 1, dollr.StatusPending)})
	if m := c.nextEvent("postgres_changes"); m.Topic != topicB {
		t.Fatalf("got %s", m.Raw)
	}
}

func TestAccessTokenRefresh(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	short := realtimeKey(7, refA, 1500*time.Millisecond)
	deadline := time.Now().Add(1500 * time.Millisecond)
	jr, _ := c.joinOK(topic, productJoin(short, refA))

	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": short}) // unchanged: ignored
	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": nil})   // null: ignored
	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": "sb_publishable_x"})
	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": realtimeKey(7, refA, time.Hour)})
	if m := c.nextEvent("system"); m.payload()["message"] != "Subscribed to PostgreSQL" || *m.JoinRef != jr {
		t.Fatalf("after refresh: %s", m.Raw)
	}
	// The first token's exp passes without closing the channel.
	c.quiet(time.Until(deadline) + 700*time.Millisecond)
	srv.Publish([]change{statusChange(1, refA, 1, dollr.StatusPending)})
	c.nextEvent("postgres_changes")

	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": "garbage"})
	if m := c.nextEvent("system"); m.payload()["message"] != "The token provided is not a valid JWT" || m.payload()["extension"] != "system" {
		t.Fatalf("invalid refresh: %s", m.Raw)
	}
	c.nextEvent("phx_close")
}

func TestAccessTokenRefreshLosesPermission(t *testing.T) {
	srv := startServer(t, Config{Policy: paymentPolicy})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	jr, _ := c.joinOK(topic, productJoin(realtimeKey(7, refA, time.Hour), refA))
	c.push(jr, c.nextRef(), topic, "access_token", map[string]any{"access_token": realtimeKey(7, refB, time.Hour)})
	m := c.nextEvent("system")
	if want := "You no longer have permission to read from this Channel topic: payment-intent:7:" + refA; m.payload()["message"] != want {
		t.Fatalf("got %s", m.Raw)
	}
	c.nextEvent("phx_close")
}

func TestAccessTokenRefreshRebindsRows(t *testing.T) {
	// The grant follows a claim that is not part of the topic, so a refresh can move it.
	policy := PolicyFunc(func(claims map[string]any, _ string) (Grant, error) {
		ref, _ := claims["reference_id"].(string)
		return Grant{Allow: true, Rows: map[string]map[string]string{"public." + dollr.PublicStatusTable: {"reference_id": ref}}}, nil
	})
	srv := startServer(t, Config{Policy: policy})
	c := dial(t, srv, "2.0.0")
	jr, _ := c.joinOK("realtime:watch", joinPayload(realtimeKey(7, refA, time.Hour),
		map[string]any{"event": "*", "schema": "public", "table": dollr.PublicStatusTable}))
	c.push(jr, c.nextRef(), "realtime:watch", "access_token", map[string]any{"access_token": realtimeKey(7, refB, time.Hour)})
	c.nextEvent("system")
	srv.Publish([]change{statusChange(1, refA, 1, dollr.StatusPending), statusChange(2, refB, 2, dollr.StatusPending)})
	m := c.nextEvent("postgres_changes")
	if rec := m.payload()["data"].(map[string]any)["record"].(map[string]any); rec["reference_id"] != refB {
		t.Errorf("got %v", rec)
	}
	c.quiet(30 * time.Millisecond)
}

// blockingSnapshot returns rows for one reference and holds the read until released.
type blockingSnapshot struct {
	mu      sync.Mutex
	calls   []map[string]string
	called  chan struct{}
	release chan struct{}
	rows    []change
	seq     uint64
}

func (b *blockingSnapshot) Snapshot(ctx context.Context, schema, table string, eq map[string]string) ([]dollr.Change, uint64, error) {
	b.mu.Lock()
	b.calls = append(b.calls, eq)
	b.mu.Unlock()
	b.called <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
	return b.rows, b.seq, nil
}

func TestSnapshotThenLiveInCommitOrder(t *testing.T) {
	processing := statusChange(5, refA, 1, dollr.StatusProcessing)
	processing.Type = "" // no better information: sent as an INSERT
	snap := &blockingSnapshot{called: make(chan struct{}, 1), release: make(chan struct{}), rows: []change{processing}, seq: 5}
	srv := startServer(t, Config{Policy: paymentPolicy, Snapshot: snap})
	c := dial(t, srv, "2.0.0")
	topic := "realtime:payment-intent:7:" + refA
	ref := c.nextRef()
	c.push(ref, ref, topic, "phx_join", productJoin(realtimeKey(7, refA, time.Hour), strings.ToUpper(refA)))
	select {
	case <-snap.called:
	case <-time.After(5 * time.Second):
		t.Fatal("snapshot not read")
	}
	if eq := snap.calls[0]; len(eq) != 1 || eq["reference_id"] != refA {
		t.Errorf("snapshot eq = %v", eq)
	}
	// Committed while the snapshot is read: 4 is older than the snapshot, 6 newer.
	srv.Publish([]change{statusChange(4, refA, 1, dollr.StatusPending), statusChange(6, refA, 1, dollr.StatusCompleted)})
	// The join is answered only once the snapshot is read, so anything committed
	// after the client sees SUBSCRIBED is newer than the snapshot.
	c.quiet(20 * time.Millisecond)
	close(snap.release)
	if m := c.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
		t.Fatalf("join reply: %s", m.Raw)
	}
	if m := c.nextEvent("system"); m.payload()["message"] != "Subscribed to PostgreSQL" {
		t.Fatalf("system: %s", m.Raw)
	}
	first := c.nextEvent("postgres_changes")
	if statusOf(t, first) != "PROCESSING" || first.payload()["data"].(map[string]any)["type"] != "INSERT" {
		t.Errorf("snapshot row: %s", first.Raw)
	}
	if m := c.nextEvent("postgres_changes"); statusOf(t, m) != "COMPLETED" {
		t.Errorf("live after snapshot: %s", m.Raw)
	}
	// A lagging feed delivering a change the snapshot covered does not rewind the row.
	srv.Publish([]change{statusChange(5, refA, 1, dollr.StatusProcessing), statusChange(7, refA, 1, dollr.StatusFailed)})
	if m := c.nextEvent("postgres_changes"); statusOf(t, m) != "FAILED" {
		t.Errorf("got %s", m.Raw)
	}
	c.quiet(20 * time.Millisecond)
}

func TestSlowClientDisconnected(t *testing.T) {
	srv := startServer(t, Config{SendQueue: 8})
	joinWithoutReading(t, srv)
	floodItems(srv, 256<<10, func() bool {
		return counterValue(t, srv.reg, "dollr_realtime_slow_client_disconnects_total", nil) > 0
	})
	eventually(t, "slow client disconnected", func() bool {
		return counterValue(t, srv.reg, "dollr_realtime_slow_client_disconnects_total", nil) == 1 &&
			counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0
	})
	// Everyone else is unaffected.
	c := dial(t, srv, "2.0.0")
	c.joinOK("realtime:room", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "items"}))
	srv.Publish([]change{itemInsert(1, 1000)})
	c.nextEvent("postgres_changes")
}

// recordingHandler keeps every log record.
type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// count returns how many records above level carry msg ("" for any).
func (h *recordingHandler) count(above slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level > above && (msg == "" || r.Message == msg) {
			n++
		}
	}
	return n
}

// A refresh the policy refuses with a *JoinError (its normal way to refuse,
// and one any client can trigger in a loop) is no error in the log; a policy
// that fails outright is, at most once a second.
func TestPolicyRefusalLogging(t *testing.T) {
	h := &recordingHandler{}
	policy := PolicyFunc(func(claims map[string]any, subTopic string) (Grant, error) {
		if strings.HasPrefix(subTopic, "broken") {
			return Grant{}, fmt.Errorf("database down")
		}
		if ref, _ := claims["reference_id"].(string); ref != refA {
			return Grant{}, &JoinError{Code: "Unauthorized", Message: "not yours"}
		}
		return Grant{Allow: true}, nil
	})
	srv := startServer(t, Config{Policy: policy, Logger: slog.New(h)})
	c := dial(t, srv, "2.0.0")
	jr, _ := c.joinOK("realtime:room", joinPayload(realtimeKey(7, refA, time.Hour)))
	for i := 0; i < 5; i++ {
		if i > 0 {
			jr, _ = c.joinOK("realtime:room", joinPayload(realtimeKey(7, refA, time.Hour)))
		}
		c.push(jr, c.nextRef(), "realtime:room", "access_token", map[string]any{"access_token": realtimeKey(7, refB, time.Hour)})
		c.nextEvent("system")
		c.nextEvent("phx_close")
	}
	if n := h.count(slog.LevelWarn, ""); n != 0 {
		t.Errorf("%d records above WARN for refused refreshes", n)
	}
	start := time.Now()
	for i := 0; i < 20; i++ {
		ref := c.nextRef()
		c.push(ref, ref, fmt.Sprintf("realtime:broken%d", i), "phx_join", joinPayload(""))
		if m := c.nextEvent("phx_reply"); m.payload()["status"] != "error" {
			t.Fatalf("got %s", m.Raw)
		}
	}
	if n, most := h.count(slog.LevelWarn, "realtime: policy failed"), 1+int(time.Since(start)/time.Second); n < 1 || n > most {
		t.Errorf("%d policy failures logged for 20 in %v, want 1 to %d", n, time.Since(start), most)
	}
}
