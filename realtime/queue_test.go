package realtime

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// stuckConn is a transport whose writes block until it is closed.
type stuckConn struct {
	once   sync.Once
	closed chan struct{}
}

func (s *stuckConn) Write([]byte) (int, error) { <-s.closed; return 0, net.ErrClosed }
func (s *stuckConn) Close() error              { s.once.Do(func() { close(s.closed) }); return nil }
func (s *stuckConn) RemoteAddr() net.Addr      { return &net.TCPAddr{} }

// A connection never holds more than SendQueueBytes of frames: the frame that
// would pass the budget disconnects the client instead of being queued.
func TestSendQueueBytesBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Config{Secret: testSecret, SendQueue: 1 << 20, SendQueueBytes: 1000, Registerer: reg})
	c := newConn(s, &stuckConn{closed: make(chan struct{})}, vsn2, nil)
	frame := make([]byte, 100)
	for i := 1; i <= 10; i++ {
		c.send(outMsg{op: ws.OpText, data: frame})
		c.mu.Lock()
		queued, closed := c.queued, c.closed
		c.mu.Unlock()
		if closed || queued != 100*i {
			t.Fatalf("after %d frames: queued %d bytes, closed %v", i, queued, closed)
		}
	}
	c.send(outMsg{op: ws.OpText, data: frame}) // 1,100 bytes: over the budget
	c.mu.Lock()
	queued, closed := c.queued, c.closed
	c.mu.Unlock()
	if !closed || queued > 1000 {
		t.Fatalf("over the budget: queued %d bytes, closed %v", queued, closed)
	}
	if n := counterValue(t, reg, "dollr_realtime_slow_client_disconnects_total", nil); n != 1 {
		t.Errorf("%v slow-client disconnects, want 1", n)
	}
	eventually(t, "the writer gone", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return !c.writing })

	// One frame larger than the whole budget still goes out when nothing
	// else waits, and what is written leaves the count.
	c = newConn(s, newDiscardConn(), vsn2, nil)
	c.send(outMsg{op: ws.OpText, data: make([]byte, 5000)})
	eventually(t, "the big frame written", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.writing && c.queued == 0 && !c.closed
	})
	c.kill()
}

// A client that broadcasts big payloads to itself (broadcast.self) and never
// reads is disconnected once its queue holds SendQueueBytes, long before its
// SendQueue frames would fill (which, at 200 KB a frame, was about 200 MB).
func TestNonReadingBroadcasterDisconnected(t *testing.T) {
	const budget = 1 << 20
	srv := startServer(t, Config{SendQueueBytes: budget, WriteTimeout: time.Hour, IdleTimeout: time.Hour})
	c := dialRaw(t, srv, 4096)
	c.join("realtime:flood")
	sc := onlyChannelConn(t, srv)
	frame, _ := json.Marshal([]any{"1", nil, "realtime:flood", "broadcast",
		map[string]any{"type": "broadcast", "event": "e", "payload": map[string]any{"d": strings.Repeat("x", 200<<10)}}})
	slow := func() float64 { return counterValue(t, srv.reg, "dollr_realtime_slow_client_disconnects_total", nil) }
	most := 0
	for sent := 0; sent < 64<<20 && slow() == 0; sent += len(frame) {
		if c.tryWriteFrame(ws.OpText, true, frame) != nil {
			break // the server has hung up
		}
		sc.mu.Lock()
		most = max(most, sc.queued)
		sc.mu.Unlock()
	}
	eventually(t, "the slow client disconnected", func() bool {
		return slow() == 1 && counterValue(t, srv.reg, "dollr_realtime_connections", nil) == 0
	})
	if most > budget {
		t.Errorf("the server queued %d bytes, over its budget of %d", most, budget)
	}
}

// A broadcast payload over MaxBroadcastPayload is dropped; with ack the
// sender hears "payload_size_exceeded" (realtime-protocol.md §12.1).
func TestBroadcastPayloadLimit(t *testing.T) {
	srv := startServer(t, Config{MaxBroadcastPayload: 1000})
	sender := dial(t, srv, "2.0.0")
	other := dial(t, srv, "2.0.0")
	jr, _ := sender.joinOK("realtime:room1", roomJoin(false, true, false, ""))
	other.joinOK("realtime:room1", roomJoin(false, false, false, ""))
	big := strings.Repeat("x", 1000)

	sender.push(jr, "20", "realtime:room1", "broadcast", map[string]any{"type": "broadcast", "event": "e", "payload": map[string]any{"d": big}})
	if got, want := sender.next().Raw, `["`+jr+`","20","realtime:room1","phx_reply",{"status":"error","response":"payload_size_exceeded"}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	bin := []byte{3, byte(len(jr)), 2, 14, 1, 0, 1}
	bin = append(bin, jr+"21realtime:room1e"+`{"d":"`+big+`"}`...)
	sender.writeRaw(ws.OpBinary, bin)
	if got, want := sender.next().Raw, `["`+jr+`","21","realtime:room1","phx_reply",{"status":"error","response":"payload_size_exceeded"}]`; got != want {
		t.Errorf("binary: got %s, want %s", got, want)
	}
	req, _ := http.NewRequest("POST", srv.base+"/realtime/v1/api/broadcast",
		strings.NewReader(`{"messages":[{"topic":"room1","event":"e","payload":{"d":"`+big+`"}}]}`))
	req.Header.Set("apikey", anonKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Errorf("REST: %d", resp.StatusCode)
	}

	sender.push(jr, "22", "realtime:room1", "broadcast", map[string]any{"type": "broadcast", "event": "e", "payload": map[string]any{"d": "small"}})
	if m := sender.next(); m.Ref == nil || *m.Ref != "22" || m.payload()["status"] != "ok" {
		t.Errorf("small: %s", m.Raw)
	}
	// The first broadcast the other channel sees is the small one.
	if m := other.nextEvent("broadcast"); !bytes.Contains(m.Payload, []byte(`"small"`)) {
		t.Errorf("relayed %s", m.Raw)
	}
}
