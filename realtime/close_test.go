package realtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// rawClient is a client socket that a test writes and reads frame by frame,
// or does not read at all.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	r  io.Reader
}

// dialRaw opens a vsn 2.0.0 socket; rcvBuf > 0 shrinks its receive buffer,
// so that the server's writes to a client that does not read soon block.
func dialRaw(t *testing.T, srv *testServer, rcvBuf int) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, br, _, err := ws.Dialer{}.Dial(ctx, srv.url+"?vsn=2.0.0&apikey="+anonKey())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	if tc, ok := nc.(*net.TCPConn); ok && rcvBuf > 0 {
		tc.SetReadBuffer(rcvBuf)
	}
	var r io.Reader = nc
	if br != nil {
		r = br
	}
	return &rawClient{t: t, nc: nc, r: r}
}

// writeFrame writes one masked frame, failing the test on error.
func (c *rawClient) writeFrame(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	if err := c.tryWriteFrame(op, fin, payload); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawClient) tryWriteFrame(op ws.OpCode, fin bool, payload []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewFrame(op, fin, payload)))
}

// join joins topic with broadcast.self, without reading the reply.
func (c *rawClient) join(topic string, bindings ...map[string]any) {
	c.t.Helper()
	p := joinPayload("", bindings...)
	p["config"].(map[string]any)["broadcast"] = map[string]any{"ack": false, "self": true}
	frame, _ := json.Marshal([]any{"1", "1", topic, "phx_join", p})
	c.writeFrame(ws.OpText, true, frame)
}

// readUntilClose reads frames until the server's Close frame and returns its
// body, then checks that the server ends the connection; it fails the test
// if the connection ends without one.
func (c *rawClient) readUntilClose() []byte {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		if _, err := ws.ReadFrame(c.r); err == nil {
			c.t.Errorf("a frame after the close frame")
		}
		return f.Payload
	}
}

func closeBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// RFC 6455: a Close is answered with its status code (§5.5.1), a malformed
// one with 1002, and a text message that is not UTF-8 with 1007 (§8.1).
func TestCloseHandshake(t *testing.T) {
	srv := startServer(t, Config{})
	heartbeat := []byte(`[null,"€","phoenix","heartbeat",{}]`)
	split := bytes.Index(heartbeat, []byte("€")) + 1 // inside the euro sign
	for _, tc := range []struct {
		name   string
		frames []ws.Frame
		want   []byte
	}{
		{"echoes 4000", []ws.Frame{ws.NewCloseFrame(closeBody(4000, "bye"))}, closeBody(4000, "")},
		{"echoes 1001", []ws.Frame{ws.NewCloseFrame(closeBody(1001, ""))}, closeBody(1001, "")},
		{"no status code", []ws.Frame{ws.NewCloseFrame(nil)}, []byte{}},
		{"one byte", []ws.Frame{ws.NewCloseFrame([]byte{3})}, closeBody(1002, "")},
		{"code 1005", []ws.Frame{ws.NewCloseFrame(closeBody(1005, ""))}, closeBody(1002, "")},
		{"code 999", []ws.Frame{ws.NewCloseFrame(closeBody(999, ""))}, closeBody(1002, "")},
		{"code 2000", []ws.Frame{ws.NewCloseFrame(closeBody(2000, ""))}, closeBody(1002, "")},
		{"code 5000", []ws.Frame{ws.NewCloseFrame(closeBody(5000, ""))}, closeBody(1002, "")},
		{"reason not UTF-8", []ws.Frame{ws.NewCloseFrame(closeBody(1000, "\xff"))}, closeBody(1002, "")},
		{"text not UTF-8", []ws.Frame{ws.NewTextFrame([]byte("[null,\"\xff\",\"phoenix\",\"heartbeat\",{}]"))}, closeBody(1007, "")},
		{"fragmented text not UTF-8", []ws.Frame{
			ws.NewFrame(ws.OpText, false, []byte(`[null,"\xe2`)),
			ws.NewFrame(ws.OpContinuation, true, []byte("\x28\xa1\",\"phoenix\",\"heartbeat\",{}]")),
		}, closeBody(1007, "")},
		// A character split across fragments is fine: the heartbeat is
		// answered, and only then does the Close end the connection.
		{"character split across fragments", []ws.Frame{
			ws.NewFrame(ws.OpText, false, heartbeat[:split]),
			ws.NewFrame(ws.OpContinuation, true, heartbeat[split:]),
			ws.NewCloseFrame(closeBody(1000, "")),
		}, closeBody(1000, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv, 0)
			for _, f := range tc.frames {
				c.writeFrame(f.Header.OpCode, f.Header.Fin, f.Payload)
			}
			if got := c.readUntilClose(); !bytes.Equal(got, tc.want) {
				t.Errorf("close body %x, want %x", got, tc.want)
			}
		})
	}
}

