package checkout

// realtime.js in Chromium against a scripted Phoenix peer: the frames it
// sends are checked field by field, and the peer produces the situations the
// real server rarely does on demand (phx_error, a mismatched or refused
// join, an unanswered heartbeat, a dropped socket) to check the client's
// reaction against realtime-protocol.md.

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// peerConn is one WebSocket the page opened to the scripted peer.
type peerConn struct {
	t      *testing.T
	c      *websocket.Conn
	query  string
	frames chan []any
	closed chan struct{}
	// muteHeartbeats stops the automatic heartbeat replies.
	muteHeartbeats atomic.Bool
	heartbeats     atomic.Int32
}

type phoenixPeer struct {
	t     *testing.T
	conns chan *peerConn
}

func (p *phoenixPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	pc := &peerConn{t: p.t, c: c, query: r.URL.Path + "?" + r.URL.RawQuery, frames: make(chan []any, 64), closed: make(chan struct{})}
	go func() {
		defer close(pc.closed)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var f []any
			if json.Unmarshal(b, &f) != nil || len(f) != 5 {
				pc.frames <- []any{"malformed", string(b)}
				continue
			}
			if f[2] == "phoenix" && f[3] == "heartbeat" {
				pc.heartbeats.Add(1)
				if !pc.muteHeartbeats.Load() {
					pc.send(nil, f[1], "phoenix", "phx_reply", map[string]any{"status": "ok", "response": map[string]any{}})
				}
				continue
			}
			pc.frames <- f
		}
	}()
	p.conns <- pc
}

// accept waits for the page's next socket.
func (p *phoenixPeer) accept() *peerConn {
	p.t.Helper()
	select {
	case pc := <-p.conns:
		p.t.Cleanup(func() { pc.c.CloseNow() })
		return pc
	case <-time.After(10 * time.Second):
		p.t.Fatal("the page opened no WebSocket")
		return nil
	}
}

// next returns the next frame, which must be event.
func (pc *peerConn) next(event string) []any {
	pc.t.Helper()
	select {
	case f := <-pc.frames:
		if f[3] != event {
			pc.t.Fatalf("got frame %v, want %s", f, event)
		}
		return f
	case <-time.After(10 * time.Second):
		pc.t.Fatalf("no %s frame", event)
		return nil
	}
}

func (pc *peerConn) send(frame ...any) {
	b, _ := json.Marshal(frame)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc.c.Write(ctx, websocket.MessageText, b)
}

func (pc *peerConn) waitClosed() {
	pc.t.Helper()
	select {
	case <-pc.closed:
	case <-time.After(10 * time.Second):
		pc.t.Fatal("the page did not close its socket")
	}
}

const (
	rtTopic  = "realtime:payment-intent:5:0b9e2c1e-7a8d-4c53-9d0c-5b0e4a8f7d21"
	rtFilter = "reference_id=eq.0b9e2c1e-7a8d-4c53-9d0c-5b0e4a8f7d21"
)

func rtBinding() map[string]any {
	return map[string]any{"event": "*", "schema": "public", "table": "checkout_payment_intent_public_status", "filter": rtFilter}
}

func okReply(id any) map[string]any {
	b := rtBinding()
	b["id"] = id
	return map[string]any{"status": "ok", "response": map[string]any{"postgres_changes": []any{b}}}
}

// rtPage is a browser tab running realtime.js, logging what it reports.
type rtPage struct {
	*browser
	mu sync.Mutex
}

const rtSubscribe = `window.__log = [];
window.__token = "key-1";
window.__sub = DollrRealtime.subscribe({
  url: location.origin + "/",
  apikey: "anon-1",
  channel: "payment-intent:5:0b9e2c1e-7a8d-4c53-9d0c-5b0e4a8f7d21",
  changes: [{event: "*", schema: "public", table: "checkout_payment_intent_public_status",
             filter: "reference_id=eq.0b9e2c1e-7a8d-4c53-9d0c-5b0e4a8f7d21"}],
  accessToken: function () { return Promise.resolve(window.__token); },
  heartbeatMs: 300, joinTimeoutMs: 1500, backoffMs: [100, 200],
  onStatus: function (s, d) { window.__log.push("status " + s + (d ? " " + d : "")); },
  onChange: function (c) { window.__log.push("change " + c.type + " " + JSON.stringify(c.record)); },
  onSystem: function (p) { window.__log.push("system " + p.status + " " + p.message); }
});`

func (p *rtPage) subscribe() {
	p.t.Helper()
	p.run(5*time.Second, chromedp.Evaluate[chromedp.Void](rtSubscribe))
}

