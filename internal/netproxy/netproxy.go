// Package netproxy is a TCP proxy for tests that puts a network the test
// controls between a client and a real server (NATS, PostgreSQL), to cut it
// or partition it.
package netproxy

import (
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a server through a network the test
// controls. Cut is a network that resets: every connection is closed and new
// ones are refused, so clients notice at once. Partition is one that goes
// silent: connections stay open but nothing crosses in either direction (a
// close included) until Heal, as when a link or a firewall drops packets, so
// clients notice only through their own timeouts.
type Proxy struct {
	ln     net.Listener
	target string

	mu          sync.Mutex
	cut         bool
	partitioned bool
	healed      chan struct{} // closed when a partition ends
	conns       []net.Conn
}

// Start listens on a random loopback port and forwards to target, a
// host:port. It is stopped (every connection closed) when t ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, healed: make(chan struct{})}
	close(p.healed)
	t.Cleanup(func() {
		ln.Close()
		p.Heal()
		p.SetCut(true)
	})
	go p.accept()
	return p
}

// Addr is the proxy's host:port, for clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetCut cuts the network (true) or restores it (false).
func (p *Proxy) SetCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// Partition stops every byte, both ways, without closing anything.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.partitioned {
		p.partitioned = true
		p.healed = make(chan struct{})
	}
}

// Heal ends a partition: what was held back is delivered, in order.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.partitioned {
		p.partitioned = false
		close(p.healed)
	}
}

// gate returns once the network is not partitioned.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.healed
	p.mu.Unlock()
	<-ch
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.connect(c)
	}
}

// connect dials the server for client c once the network lets it through.
func (p *Proxy) connect(c net.Conn) {
	// A connection opened during a partition hangs, as a lost SYN does. The
	// dial is not under mu: a slow target must not hold up Partition or SetCut.
	p.gate()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go p.pipe(up, c)
	go p.pipe(c, up)
}

// pipe copies src to dst, holding each chunk (and the final close) while the
// network is partitioned.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	p.gate()
	dst.Close()
}
