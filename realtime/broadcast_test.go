package realtime

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

func roomJoin(self, ack, presence bool, key string) map[string]any {
	return map[string]any{"config": map[string]any{
		"broadcast":        map[string]any{"ack": ack, "self": self},
		"presence":         map[string]any{"key": key, "enabled": presence},
		"postgres_changes": []any{}, "private": false,
	}}
}

func TestBroadcast(t *testing.T) {
	srv := startServer(t, Config{})
	sender := dial(t, srv, "2.0.0")
	other := dial(t, srv, "2.0.0")
	v1 := dial(t, srv, "1.0.0")
	jr, _ := sender.joinOK("realtime:room1", roomJoin(false, false, false, ""))
	other.joinOK("realtime:room1", roomJoin(false, false, false, ""))
	v1.joinOK("realtime:room1", roomJoin(false, false, false, ""))

	sender.push(jr, "20", "realtime:room1", "broadcast", map[string]any{"type": "broadcast", "event": "cursor", "payload": map[string]any{"x": 1}})
	want := `[null,null,"realtime:room1","broadcast",{"event":"cursor","payload":{"x":1},"type":"broadcast"}]`
	if got := other.next().Raw; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if m := v1.nextEvent("broadcast"); string(m.Payload) != `{"event":"cursor","payload":{"x":1},"type":"broadcast"}` {
		t.Errorf("v1 got %s", m.Raw)
	}
	// A binary kind-3 push laid out as the captured one (§2.1), with this join's ref.
	bin := []byte{3, byte(len(jr)), 2, 14, 6, 0, 1}
	bin = append(bin, jr+"10realtime:room1cursor"+`{"x":1}`...)
	sender.writeRaw(ws.OpBinary, bin)
	if got := other.next().Raw; got != `[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":1}}]` {
		t.Errorf("binary push relayed as %s", got)
	}
	v1.nextEvent("broadcast")
	sender.quiet(30 * time.Millisecond) // self is false
}

func TestBroadcastSelfAndAck(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	jr, _ := c.joinOK("realtime:room1", roomJoin(true, true, false, ""))
	c.push(jr, "30", "realtime:room1", "broadcast", map[string]any{"type": "broadcast", "event": "e", "payload": map[string]any{}})
	if got, want := c.next().Raw, `["`+jr+`","30","realtime:room1","phx_reply",{"status":"ok","response":{}}]`; got != want {
		t.Errorf("ack: got %s, want %s", got, want)
	}
	c.nextEvent("broadcast")
}

func TestPresence(t *testing.T) {
	srv := startServer(t, Config{})
	a := dial(t, srv, "2.0.0")
	jr, _ := a.joinOK("realtime:room1", roomJoin(false, false, true, "k1"))
	if m := a.nextEvent("presence_state"); string(m.Payload) != `{}` || *m.JoinRef != jr {
		t.Errorf("initial state %s", m.Raw)
	}
	a.push(jr, "40", "realtime:room1", "presence", map[string]any{"type": "presence", "event": "track", "payload": map[string]any{"online_at": "now"}})
	if m := a.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
		t.Errorf("track reply %s", m.Raw)
	}
	diff := a.nextEvent("presence_diff").payload()
	meta := diff["joins"].(map[string]any)["k1"].(map[string]any)["metas"].([]any)[0].(map[string]any)
	if meta["online_at"] != "now" || meta["phx_ref"] == "" {
		t.Errorf("diff %v", diff)
	}
	b := dial(t, srv, "2.0.0")
	b.joinOK("realtime:room1", roomJoin(false, false, true, "k2"))
	state := b.nextEvent("presence_state").payload()
	if _, ok := state["k1"]; !ok {
		t.Errorf("state %v", state)
	}
	a.push(jr, "41", "realtime:room1", "phx_leave", map[string]any{})
	left := b.nextEvent("presence_diff").payload()
	if _, ok := left["leaves"].(map[string]any)["k1"]; !ok {
		t.Errorf("leave diff %v", left)
	}
}

func TestRESTBroadcast(t *testing.T) {
	srv := startServer(t, Config{Policy: PolicyFunc(func(_ map[string]any, topic string) (Grant, error) {
		return Grant{Allow: topic != "secret"}, nil
	})})
	c := dial(t, srv, "2.0.0")
	c.joinOK("realtime:room1", roomJoin(false, false, false, ""))
	post := func(path, body string, key string) int {
		req, _ := http.NewRequest("POST", srv.base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("apikey", key)
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// httpSend's request line carries the socket's query string (§12.2).
	if code := post("/realtime/v1/api/broadcast/room1/events/cursor?apikey=x&vsn=2.0.0", `{"x":2}`, anonKey()); code != 202 {
		t.Fatalf("single: %d", code)
	}
	if got := c.next().Raw; got != `[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"cursor","payload":{"x":2}}]` {
		t.Errorf("got %s", got)
	}
	if code := post("/realtime/v1/api/broadcast", `{"messages":[{"topic":"room1","event":"e","payload":{"y":1},"private":false}]}`, anonKey()); code != 202 {
		t.Fatalf("batch: %d", code)
	}
	c.nextEvent("broadcast")
	for _, tc := range []struct {
		path, body, key string
		want            int
	}{
		{"/realtime/v1/api/broadcast/room1/events/e", `{}`, "", 401},
		{"/realtime/v1/api/broadcast/room1/events/e", `{}`, "bad", 401},
		{"/realtime/v1/api/broadcast/secret/events/e", `{}`, anonKey(), 401},
		{"/realtime/v1/api/broadcast", `{"messages":`, anonKey(), 400},
	} {
		if code := post(tc.path, tc.body, tc.key); code != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.path, tc.body, code, tc.want)
		}
	}
	c.quiet(30 * time.Millisecond)
}
