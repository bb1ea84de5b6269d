package realtime

import (
	"bytes"
	"os"
	"runtime"
	"testing"

	"github.com/gobwas/ws"
)

// On Linux the poller reads the sockets: no goroutine per socket, and every
// descriptor is closed once its client has gone.
func TestPollerReadsSockets(t *testing.T) {
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