// An idle socket is closed with a close frame (1000, as the real server's
// idle timeout sends), not just a TCP shutdown.
func TestIdleSocketGetsCloseFrame(t *testing.T) {
	srv := startServer(t, Config{IdleTimeout: 200 * time.Millisecond})
	c := dialRaw(t, srv, 0)
	if got := c.readUntilClose(); !bytes.Equal(got, closeBody(1000, "")) {
		t.Errorf("close body %x, want 1000", got)
	}
	eventually(t, "connection gone", func() bool { return counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0 })
}

// socketInodes returns the sockets this process holds descriptors of.
func socketInodes(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	socks := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			socks[l] = true
		}
	}
	return socks
}

// socketInode returns the socket nc's descriptor refers to.
func socketInode(t *testing.T, nc net.Conn) string {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var l string
	rc.Control(func(fd uintptr) { l, err = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// onlyChannelConn returns the server side of the one socket with a channel.
func onlyChannelConn(t *testing.T, srv *testServer) *conn {
	t.Helper()
	var found *conn
	eventually(t, "a socket with a channel", func() bool {
		srv.connMu.Lock()
		defer srv.connMu.Unlock()
		for c := range srv.conns {
			c.chanMu.Lock()
			n := len(c.channels)
			c.chanMu.Unlock()
			if n > 0 {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// A client that sends Close while the server's writer is blocked on its full
// socket, then keeps TCP open and never reads: the writer must still end
// within WriteTimeout, releasing the socket's descriptor (the reader is done,
// but the connection stays under the sweeper until its writer is).
func TestClosingClientThatDoesNotReadIsReleased(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/fd")
	}
	// Queues too deep to overflow: only the write timeout can end this client.
	srv := startServer(t, Config{SendQueue: 1 << 20, SendQueueBytes: 1 << 30, WriteTimeout: time.Second, IdleTimeout: time.Hour})
	before := socketInodes(t)
	c := dialRaw(t, srv, 4096)
	// The server's end of the connection: the one other new socket.
	mine, server := socketInode(t, c.nc), ""
	for s := range socketInodes(t) {
		if !before[s] && s != mine {
			if server != "" {
				t.Fatalf("new sockets %s and %s besides the client's", server, s)
			}
			server = s
		}
	}
	if server == "" {
		t.Fatal("no server socket")
	}

	c.join("realtime:room", map[string]any{"event": "*", "schema": "public", "table": "items"})
	sc := onlyChannelConn(t, srv)
	blocked := func() bool {
		started := sc.writeStart.Load()
		return started != 0 && srv.mono()-started > int64(20*time.Millisecond)
	}
	floodItems(srv, 64<<10, blocked)
	eventually(t, "the server's writer blocked", blocked)
	c.writeFrame(ws.OpClose, true, closeBody(1000, ""))
	eventually(t, "the server's descriptor released", func() bool {
		return !socketInodes(t)[server] && counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0
	})
	if !socketInodes(t)[mine] {
		t.Fatal("the client's socket closed: the test proves nothing")
	}
}
