package realtime

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

const (
	productRef   = "6f1c2d1e-0000-4000-8000-000000000001"
	productTopic = "realtime:payment-intent:sess_abc:" + productRef
)

func TestHeartbeatReply(t *testing.T) {
	srv := startServer(t, Config{})
	for _, tc := range []struct {
		vsn  string
		want string
	}{
		{vsn: "2.0.0", want: `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{vsn: "1.0.0", want: `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"7","join_ref":null}`},
		{vsn: "", want: `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"7","join_ref":null}`},
	} {
		c := dial(t, srv, tc.vsn)
		c.push("", "7", "phoenix", "heartbeat", map[string]any{})
		if got := c.next().Raw; got != tc.want {
			t.Errorf("vsn %q: got %s, want %s", tc.vsn, got, tc.want)
		}
	}
}

func TestRefsEchoedVerbatim(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.writeRaw(1, []byte(`["6","weird \"ref\" ü",  "phoenix","heartbeat",{},"extra"]`))
	if got, want := c.next().Raw, `[null,"weird \"ref\" ü","phoenix","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestProductJoinReply(t *testing.T) {
	srv := startServer(t, Config{})
	for _, vsn := range []string{"2.0.0", "1.0.0"} {
		c := dial(t, srv, vsn)
		c.push("6", "6", productTopic, "phx_join", productJoin(anonKey(), productRef))
		reply := c.nextEvent("phx_reply")
		if *reply.JoinRef != "6" || *reply.Ref != "6" || reply.Topic != productTopic {
			t.Fatalf("vsn %s: reply refs/topic wrong: %s", vsn, reply.Raw)
		}
		var p struct {
			Status   string `json:"status"`
			Response struct {
				PostgresChanges []map[string]any `json:"postgres_changes"`
			} `json:"response"`
		}
		if err := json.Unmarshal(reply.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Status != "ok" || len(p.Response.PostgresChanges) != 1 {
			t.Fatalf("vsn %s: reply %s", vsn, reply.Raw)
		}
		e := p.Response.PostgresChanges[0]
		if e["event"] != "*" || e["schema"] != "public" || e["table"] != "checkout_payment_intent_public_status" ||
			e["filter"] != "reference_id=eq."+productRef || len(e) != 5 {
			t.Errorf("vsn %s: entry not echoed: %v", vsn, e)
		}
		if _, isNumber := e["id"].(float64); !isNumber {
			t.Errorf("vsn %s: id is %T, want a JSON number", vsn, e["id"])
		}
		sys := c.nextEvent("system")
		if *sys.JoinRef != "6" || sys.Ref != nil {
			t.Errorf("vsn %s: system refs: %s", vsn, sys.Raw)
		}
		sp := sys.payload()
		want := map[string]any{"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL",
			"channel": "payment-intent:sess_abc:" + productRef}
		for k, v := range want {
			if sp[k] != v {
				t.Errorf("vsn %s: system %s = %v, want %v", vsn, k, sp[k], v)
			}
		}
	}
}

func TestBindingIDsStableAndOrdered(t *testing.T) {
	srv := startServer(t, Config{})
	bindings := []map[string]any{
		{"event": "INSERT", "schema": "public", "table": "items"},
		{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.1"},
		{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.1"},
	}
	ids := func() []float64 {
		c := dial(t, srv, "2.0.0")
		_, reply := c.joinOK("realtime:room", joinPayload("", bindings...))
		var out []float64
		for i, e := range reply["response"].(map[string]any)["postgres_changes"].([]any) {
			m := e.(map[string]any)
			if m["event"] != bindings[i]["event"] || m["filter"] != bindings[i]["filter"] {
				t.Errorf("entry %d out of order: %v", i, m)
			}
			id, _ := m["id"].(json.Number).Float64()
			out = append(out, id)
		}
		return out
	}
	a, b := ids(), ids()
	if len(a) != 3 || a[0] != b[0] || a[1] != b[1] || a[1] != a[2] || a[0] == a[1] {
		t.Errorf("ids not stable per params: %v %v", a, b)
	}
}

func TestJoinWithoutPostgresChanges(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.push("3", "3", "realtime:room1", "phx_join", joinPayload(""))
	if got, want := c.next().Raw, `["3","3","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.quiet(50 * time.Millisecond) // no system message without postgres bindings
}

func TestLeaveAndUnmatched(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.push("", "1", "realtime:nowhere", "broadcast", map[string]any{"type": "broadcast", "event": "x", "payload": map[string]any{}})
	if got, want := c.next().Raw, `[null,"1","realtime:nowhere","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`; got != want {
		t.Errorf("unmatched: got %s, want %s", got, want)
	}
	c.push("2", "2", "realtime:nowhere", "phx_leave", map[string]any{})
	if got, want := c.next().Raw, `["2","2","realtime:nowhere","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Errorf("leave of unjoined: got %s, want %s", got, want)
	}
	// realtime-protocol.md §11: Phoenix answers a join no channel route
	// matches outside any join, with a null join_ref.
	c.push("5", "5", "other:topic", "phx_join", joinPayload(""))
	if got, want := c.next().Raw, `[null,"5","other:topic","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]`; got != want {
		t.Errorf("non-realtime topic: got %s, want %s", got, want)
	}

	jr, _ := c.joinOK("realtime:room", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "items"}))
	c.push(jr, "9", "realtime:room", "phx_leave", map[string]any{})
	if got, want := c.next().Raw, `["`+jr+`","9","realtime:room","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Errorf("leave reply: got %s, want %s", got, want)
	}
	if got, want := c.next().Raw, `["`+jr+`","`+jr+`","realtime:room","phx_close",{}]`; got != want {
		t.Errorf("leave close: got %s, want %s", got, want)
	}
	srv.Publish([]change{itemInsert(1, 1)})
	c.quiet(50 * time.Millisecond)
	eventually(t, "channel gauge back to 0", func() bool {
		return counterValue(t, srv.reg, "dollr_realtime_channels", nil) == 0
	})
}

func TestDuplicateJoinClosesOld(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	payload := joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "items"})
	old, _ := c.joinOK("realtime:room", payload)
	c.push("20", "20", "realtime:room", "phx_join", payload)
	if got, want := c.next().Raw, `["`+old+`","`+old+`","realtime:room","phx_close",{}]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if m := c.nextEvent("phx_reply"); *m.Ref != "20" || m.payload()["status"] != "ok" {
		t.Fatalf("second join: %s", m.Raw)
	}
	c.nextEvent("system")
	srv.Publish([]change{itemInsert(1, 1)})
	if m := c.nextEvent("postgres_changes"); m.JoinRef != nil {
		t.Fatalf("event: %s", m.Raw)
	}
	c.quiet(50 * time.Millisecond) // exactly one delivery: the old channel is gone
}

func TestUpgradeRefused(t *testing.T) {
	srv := startServer(t, Config{})
	now := time.Now()
	cases := []struct {
		name string
		key  string
		want string
	}{
		{name: "missing", key: "", want: "API key is missing"},
		{name: "expired", key: signToken(testSecret, map[string]any{"role": "anon", "exp": now.Add(-time.Minute).Unix()}), want: "Token has expired"},
		{name: "malformed", key: "not-a-jwt", want: "The token provided is not a valid JWT"},
		{name: "other secret", key: signToken([]byte("other"), map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix()}), want: "Failed to validate JWT signature"},
		{name: "alg none", key: signRaw(testSecret, `{"alg":"none","typ":"JWT"}`, map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix()}), want: "Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
		{name: "no role", key: signToken(testSecret, map[string]any{"exp": now.Add(time.Hour).Unix()}), want: "Fields `role` and `exp` are required in JWT"},
		{name: "no exp", key: signToken(testSecret, map[string]any{"role": "anon"}), want: "Fields `role` and `exp` are required in JWT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := upgradeStatus(t, srv, tc.key)
			var got map[string]string
			if code != 401 || json.Unmarshal([]byte(body), &got) != nil || got["error"] != tc.want {
				t.Errorf("got %d %s, want 401 {\"error\":%q}", code, body, tc.want)
			}
		})
	}
}