func (p *rtPage) log() []string {
	l, _ := eval[[]string](p.browser, `window.__log || []`)
	return l
}

// waitLog waits until the log holds want; it returns the log.
func (p *rtPage) waitLog(want string) []string {
	p.t.Helper()
	p.waitFor(10*time.Second, "log entry "+want, fmt.Sprintf(`(window.__log || []).indexOf(%q) >= 0`, want))
	return p.log()
}

// scriptPage serves the page's static files and a page that loads only
// script, and opens it in Chromium; mount adds handlers (a WebSocket peer).
func scriptPage(t *testing.T, script string, mount func(*http.ServeMux)) *browser {
	t.Helper()
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if mount != nil {
		mount(mux)
	}
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>%s</title><script src="/static/%s"></script>`, script, script)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv.URL)
	b.run(10*time.Second, chromedp.Navigate(srv.URL+"/page.html"))
	return b
}

func newRealtimePage(t *testing.T) (*rtPage, *phoenixPeer) {
	t.Helper()
	peer := &phoenixPeer{t: t, conns: make(chan *peerConn, 8)}
	b := scriptPage(t, "realtime.js", func(mux *http.ServeMux) { mux.Handle("/realtime/v1/websocket", peer) })
	return &rtPage{browser: b}, peer
}

func TestRealtimeJSProtocol(t *testing.T) {
	p, peer := newRealtimePage(t)
	p.subscribe()

	// Connect: the anon key and vsn=2.0.0 in the query, nothing else.
	c := peer.accept()
	if c.query != "/realtime/v1/websocket?apikey=anon-1&vsn=2.0.0" {
		t.Errorf("socket URL %s", c.query)
	}

	// Join (§4): refs are equal strings, the payload is supabase-js's shape.
	join := c.next("phx_join")
	jr, ok := join[0].(string)
	if !ok || join[1] != jr || join[2] != rtTopic {
		t.Fatalf("join frame %v", join)
	}
	wantJoin := map[string]any{
		"config": map[string]any{
			"broadcast":        map[string]any{"ack": false, "self": false},
			"presence":         map[string]any{"key": "", "enabled": false},
			"postgres_changes": []any{rtBinding()},
			"private":          false,
		},
		"access_token": "key-1",
	}
	if !reflect.DeepEqual(join[4], wantJoin) {
		t.Fatalf("join payload %v\nwant %v", join[4], wantJoin)
	}
	c.send(jr, jr, rtTopic, "phx_reply", okReply(4242))
	p.waitLog("status SUBSCRIBED")

	// Changes (§7): only this channel's ids and current join_ref are delivered.
	data := func(status string) map[string]any {
		return map[string]any{"type": "UPDATE", "schema": "public", "table": "checkout_payment_intent_public_status",
			"commit_timestamp": "2026-11-25T16:58:29.779Z", "columns": []any{map[string]any{"name": "status", "type": "text"}},
			"record": map[string]any{"status": status}, "old_record": map[string]any{"id": 1}, "errors": nil}
	}
	c.send(nil, nil, rtTopic, "postgres_changes", map[string]any{"ids": []any{9999}, "data": data("NOT_MINE")})
	c.send("999", nil, rtTopic, "postgres_changes", map[string]any{"ids": []any{4242}, "data": data("STALE_JOIN")})
	c.send(nil, nil, "realtime:other", "postgres_changes", map[string]any{"ids": []any{4242}, "data": data("OTHER_TOPIC")})
	c.send(jr, nil, rtTopic, "system", map[string]any{"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL", "channel": "x"})
	c.send(nil, nil, rtTopic, "postgres_changes", map[string]any{"ids": []any{4242}, "data": data("PROCESSING")})
	log := p.waitLog(`change UPDATE {"status":"PROCESSING"}`)
	if want := []string{"status SUBSCRIBED", "system ok Subscribed to PostgreSQL", `change UPDATE {"status":"PROCESSING"}`}; !reflect.DeepEqual(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}

	// Heartbeats (§9) and a renewed key pushed as access_token (§10.2).
	waitUntil(t, 5*time.Second, "heartbeats", func() bool { return c.heartbeats.Load() >= 2 })
	p.run(5*time.Second, chromedp.Evaluate[chromedp.Void](`window.__token = "key-2"`))
	at := c.next("access_token")
	if at[0] != jr || at[2] != rtTopic || !reflect.DeepEqual(at[4], map[string]any{"access_token": "key-2"}) {
		t.Fatalf("access_token frame %v", at)
	}

	// phx_error (§11): CHANNEL_ERROR, then a rejoin with a new join_ref and the new key.
	c.send(jr, jr, rtTopic, "phx_error", map[string]any{})
	p.waitLog("status CHANNEL_ERROR channel error: transport failure")
	join2 := c.next("phx_join")
	jr2 := join2[0].(string)
	if jr2 == jr || join2[4].(map[string]any)["access_token"] != "key-2" {
		t.Fatalf("rejoin %v", join2)
	}
	// A phx_close of the old join is stale and ignored.
	c.send(jr, jr, rtTopic, "phx_close", map[string]any{})
	c.send(jr2, jr2, rtTopic, "phx_reply", okReply(4243))
	p.waitFor(5*time.Second, "second SUBSCRIBED", `window.__log.filter(function (l) { return l === "status SUBSCRIBED"; }).length === 2`)
	c.send(nil, nil, rtTopic, "postgres_changes", map[string]any{"ids": []any{4243}, "data": data("COMPLETED")})
	p.waitLog(`change UPDATE {"status":"COMPLETED"}`)
	if st, _ := eval[string](p.browser, `window.__sub.state()`); st != "joined" {
		t.Fatalf("state %q after a stale phx_close", st)
	}

	// An unanswered heartbeat closes the socket and reconnects (§9).
	c.muteHeartbeats.Store(true)
	p.waitLog("status CHANNEL_ERROR heartbeat timeout")
	c.waitClosed()
	c2 := peer.accept()
	j := c2.next("phx_join")
	c2.send(j[0], j[0], rtTopic, "phx_reply", okReply(4244))
	p.waitFor(5*time.Second, "third SUBSCRIBED", `window.__log.filter(function (l) { return l === "status SUBSCRIBED"; }).length === 3`)

	// The server drops the socket: CHANNEL_ERROR, reconnect, rejoin.
	c2.c.Close(websocket.StatusGoingAway, "bye")
	p.waitFor(5*time.Second, "socket closed", `window.__log.some(function (l) { return l.indexOf("status CHANNEL_ERROR socket closed: 1001") === 0; })`)
	c3 := peer.accept()
	j = c3.next("phx_join")

	// A refused join (§5.3) is reported with its reason and retried.
	c3.send(j[0], j[0], rtTopic, "phx_reply", map[string]any{"status": "error", "response": map[string]any{"reason": "Unauthorized: You do not have permissions to read from this Channel topic: x"}})
	p.waitLog("status CHANNEL_ERROR Unauthorized: You do not have permissions to read from this Channel topic: x")
	j = c3.next("phx_join")

	// No reply at all: TIMED_OUT, phx_leave with that join_ref, rejoin (§5.3).
	leave := c3.next("phx_leave")
	if leave[0] != j[0] {
		t.Fatalf("leave %v after join %v", leave, j)
	}
	p.waitLog("status TIMED_OUT")
	j = c3.next("phx_join")

	// Ids that do not match the bindings (§5.2): leave and give up.
	bad := okReply(1)
	bad["response"].(map[string]any)["postgres_changes"].([]any)[0].(map[string]any)["filter"] = "reference_id=eq.other"
	c3.send(j[0], j[0], rtTopic, "phx_reply", bad)
	c3.next("phx_leave")
	p.waitLog("status CHANNEL_ERROR mismatch between server and client bindings for postgres changes")
	if st, _ := eval[string](p.browser, `window.__sub.state()`); st != "left" {
		t.Fatalf("state %q after a binding mismatch", st)
	}
	p.checkClean()
}

func TestRealtimeJSServerClose(t *testing.T) {
	p, peer := newRealtimePage(t)
	p.subscribe()
	c := peer.accept()
	j := c.next("phx_join")
	c.send(j[0], j[0], rtTopic, "phx_reply", map[string]any{"status": "ok", "response": map[string]any{}})
	p.waitLog("status SUBSCRIBED")
	// Token expiry (§10.3): a system error, then phx_close with ref = join_ref.
	c.send(j[0], nil, rtTopic, "system", map[string]any{"extension": "system", "status": "error", "message": "Token has expired 0 seconds ago"})
	c.send(j[0], j[0], rtTopic, "phx_close", map[string]any{})
	log := p.waitLog("status CLOSED")
	if want := []string{"status SUBSCRIBED", "system error Token has expired 0 seconds ago", "status CLOSED"}; !reflect.DeepEqual(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
	c.waitClosed() // no channel left: the client closes its socket and stops (no timers remain)
	if st, _ := eval[string](p.browser, `window.__sub.state()`); st != "left" {
		t.Fatalf("state %q", st)
	}
	if strings.Contains(strings.Join(p.log(), "\n"), "CHANNEL_ERROR") {
		t.Errorf("phx_close reported as an error: %q", p.log())
	}
	p.checkClean()
}
