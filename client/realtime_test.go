package client

// These tests drive the realtime client against a scripted peer that replays
// the server frames captured in realtime-protocol.md, for the edge cases a
// healthy dollr serve never produces (mismatched bindings, silent heartbeats,
// stale join refs). The happy path against the real server is in
// integration_test.go.

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const testWait = 20 * time.Second

// peer is a WebSocket server whose every frame the test writes by hand.
type peer struct {
	t     *testing.T
	ln    net.Listener
	conns chan *peerConn
	// refuse, when set, answers the upgrade with this HTTP status.
	refuse int
}

type peerConn struct {
	t     *testing.T
	conn  net.Conn
	query url.Values
}

func newPeer(t *testing.T) *peer { return newRefusingPeer(t, 0) }

// newRefusingPeer answers every upgrade with HTTP status refuse (0: accept).
func newRefusingPeer(t *testing.T, refuse int) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, ln: ln, conns: make(chan *peerConn, 4), refuse: refuse}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			pc := &peerConn{t: t, conn: conn}
			t.Cleanup(func() { conn.Close() })
			u := ws.Upgrader{
				OnRequest: func(uri []byte) error {
					parsed, err := url.ParseRequestURI(string(uri))
					if err != nil {
						return err
					}
					if parsed.Path != "/realtime/v1/websocket" {
						return ws.RejectConnectionError(ws.RejectionStatus(http.StatusNotFound))
					}
					if p.refuse != 0 {
						return ws.RejectConnectionError(ws.RejectionStatus(p.refuse), ws.RejectionReason(`{"error":"API key is missing"}`))
					}
					pc.query = parsed.Query()
					return nil
				},
			}
			if _, err := u.Upgrade(conn); err != nil {
				conn.Close()
				continue
			}
			p.conns <- pc
		}
	}()
	return p
}

func (p *peer) url() string { return "http://" + p.ln.Addr().String() }

func (p *peer) accept() *peerConn {
	p.t.Helper()
	select {
	case c := <-p.conns:
		return c
	case <-time.After(testWait):
		p.t.Fatal("no connection")
		return nil
	}
}

// read returns the client's next text frame, answering nothing.
func (c *peerConn) read() frame {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(testWait))
	for {
		b, op, err := wsutil.ReadClientData(c.conn)
		if err != nil {
			c.t.Fatalf("peer read: %v", err)
		}
		if op != ws.OpText {
			continue
		}
		f, err := decodeFrame(b)
		if err != nil {
			c.t.Fatalf("client sent a bad frame %s: %v", b, err)
		}
		return f
	}
}

// readEvent skips frames until one with the given event.
func (c *peerConn) readEvent(event string) frame {
	c.t.Helper()
	for {
		if f := c.read(); f.Event == event {
			return f
		}
	}
}

func (c *peerConn) write(s string) {
	c.t.Helper()
	if err := wsutil.WriteServerText(c.conn, []byte(s)); err != nil {
		c.t.Fatalf("peer write: %v", err)
	}
}

// recorder collects a channel's callbacks.
type recorder struct {
	statuses chan statusRec
	changes  chan *PostgresChange
	system   chan SystemMessage
}

type statusRec struct {
	s   ChannelStatus
	err error
}

func newRecorder() *recorder {
	return &recorder{statuses: make(chan statusRec, 16), changes: make(chan *PostgresChange, 16), system: make(chan SystemMessage, 16)}
}

func (r *recorder) options(token string, bindings ...PostgresChangesFilter) ChannelOptions {
	return ChannelOptions{
		AccessToken:     token,
		PostgresChanges: bindings,
		OnStatus:        func(s ChannelStatus, err error) { r.statuses <- statusRec{s, err} },
		OnChange:        func(ev *PostgresChange) { r.changes <- ev },
		OnSystem:        func(m SystemMessage) { r.system <- m },
	}
}

func (r *recorder) status(t *testing.T) statusRec {
	t.Helper()
	select {
	case s := <-r.statuses:
		return s
	case <-time.After(testWait):
		t.Fatal("no status callback")
		return statusRec{}
	}
}

