package realtime

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// Where the epoll poller reads the sockets (Linux), these run once more with
// a goroutine per socket, the transport everywhere else.
func TestWithoutPoller(t *testing.T) {
	for name, test := range map[string]func(*testing.T){
		"HeartbeatReply":              TestHeartbeatReply,
		"HeartbeatFastPathReplies":    TestHeartbeatFastPathReplies,
		"ProductJoinReply":            TestProductJoinReply,
		"PostgresChangesFrames":       TestPostgresChangesFrames,
		"LeaveAndUnmatched":           TestLeaveAndUnmatched,
		"FragmentedAndOversized":      TestFragmentedAndOversizedMessages,
		"FramesSplitAcrossReads":      TestFramesSplitAcrossReads,
		"ServerCloseSendsGoingAway":   TestServerCloseSendsGoingAway,
		"PanicInHandlerClosesOnlyIts": TestPanicInHandlerClosesOnlyItsSocket,
		"IdleSocketClosed":            TestIdleSocketClosed,
		"StuckWriterClosed":           TestStuckWriterClosed,
		"SlowClientDisconnected":      TestSlowClientDisconnected,
		"NonReadingBroadcaster":       TestNonReadingBroadcasterDisconnected,
		"ClosingClientNotReading":     TestClosingClientThatDoesNotReadIsReleased,
		"CloseHandshake":              TestCloseHandshake,
		"IdleSocketGetsCloseFrame":    TestIdleSocketGetsCloseFrame,
		"TokenExpiringDuringJoin":     TestTokenExpiringDuringJoin,
		"MaxConnections":              TestMaxConnections,
	} {
		t.Run(name, test)
	}
}

// maskedFrame is a client frame's bytes.
func maskedFrame(t *testing.T, op ws.OpCode, fin bool, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, ws.MaskFrame(ws.NewFrame(op, fin, payload))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A frame may arrive in pieces. Each write below carries a complete message
// and the first bytes of the next; the reply to the complete one shows the
// server has read that write, so the piece waited in the server's buffer.
func TestFramesSplitAcrossReads(t *testing.T) {
	srv := startServer(t, Config{})
	c := dial(t, srv, "2.0.0")
	heartbeat := func(ref string) []byte {
		return maskedFrame(t, ws.OpText, true, []byte(`[null,"`+ref+`","phoenix","heartbeat",{}]`))
	}
	write := func(b []byte) {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if _, err := c.conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	reply := func(ref string) {
		t.Helper()
		if got, want := c.next().Raw, `[null,"`+ref+`","phoenix","phx_reply",{"status":"ok","response":{}}]`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	long := maskedFrame(t, ws.OpText, true, []byte(`[null,"L","phoenix","heartbeat",{}]`+string(bytes.Repeat([]byte(" "), 200))))
	next := heartbeat("n")
	for _, tc := range []struct {
		name  string
		frame []byte
		cut   int
	}{
		{"one byte of the header", next, 1},
		{"the header without its mask", next, 4},
		{"the header and part of the payload", next, 10},
		{"part of a 16-bit length", long, 3},
		{"part of a longer payload", long, 100},
	} {
		write(append(heartbeat("a"), tc.frame[:tc.cut]...))
		reply("a")
		write(tc.frame[tc.cut:])
		if tc.frame[0] == long[0] && len(tc.frame) == len(long) {
			// The padded heartbeat takes the full decoder, which answers it alike.
			reply("L")
		} else {
			reply("n")
		}
	}
	// A join (handled off the reading goroutine) with part of a heartbeat behind it.
	ref := c.nextRef()
	join := c.frameBytes(ref, ref, "realtime:x", "phx_join", map[string]any{"config": map[string]any{}})
	write(append(maskedFrame(t, ws.OpText, true, join), next[:5]...))
	if m := c.nextEvent("phx_reply"); m.payload()["status"] != "ok" {
		t.Fatalf("join: %s", m.Raw)
	}
	write(next[5:])
	reply("n")
}
