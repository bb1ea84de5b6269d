package realtime

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func TestIdleSocketClosed(t *testing.T) {
	srv := startServer(t, Config{IdleTimeout: 300 * time.Millisecond})
	silent := dial(t, srv, "2.0.0")
	talker := dial(t, srv, "2.0.0")
	// The talker heartbeats well within the timeout; the silent one says nothing.
	deadline := time.Now().Add(10 * time.Second)
	for closed := false; !closed; {
		if time.Now().After(deadline) {
			t.Fatal("the silent socket was not closed within 10s")
		}
		talker.push("", talker.nextRef(), "phoenix", "heartbeat", map[string]any{})
		if m := talker.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
			t.Fatalf("heartbeat reply: %s", m.Raw)
		}
		select {
		case _, ok := <-silent.in:
			closed = !ok
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Long after the silent socket's timeout, the talker is still served.
	talker.push("", talker.nextRef(), "phoenix", "heartbeat", map[string]any{})
	talker.nextEvent("phx_reply")
	eventually(t, "one connection left", func() bool { return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 1 })
}

func TestStuckWriterClosed(t *testing.T) {
	// A queue too deep to overflow: only the write timeout can end this client.
	srv := startServer(t, Config{SendQueue: 1 << 20, WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dialer{}.Dial(ctx, srv.url+"?vsn=2.0.0&apikey="+anonKey())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	join, _ := json.Marshal([]any{"1", "1", "realtime:room", "phx_join", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "items"})})
	if err := wsutil.WriteClientText(conn, join); err != nil {
		t.Fatal(err)
	}
	eventually(t, "channel joined", func() bool { return counterValue(t, srv.reg, "dollr_realtime_channels", nil) == 1 })
	big := strings.Repeat("x", 64<<10)
	// The client never reads: the socket's buffers fill and a write blocks.
	for i := 0; i < 400 && counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 1; i++ {
		ch := itemInsert(int64(i), uint64(i+1))
		ch.Record["name"] = big
		srv.Publish([]change{ch})
	}
	eventually(t, "stuck writer disconnected", func() bool { return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0 })
	if n := counterValue(t, srv.reg, "dollr_realtime_slow_client_disconnects_total", nil); n != 0 {
		t.Fatalf("%v slow-client disconnects: the queue overflowed instead of the write timing out", n)
	}
}