func (r *recorder) change(t *testing.T) *PostgresChange {
	t.Helper()
	select {
	case ev := <-r.changes:
		return ev
	case <-time.After(testWait):
		t.Fatal("no change callback")
		return nil
	}
}

var productBinding = PostgresChangesFilter{Event: "*", Schema: "public", Table: "checkout_payment_intent_public_status", Filter: "reference_id=eq.ref_123"}

const productReply = `{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","filter":"reference_id=eq.ref_123","id":1001}]}}`

func dialPeer(t *testing.T, p *peer, opts RealtimeOptions) (*RealtimeConn, *peerConn) {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = "anon-key"
	}
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	c, err := DialRealtime(ctx, p.url(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-c.Done() })
	return c, p.accept()
}

// joinProduct joins the product channel and answers the join as the real
// server does.
func joinProduct(t *testing.T, c *RealtimeConn, pc *peerConn, rec *recorder) (*Channel, frame) {
	t.Helper()
	ch, err := c.Join("payment-intent:sess_abc:ref_123", rec.options("JWT", productBinding))
	if err != nil {
		t.Fatal(err)
	}
	join := pc.readEvent("phx_join")
	pc.write(`["` + join.JoinRef + `","` + join.Ref + `","realtime:payment-intent:sess_abc:ref_123","phx_reply",` + productReply + `]`)
	if s := rec.status(t); s.s != ChannelSubscribed {
		t.Fatalf("status %s (%v), want SUBSCRIBED", s.s, s.err)
	}
	return ch, join
}

func TestRealtimeJoinAndChanges(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{APIKey: "the-anon-key"})
	if pc.query.Get("apikey") != "the-anon-key" || pc.query.Get("vsn") != "2.0.0" {
		t.Errorf("connect query %v", pc.query)
	}
	rec := newRecorder()
	_, join := joinProduct(t, c, pc, rec)
	if join.JoinRef == "" || join.JoinRef != join.Ref || join.Topic != "realtime:payment-intent:sess_abc:ref_123" {
		t.Errorf("join frame %+v", join)
	}
	var jp struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(join.Payload, &jp); err != nil || jp.AccessToken != "JWT" {
		t.Errorf("join payload %s", join.Payload)
	}

	topic := `"realtime:payment-intent:sess_abc:ref_123"`
	pc.write(`["` + join.JoinRef + `",null,` + topic + `,"system",{"extension":"postgres_changes","status":"ok","message":"Subscribed to PostgreSQL","channel":"payment-intent:sess_abc:ref_123"}]`)
	select {
	case m := <-rec.system:
		if m.Message != "Subscribed to PostgreSQL" || m.Extension != "postgres_changes" {
			t.Errorf("system %+v", m)
		}
	case <-time.After(testWait):
		t.Fatal("no system callback")
	}
	// Not delivered: an unknown id, a string id, a stale join_ref.
	pc.write(`[null,null,` + topic + `,"postgres_changes",{"ids":[999999],"data":{"type":"INSERT","schema":"public","table":"t","columns":[],"record":{"status":"X"},"errors":null}}]`)
	pc.write(`[null,null,` + topic + `,"postgres_changes",{"ids":["1001"],"data":{"type":"INSERT","schema":"public","table":"t","columns":[],"record":{"status":"X"},"errors":null}}]`)
	pc.write(`["999",null,` + topic + `,"postgres_changes",{"ids":[1001],"data":{"type":"INSERT","schema":"public","table":"t","columns":[],"record":{"status":"X"},"errors":null}}]`)
	// Delivered.
	pc.write(`[null,null,` + topic + `,"postgres_changes",{"ids":[1001],"data":{"columns":[{"name":"id","type":"int8"},{"name":"status","type":"text"}],"commit_timestamp":"2026-11-25T16:58:29.779Z","errors":null,"record":{"id":9007199254740993,"status":"PROCESSING","requires_action":false},"schema":"public","table":"checkout_payment_intent_public_status","type":"INSERT"}}]`)
	ev := rec.change(t)
	if ev.Type != "INSERT" || ev.Table != "checkout_payment_intent_public_status" || ev.CommitTimestamp != "2026-11-25T16:58:29.779Z" {
		t.Errorf("event %+v", ev)
	}
	if ev.Record["status"] != "PROCESSING" || ev.Record["id"] != json.Number("9007199254740993") || ev.Record["requires_action"] != false {
		t.Errorf("record %#v", ev.Record)
	}
	if len(ev.Columns) != 2 || ev.Columns[0].Type != "int8" || ev.ReceivedAt.IsZero() {
		t.Errorf("columns %v, received %v", ev.Columns, ev.ReceivedAt)
	}
	select {
	case ev := <-rec.changes:
		t.Fatalf("an event that should have been dropped was delivered: %+v", ev)
	default:
	}
	// The current join_ref is delivered too.
	pc.write(`["` + join.JoinRef + `",null,` + topic + `,"postgres_changes",{"ids":[1001],"data":{"columns":[],"errors":null,"old_record":{"id":1},"record":{"status":"COMPLETED"},"schema":"public","table":"t","type":"UPDATE"}}]`)
	if ev := rec.change(t); ev.Record["status"] != "COMPLETED" || ev.OldRecord["id"] != json.Number("1") {
		t.Errorf("update %+v", ev)
	}
}

