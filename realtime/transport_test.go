package realtime

import (
	"bytes"
	"os"
	"runtime"
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

// On Linux the poller reads the sockets: no goroutine per socket, and every
// descriptor is closed once its client has gone.
func TestPollerReadsSockets(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll poller is Linux only")
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	srv := startServer(t, Config{})
	warm := dial(t, srv, "2.0.0") // starts the poller (its epoll set and pipe)
	warm.push("", "0", "phoenix", "heartbeat", map[string]any{})
	warm.next()
	before, goroutines := fds(), runtime.NumGoroutine()
	const n = 40
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = dial(t, srv, "2.0.0")
		clients[i].push("", "1", "phoenix", "heartbeat", map[string]any{})
		clients[i].next()
	}
	srv.connMu.Lock()
	p := srv.poller
	srv.connMu.Unlock()
	p.mu.Lock()
	polled := 0
	for _, ps := range p.socks {
		if ps != nil {
			polled++
		}
	}
	p.mu.Unlock()
	if polled != n+1 {
		t.Errorf("%d sockets on the poller, want %d", polled, n+1)
	}
	// Each client has one reading goroutine of its own; the server adds none.
	if added := runtime.NumGoroutine() - goroutines; added > n+n/4 {
		t.Errorf("%d goroutines more for %d sockets", added, n)
	}
	for _, c := range clients {
		c.conn.Close()
		c.waitClosed()
	}
	eventually(t, "the server's sockets closed", func() bool {
		return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 1 && fds() <= before
	})
}

// parseHeader reads what ws.ReadHeader reads, from a buffer that may end
// anywhere.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range [][]byte{{0x81, 0x85, 1, 2, 3, 4}, {0x81, 0xfe, 0, 200, 1, 2, 3, 4}, {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 9, 9, 9}, {0x88, 0x02}, {0x81}, {0xff, 0xff, 0x80}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, ok := parseHeader(b)
		want, err := ws.ReadHeader(bytes.NewReader(b))
		switch {
		case !ok:
			if err == nil {
				t.Fatalf("refused %x, which ws reads as %+v", b, want)
			}
		case n == 0:
			if err == nil {
				// ws read a whole header, so b must hold it.
				t.Fatalf("%x: incomplete, but ws read %+v", b, want)
			}
		default:
			if err != nil {
				t.Fatalf("%x: read %+v, ws: %v", b, h, err)
			}
			if h != want {
				t.Fatalf("%x: %+v, ws %+v", b, h, want)
			}
		}
	})
}
