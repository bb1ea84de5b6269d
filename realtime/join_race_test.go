package realtime

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

type snapshotFunc func(ctx context.Context, schema, table string, eq map[string]string) ([]dollr.Change, uint64, error)

func (f snapshotFunc) Snapshot(ctx context.Context, schema, table string, eq map[string]string) ([]dollr.Change, uint64, error) {
	return f(ctx, schema, table, eq)
}

// A token that expires while its join is under way, with a sweep right then
// (here from inside the join's snapshot read, between the channel's
// registration in the topic map and index and its reply): the client gets its
// ok reply first, then the expiry, and the channel leaves the topic map and
// the index. (When the connection listed the channel before the topic map
// did, such a sweep closed it first: phx_close before the reply, and, if the
// sweep fell before the topic map's step, a closed channel in it for good.)
func TestTokenExpiringDuringJoin(t *testing.T) {
	var skew atomic.Int64 // added to the server's wall clock
	var server *Server
	var swept atomic.Int32
	snap := snapshotFunc(func(context.Context, string, string, map[string]string) ([]dollr.Change, uint64, error) {
		skew.Store(int64(time.Hour)) // the token has now expired
		server.connMu.Lock()
		conns := make([]*conn, 0, len(server.conns))
		for c := range server.conns {
			conns = append(conns, c)
		}
		server.connMu.Unlock()
		server.sweep(conns)
		swept.Add(1)
		return nil, 0, nil
	})
	srv := startServerWith(t, Config{Snapshot: snap, WriteTimeout: 100 * time.Millisecond, IdleTimeout: time.Hour}, func(s *Server) {
		server = s
		s.now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	c := dial(t, srv, "2.0.0")
	token := signToken(testSecret, map[string]any{"role": "anon", "exp": time.Now().Add(time.Minute).Unix()})
	c.push("1", "1", "realtime:room", "phx_join", joinPayload(token, map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.1"}))
	if m := c.next(); m.Event != "phx_reply" || m.payload()["status"] != "ok" {
		t.Fatalf("first message %s, want the ok reply", m.Raw)
	}
	if m := c.nextEvent("system"); m.payload()["message"] != msgSubscribed {
		t.Fatalf("got %s", m.Raw)
	}
	if m := c.nextEvent("system"); !strings.HasPrefix(m.payload()["message"].(string), "Token has expired ") {
		t.Fatalf("got %s", m.Raw)
	}
	c.nextEvent("phx_close")
	if swept.Load() != 1 {
		t.Fatalf("%d sweeps during the join, want 1", swept.Load())
	}
	eventually(t, "the channel gone from the topic map and the index", func() bool {
		srv.topicMu.Lock()
		topics := len(srv.topics)
		srv.topicMu.Unlock()
		srv.idx.mu.RLock()
		subs := 0
		for _, ti := range srv.idx.tables {
			subs += ti.nsubs
		}
		srv.idx.mu.RUnlock()
		return topics == 0 && subs == 0 && counterValue(t, srv.reg, "dollr_realtime_channels", nil) == 0
	})
}