func TestRealtimeVsn1(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{Vsn: "1.0.0"})
	if pc.query.Get("vsn") != "1.0.0" {
		t.Errorf("vsn %q", pc.query.Get("vsn"))
	}
	rec := newRecorder()
	if _, err := c.Join("payment-intent:sess_abc:ref_123", rec.options("JWT", productBinding)); err != nil {
		t.Fatal(err)
	}
	_ = pc.conn.SetReadDeadline(time.Now().Add(testWait))
	b, _, err := wsutil.ReadClientData(pc.conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"topic":"realtime:payment-intent:sess_abc:ref_123","event":"phx_join"`) {
		t.Fatalf("vsn 1 join %s", b)
	}
	join, _ := decodeFrame(b)
	pc.write(`{"topic":"realtime:payment-intent:sess_abc:ref_123","event":"phx_reply","payload":` + productReply + `,"ref":"` + join.Ref + `","join_ref":"` + join.JoinRef + `"}`)
	if s := rec.status(t); s.s != ChannelSubscribed {
		t.Fatalf("status %s", s.s)
	}
	pc.write(`{"topic":"realtime:payment-intent:sess_abc:ref_123","event":"postgres_changes","payload":{"ids":[1001],"data":{"type":"INSERT","schema":"public","table":"t","columns":[],"record":{"status":"PENDING"},"errors":null}},"ref":null,"join_ref":null}`)
	if ev := rec.change(t); ev.Record["status"] != "PENDING" {
		t.Errorf("record %v", ev.Record)
	}
}

func TestRealtimeBindingMismatch(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{})
	rec := newRecorder()
	if _, err := c.Join("payment-intent:sess_abc:ref_123", rec.options("JWT", productBinding)); err != nil {
		t.Fatal(err)
	}
	join := pc.readEvent("phx_join")
	// The filter is missing from the echo (captured case, §5.2).
	pc.write(`["` + join.JoinRef + `","` + join.Ref + `","realtime:payment-intent:sess_abc:ref_123","phx_reply",{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","id":1001}]}}]`)
	leave := pc.readEvent("phx_leave")
	if leave.JoinRef != join.JoinRef {
		t.Errorf("leave %+v", leave)
	}
	if s := rec.status(t); s.s != ChannelClosed {
		t.Errorf("first status %s, want CLOSED", s.s)
	}
	if s := rec.status(t); s.s != ChannelError || !errors.Is(s.err, errBindingsMismatch) {
		t.Errorf("second status %s %v, want CHANNEL_ERROR mismatch", s.s, s.err)
	}
}

func TestRealtimeJoinError(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{})
	rec := newRecorder()
	if _, err := c.Join("payment-intent:sess_abc:ref_123", rec.options("JWT", productBinding)); err != nil {
		t.Fatal(err)
	}
	join := pc.readEvent("phx_join")
	reason := "Unauthorized: You do not have permissions to read from this Channel topic: payment-intent:sess_abc:ref_123"
	pc.write(`["` + join.JoinRef + `","` + join.Ref + `","realtime:payment-intent:sess_abc:ref_123","phx_reply",{"status":"error","response":{"reason":"` + reason + `"}}]`)
	s := rec.status(t)
	var je *JoinError
	if s.s != ChannelError || !errors.As(s.err, &je) || je.Reason != reason {
		t.Errorf("status %s %v", s.s, s.err)
	}
	// The topic is free again.
	if _, err := c.Join("payment-intent:sess_abc:ref_123", rec.options("JWT", productBinding)); err != nil {
		t.Errorf("rejoin after error: %v", err)
	}
}

func TestRealtimeJoinTimeout(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{})
	rec := newRecorder()
	opts := rec.options("")
	opts.JoinTimeout = 100 * time.Millisecond
	if _, err := c.Join("room", opts); err != nil {
		t.Fatal(err)
	}
	join := pc.readEvent("phx_join")
	if leave := pc.readEvent("phx_leave"); leave.JoinRef != join.JoinRef {
		t.Errorf("leave %+v after join %+v", leave, join)
	}
	if s := rec.status(t); s.s != ChannelTimedOut {
		t.Errorf("status %s, want TIMED_OUT", s.s)
	}
	// A late reply changes nothing.
	pc.write(`["` + join.JoinRef + `","` + join.Ref + `","realtime:room","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`)
	// The topic is free again and a fresh join gets its own reply.
	if _, err := c.Join("room", rec.options("")); err != nil {
		t.Fatal(err)
	}
	j2 := pc.readEvent("phx_join")
	if j2.JoinRef == join.JoinRef {
		t.Errorf("rejoin reused join_ref %s", j2.JoinRef)
	}
	pc.write(`["` + j2.JoinRef + `","` + j2.Ref + `","realtime:room","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`)
	if s := rec.status(t); s.s != ChannelSubscribed {
		t.Errorf("status %s after the late reply and a rejoin, want SUBSCRIBED", s.s)
	}
}

