package realtime

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// discardConn is a net.Conn whose writes succeed at once, so benchmarks measure
// the server's own work (matching, encoding, queueing, framing).
type discardConn struct {
	once   sync.Once
	closed chan struct{}
}

func newDiscardConn() *discardConn { return &discardConn{closed: make(chan struct{})} }

func (d *discardConn) Read([]byte) (int, error)         { <-d.closed; return 0, net.ErrClosed }
func (d *discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (d *discardConn) Close() error                     { d.once.Do(func() { close(d.closed) }); return nil }
func (d *discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (d *discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (d *discardConn) SetDeadline(time.Time) error      { return nil }
func (d *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (d *discardConn) SetWriteDeadline(time.Time) error { return nil }

func benchRef(i int) string { return fmt.Sprintf("6f1c2d1e-0000-4000-8000-%012d", i) }

// benchServer subscribes one channel per (reference, copy) through the real
// join path, each on its own connection, as the product snippet does.
func benchServer(b *testing.B, refs, perRef int) *Server {
	b.Helper()
	s := New(Config{Secret: testSecret, Tables: []Table{statusTable}, Policy: paymentPolicy, SendQueue: 1 << 16})
	for r := 0; r < refs; r++ {
		key := realtimeKey(7, benchRef(r), time.Hour)
		topic := "realtime:payment-intent:7:" + benchRef(r)
		for k := 0; k < perRef; k++ {
			tok, _ := VerifyToken(testSecret, anonKey(), time.Now())
			c := newConn(s, newDiscardConn(), vsn2, tok)
			addBenchConn(s, c)
			f, err := decodeFrame(vsn2, encodeFrame(vsn2, []byte(`"1"`), []byte(`"1"`), topic, "phx_join", mustJSON(productJoin(key, benchRef(r)))))
			if err != nil {
				b.Fatal(err)
			}
			c.join(f)
		}
	}
	b.Cleanup(func() {
		s.connMu.Lock()
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.connMu.Unlock()
		for _, c := range conns {
			c.kill()
			c.teardown()
		}
	})
	return s
}

// addBenchConn registers c as ServeHTTP does. A connection leaves the map
// when its writer is done, on the writer's goroutine, hence the lock.
func addBenchConn(s *Server, c *conn) {
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.connMu.Unlock()
}

func BenchmarkDispatch(b *testing.B) {
	for _, tc := range []struct{ refs, perRef int }{{5000, 1}, {100, 100}} {
		b.Run(fmt.Sprintf("%dsubs-%dper-row", tc.refs*tc.perRef, tc.perRef), func(b *testing.B) {
			s := benchServer(b, tc.refs, tc.perRef)
			changes := make([]dollr.Change, tc.refs)
			for i := range changes {
				changes[i] = statusChange(0, benchRef(i), int64(i), dollr.StatusProcessing)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := changes[i%len(changes)]
				c.Seq = uint64(i + 1)
				s.Publish([]dollr.Change{c})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*tc.perRef)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func BenchmarkEncodeChange(b *testing.B) {
	tb := newTable(statusTable)
	c := statusChange(1, refA, 1, dollr.StatusProcessing)
	topic := appendJSONString(nil, "realtime:payment-intent:7:"+refA)
	ids := []int64{12345678}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		data := encodeChangeData(&c, tb)
		_ = appendChangeFrame(make([]byte, 0, len(data)+128), vsn2, topic, ids, data)
	}
}

func BenchmarkFrameEncode(b *testing.B) {
	data := encodeChangeData(&[]dollr.Change{statusChange(1, refA, 1, dollr.StatusProcessing)}[0], newTable(statusTable))
	topic := appendJSONString(nil, "realtime:payment-intent:7:"+refA)
	ids := []int64{12345678}
	buf := make([]byte, 0, 2048)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = appendChangeFrame(buf[:0], vsn2, topic, ids, data)
	}
}

func BenchmarkDecodeFrame(b *testing.B) {
	msg := []byte(`[null,"7","phoenix","heartbeat",{}]`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := decodeFrame(vsn2, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	tb := newTable(statusTable)
	for _, tc := range []struct{ name, filter string }{
		{"product", "reference_id=eq." + refA},
		{"and-of-four", "reference_id=eq." + refA + ",status=in.(PENDING,PROCESSING,COMPLETED),payer_amount=gt.10,payment_method=like.MTN%"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			raws, err := parseFilter(tc.filter)
			if err != nil {
				b.Fatal(err)
			}
			conds, err := compileConditions(tb, raws)
			if err != nil {
				b.Fatal(err)
			}
			sb := &sub{table: tb, events: evAll, conds: conds}
			row := statusChange(1, refA, 1, dollr.StatusProcessing).Record
			var rv rowView
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				rv.reset(tb, row)
				if !sb.matches(dollr.ChangeUpdate, &rv) {
					b.Fatal("no match")
				}
			}
		})
	}
}

// joinFrame is a phx_join as supabase-js sends it for the product snippet.
func joinFrame(b *testing.B, ref string) []byte {
	b.Helper()
	key := realtimeKey(7, ref, time.Hour)
	return encodeFrame(vsn2, []byte(`"1"`), []byte(`"1"`), "realtime:payment-intent:7:"+ref, "phx_join", mustJSON(productJoin(key, ref)))
}

func BenchmarkDecodeJoin(b *testing.B) {
	msg := joinFrame(b, refA)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f, err := decodeFrame(vsn2, msg)
		if err != nil {
			b.Fatal(err)
		}
		if p := parseJoinPayload(f.payload); len(p.bindings) != 1 || p.token == "" {
			b.Fatal("join payload not understood")
		}
	}
}

// BenchmarkJoin is the server's whole work for one subscriber's join (frame
// decode, token, policy, subscriptions, reply) and leave, without the socket.
func BenchmarkJoin(b *testing.B) {
	s := New(Config{Secret: testSecret, Tables: []Table{statusTable}, Policy: paymentPolicy, SendQueue: 64})
	tok, _ := VerifyToken(testSecret, anonKey(), time.Now())
	msg := joinFrame(b, refA)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c := newConn(s, newDiscardConn(), vsn2, tok)
		addBenchConn(s, c)
		f, err := decodeFrame(vsn2, msg)
		if err != nil {
			b.Fatal(err)
		}
		c.join(f)
		c.kill()
		c.teardown() // the connection leaves s.conns now or when its writer ends
	}
}
