package realtime

import (
	"testing"
	"time"
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
	srv := startServer(t, Config{SendQueue: 1 << 20, SendQueueBytes: 1 << 30, WriteTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour})
	joinWithoutReading(t, srv)
	floodItems(srv, 64<<10, func() bool { return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0 })
	eventually(t, "stuck writer disconnected", func() bool { return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0 })
	if n := counterValue(t, srv.reg, "dollr_realtime_slow_client_disconnects_total", nil); n != 0 {
		t.Fatalf("%v slow-client disconnects: the queue overflowed instead of the write timing out", n)
	}
}