func TestRealtimeHeartbeat(t *testing.T) {
	p := newPeer(t)
	closed := make(chan error, 1)
	// Long enough that the test answers the first heartbeat in time even on
	// a loaded machine; the second is left unanswered.
	c, pc := dialPeer(t, p, RealtimeOptions{HeartbeatInterval: time.Second, OnClose: func(err error) { closed <- err }})
	rec := newRecorder()
	joinProduct(t, c, pc, rec)
	hb := pc.readEvent("heartbeat")
	if hb.Topic != "phoenix" || hb.JoinRef != "" || hb.Ref == "" || string(hb.Payload) != "{}" {
		t.Errorf("heartbeat %+v", hb)
	}
	pc.write(`[null,"` + hb.Ref + `","phoenix","phx_reply",{"status":"ok","response":{}}]`)
	// Answered, so a second heartbeat follows; leave it unanswered.
	pc.readEvent("heartbeat")
	s := rec.status(t)
	if s.s != ChannelError || !errors.Is(s.err, errHeartbeatTimeout) {
		t.Errorf("status %s %v, want CHANNEL_ERROR heartbeat timeout", s.s, s.err)
	}
	select {
	case err := <-closed:
		if !errors.Is(err, errHeartbeatTimeout) {
			t.Errorf("OnClose(%v)", err)
		}
	case <-time.After(testWait):
		t.Fatal("OnClose not called")
	}
	if !errors.Is(c.Err(), errHeartbeatTimeout) {
		t.Errorf("Err() = %v", c.Err())
	}
}