// upgradeStatus sends one WebSocket upgrade request with apikey (none if
// empty) and returns the status and, when refused, the body.
func upgradeStatus(t *testing.T, srv *testServer, apikey string) (int, string) {
	t.Helper()
	u := "http" + strings.TrimPrefix(srv.url, "ws") + "?vsn=2.0.0"
	if apikey != "" {
		u += "&apikey=" + apikey
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Past MaxConnections upgrades are refused as the real server refuses a
// tenant's users past its limit; a closed socket frees its place.
func TestMaxConnections(t *testing.T) {
	srv := startServer(t, Config{MaxConnections: 2})
	first := dial(t, srv, "2.0.0")
	second := dial(t, srv, "2.0.0")
	for _, c := range []*client{first, second} {
		c.push("", c.nextRef(), "phoenix", "heartbeat", map[string]any{})
		c.nextEvent("phx_reply")
	}
	code, body := upgradeStatus(t, srv, anonKey())
	if code != http.StatusTooManyRequests || strings.TrimSpace(body) != `{"error":"Too many connected users"}` {
		t.Fatalf("third socket: %d %s, want 429 {\"error\":\"Too many connected users\"}", code, body)
	}
	if n := counterValue(t, srv.reg, "dollr_realtime_connections_refused_total", nil); n != 1 {
		t.Errorf("refused counter = %v, want 1", n)
	}
	// The joined sockets are untouched.
	second.push("", second.nextRef(), "phoenix", "heartbeat", map[string]any{})
	second.nextEvent("phx_reply")

	first.conn.Close()
	// Each socket opened here is closed at once by upgradeStatus, freeing
	// its place again, so both attempts must succeed.
	for _, what := range []string{"a place frees once a socket closes", "a closed upgrade frees its place too"} {
		eventually(t, what, func() bool {
			code, _ := upgradeStatus(t, srv, anonKey())
			return code == http.StatusSwitchingProtocols
		})
	}
}

func TestJoinTokenErrors(t *testing.T) {
	srv := startServer(t, Config{})
	now := time.Now()
	cases := []struct {
		name   string
		token  string
		reason string
	}{
		{name: "expired", token: signToken(testSecret, map[string]any{"role": "anon", "exp": now.Add(-90 * time.Second).Unix()}), reason: "InvalidJWTToken: Token has expired 9"},
		{name: "malformed", token: "a.b", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "garbage segments", token: "!!.??.**", reason: "MalformedJWT: The token provided is not a valid JWT"},
		{name: "bad signature", token: anonKey()[:20] + "x" + anonKey()[21:], reason: ""},
		{name: "other installation", token: signToken([]byte("elsewhere"), map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix()}), reason: "JwtSignatureError: Failed to validate JWT signature"},
		{name: "alg none", token: strings.Join(strings.Split(signRaw(nil, `{"alg":"none"}`, map[string]any{"role": "anon", "exp": now.Add(time.Hour).Unix()}), ".")[:2], ".") + ".", reason: "JwtSignerError: Failed to generate JWT signer, check your JWT secret or JWKS configuration"},
		{name: "missing role", token: signToken(testSecret, map[string]any{"exp": now.Add(time.Hour).Unix()}), reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
		{name: "missing exp", token: signToken(testSecret, map[string]any{"role": "anon"}), reason: "InvalidJWTToken: Fields `role` and `exp` are required in JWT"},
	}
	c := dial(t, srv, "2.0.0")
	for i, tc := range cases {
		ref := c.nextRef()
		topic := "realtime:t" + string(rune('a'+i))
		c.push(ref, ref, topic, "phx_join", productJoin(tc.token, "x"))
		m := c.nextEvent("phx_reply")
		p := m.payload()
		reason, _ := p["response"].(map[string]any)["reason"].(string)
		if p["status"] != "error" || *m.Ref != ref || *m.JoinRef != ref || !strings.HasPrefix(reason, tc.reason) || reason == "" {
			t.Errorf("%s: got %s, want reason %q", tc.name, m.Raw, tc.reason)
		}
	}
	if got := counterValue(t, srv.reg, "dollr_realtime_joins_total", map[string]string{"outcome": "invalid_token"}); got != float64(len(cases)) {
		t.Errorf("invalid_token joins = %v, want %d", got, len(cases))
	}
}

func TestJoinErrorIsDelayed(t *testing.T) {
	srv := startServer(t, Config{JoinErrorDelay: 300 * time.Millisecond})
	c := dial(t, srv, "2.0.0")
	c.push("1", "1", "realtime:x", "phx_join", productJoin("a.b", "x"))
	c.push("", "2", "phoenix", "heartbeat", map[string]any{})
	// The socket keeps serving while the error reply waits.
	if m := c.next(); m.Topic != "phoenix" {
		t.Fatalf("heartbeat reply should come first, got %s", m.Raw)
	}
	if m := c.nextEvent("phx_reply"); m.payload()["status"] != "error" {
		t.Fatalf("got %s", m.Raw)
	}
}

func TestTopicNameRequired(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.push("1", "1", "realtime:", "phx_join", joinPayload(""))
	if got, want := c.next().Raw, `["1","1","realtime:","phx_reply",{"status":"error","response":{"reason":"TopicNameRequired: You must provide a topic name"}}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestTooManyChannels(t *testing.T) {
	srv := startServer(t, Config{MaxChannels: 2})
	c := dial(t, srv, "2.0.0")
	c.joinOK("realtime:a", joinPayload(""))
	c.joinOK("realtime:b", joinPayload(""))
	c.push("9", "9", "realtime:c", "phx_join", joinPayload(""))
	if r := c.nextEvent("phx_reply").payload()["response"].(map[string]any)["reason"]; r != "ChannelRateLimitReached: Too many channels" {
		t.Errorf("reason %v", r)
	}
}

func TestServerCloseSendsGoingAway(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	c.joinOK("realtime:a", joinPayload(""))
	go srv.Close(t.Context())
	c.waitClosed()
}

func TestRefusedJoinFloodDisconnects(t *testing.T) {
	srv := startServer(t, Config{JoinErrorDelay: time.Minute})
	c := dial(t, srv, "2.0.0")
	for i := 0; i <= maxPendingRefusals; i++ {
		c.push("1", "1", "realtime:x", "phx_join", productJoin("a.b", "x"))
	}
	m := c.nextEvent("phx_reply")
	if r := m.payload()["response"].(map[string]any)["reason"]; r != "ClientJoinRateLimitReached: Too many joins per second" {
		t.Errorf("reason %v", r)
	}
	c.waitClosed()
}

func TestFragmentedAndOversizedMessages(t *testing.T) {
	srv := startServer(t, Config{MaxMessageSize: 256})
	c := dial(t, srv, "2.0.0")
	msg := []byte(`[null,"3","phoenix","heartbeat",{}]`)
	c.wmu.Lock()
	first := ws.NewFrame(ws.OpText, false, msg[:10])
	rest := ws.NewFrame(ws.OpContinuation, true, msg[10:])
	for _, f := range []ws.Frame{first, rest} {
		if err := ws.WriteFrame(c.conn, ws.MaskFrame(f)); err != nil {
			t.Fatal(err)
		}
	}
	c.wmu.Unlock()
	if got := c.next().Raw; got != `[null,"3","phoenix","phx_reply",{"status":"ok","response":{}}]` {
		t.Errorf("fragmented heartbeat: %s", got)
	}
	c.writeRejected(ws.OpText, []byte(`[null,"4","phoenix","heartbeat",{"pad":"`+strings.Repeat("x", 300)+`"}]`))
	c.waitClosed()
}

// A message that trips a bug (here a policy that panics) closes its own
// socket; the server goes on serving others.
func TestPanicInHandlerClosesOnlyItsSocket(t *testing.T) {
	srv := startServer(t, Config{Policy: PolicyFunc(func(_ map[string]any, topic string) (Grant, error) {
		if topic == "boom" {
			panic("policy bug")
		}
		return Grant{Allow: true}, nil
	})})
	bad := dial(t, srv, "2.0.0")
	bad.push("1", "1", "realtime:boom", "phx_join", joinPayload(""))
	bad.waitClosed()
	good := dial(t, srv, "2.0.0")
	good.joinOK("realtime:room", joinPayload(""))
}
