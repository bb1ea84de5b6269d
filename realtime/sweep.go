package realtime

import (
	"math"
	"time"

	"github.com/gobwas/ws"
)

// Every socket has three clocks: the client must send something within
// IdleTimeout, a write must finish within WriteTimeout, and each channel ends
// at its token's exp. One sweeper goroutine per server checks them all,
// instead of a runtime timer (read deadline, write deadline, AfterFunc) per
// socket. Go's scheduler scans a processor's whole timer heap whenever a
// timer in it moves earlier, which a busy process does many times a second:
// with thousands of sockets that scan cost more server CPU than the sockets'
// own messages (docs/benchmarks.md). A clock now costs an atomic store.

// sweepInterval is how often the sweeper looks: a fraction of the shortest
// timeout, at most a second, which is also how late a channel may expire.
func (s *Server) sweepInterval() time.Duration {
	d := min(s.cfg.IdleTimeout, s.cfg.WriteTimeout) / 4
	return min(max(d, 5*time.Millisecond), time.Second)
}

// mono is the server's monotonic clock in nanoseconds, for the socket clocks.
func (s *Server) mono() int64 { return int64(time.Since(s.epoch)) }

// startSweeper runs the sweeper while there are sockets (s.connMu held).
func (s *Server) startSweeper() {
	if s.sweeping {
		return
	}
	s.sweeping = true
	go s.sweepLoop()
}

func (s *Server) sweepLoop() {
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	var conns []*conn
	for range t.C {
		s.connMu.Lock()
		if len(s.conns) == 0 {
			s.sweeping = false
			s.connMu.Unlock()
			return
		}
		conns = conns[:0]
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.connMu.Unlock()
		s.sweep(conns)
		clear(conns)
	}
}

// sweep closes idle sockets and stuck writers and expires channels whose
// token has expired. A socket costs three atomic loads unless one of its
// clocks has run out: 5,000 sockets took ~2 ms a second with a lock per
// socket and channel (a tenth of a watched payment's server CPU).
func (s *Server) sweep(conns []*conn) {
	now, wall := s.mono(), s.now()
	wallNs := wall.UnixNano()
	idle, stuck := int64(s.cfg.IdleTimeout), int64(s.cfg.WriteTimeout)
	var expired []*channel
	for _, c := range conns {
		if now-c.lastRead.Load() > idle {
			// Close 1000, as the real server's idle timeout sends, through
			// the writer like any close (a second one is not queued); a
			// client that does not read it is cut by the write timeout below.
			s.log.Debug("realtime: closing idle socket", "remote", c.nc.RemoteAddr().String())
			c.goAway(ws.StatusNormalClosure, "")
		}
		if started := c.writeStart.Load(); started != 0 && now-started > stuck {
			// No close frame: the socket buffer is full (that is why the write
			// is stuck) and the writer is inside a frame (see overflow).
			s.log.Debug("realtime: write timed out", "remote", c.nc.RemoteAddr().String())
			c.kill()
			continue
		}
		if wallNs < c.expiresAfter.Load() {
			continue
		}
		c.chanMu.Lock()
		next := int64(math.MaxInt64)
		for _, ch := range c.channels {
			ch.mu.Lock()
			switch {
			case ch.closed:
			case !wall.Before(ch.exp):
				expired = append(expired, ch)
			default:
				next = min(next, ch.exp.UnixNano())
			}
			ch.mu.Unlock()
		}
		c.expiresAfter.Store(next)
		c.chanMu.Unlock()
	}
	for _, ch := range expired {
		ch.expire()
	}
}