func TestRealtimeServerCloses(t *testing.T) {
	p := newPeer(t)
	c, pc := dialPeer(t, p, RealtimeOptions{})
	rec := newRecorder()
	_, join := joinProduct(t, c, pc, rec)

	// A second channel closed by the server (token expiry): system error, then phx_close.
	rec2 := newRecorder()
	if _, err := c.Join("other", rec2.options("JWT")); err != nil {
		t.Fatal(err)
	}
	j2 := pc.readEvent("phx_join")
	pc.write(`["` + j2.JoinRef + `","` + j2.Ref + `","realtime:other","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`)
	if s := rec2.status(t); s.s != ChannelSubscribed {
		t.Fatalf("status %s", s.s)
	}
	pc.write(`["` + j2.JoinRef + `",null,"realtime:other","system",{"extension":"system","status":"error","message":"Token has expired 0 seconds ago","channel":"other"}]`)
	pc.write(`["` + j2.JoinRef + `","` + j2.JoinRef + `","realtime:other","phx_close",{}]`)
	if s := rec2.status(t); s.s != ChannelClosed {
		t.Errorf("status %s, want CLOSED", s.s)
	}

	// The socket closes: the remaining channel errors.
	_ = join
	if err := ws.WriteFrame(pc.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"))); err != nil {
		t.Fatal(err)
	}
	s := rec.status(t)
	var ce *closeError
	if s.s != ChannelError || !errors.As(s.err, &ce) || ce.code != ws.StatusGoingAway {
		t.Errorf("status %s %v", s.s, s.err)
	}
	<-c.Done()
}

func TestRealtimeAccessTokenAndLeave(t *testing.T) {
	p := newPeer(t)
	closed := make(chan error, 1)
	c, pc := dialPeer(t, p, RealtimeOptions{OnClose: func(err error) { closed <- err }})
	rec := newRecorder()
	ch, join := joinProduct(t, c, pc, rec)
	if err := ch.SetAccessToken("JWT2"); err != nil {
		t.Fatal(err)
	}
	at := pc.readEvent("access_token")
	if at.JoinRef != join.JoinRef || string(at.Payload) != `{"access_token":"JWT2"}` {
		t.Errorf("access_token frame %+v %s", at, at.Payload)
	}
	if err := ch.Leave(); err != nil {
		t.Fatal(err)
	}
	if leave := pc.readEvent("phx_leave"); leave.JoinRef != join.JoinRef || leave.Topic != ch.Topic() {
		t.Errorf("leave %+v", leave)
	}
	if err := ch.SetAccessToken("JWT3"); err == nil {
		t.Error("SetAccessToken on a left channel succeeded")
	}

	// Close: open channels get CLOSED, OnClose(nil).
	rec2 := newRecorder()
	if _, err := c.Join("room", rec2.options("")); err != nil {
		t.Fatal(err)
	}
	pc.readEvent("phx_join")
	c.Close()
	if s := rec2.status(t); s.s != ChannelClosed {
		t.Errorf("status after Close %s %v", s.s, s.err)
	}
	if err := <-closed; err != nil {
		t.Errorf("OnClose(%v), want nil", err)
	}
	if _, err := c.Join("late", rec2.options("")); err == nil {
		t.Error("Join after Close succeeded")
	}
}

func TestRealtimeUpgradeRefused(t *testing.T) {
	p := newRefusingPeer(t, http.StatusUnauthorized)
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err := DialRealtime(ctx, p.url(), RealtimeOptions{APIKey: "bad"})
	var ue *UpgradeError
	if !errors.As(err, &ue) || ue.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want an UpgradeError 401", err)
	}
}

// TestRealtimeUpgradeRefusedKeepAlive: a refusal on a connection the server
// keeps open (net/http's 404) must not wait for the connection to close.
func TestRealtimeUpgradeRefusedKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		buf := make([]byte, 4096)
		_, _ = conn.Read(buf)
		body := `{"detail":"Not Found"}`
		_, _ = conn.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body))
		_, _ = conn.Read(buf) // hold the connection open until the client goes
	}()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	_, err = DialRealtime(ctx, "http://"+ln.Addr().String(), RealtimeOptions{APIKey: "k"})
	var ue *UpgradeError
	if !errors.As(err, &ue) || ue.StatusCode != http.StatusNotFound || ue.Body != `{"detail":"Not Found"}` {
		t.Fatalf("err = %v, want an UpgradeError 404 with the body", err)
	}
}
