package realtime

import (
	"context"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// TestPanicMidJoinLeavesNothing: a Snapshotter that panics after the channel
// entered the topic map and the index. The socket is closed (1011) and the
// channel must leave the map, the index and the gauge with it; listed on the
// connection only at the end of the join, teardown alone would not find it.
func TestPanicMidJoinLeavesNothing(t *testing.T) {
	snap := snapshotFunc(func(context.Context, string, string, map[string]string) ([]dollr.Change, uint64, error) {
		panic("snapshot bug")
	})
	srv := startServer(t, Config{Snapshot: snap, IdleTimeout: time.Hour})
	c := dial(t, srv, "2.0.0")
	token := signToken(testSecret, map[string]any{"role": "anon", "exp": time.Now().Add(time.Minute).Unix()})
	c.push("1", "1", "realtime:room", "phx_join", joinPayload(token, map[string]any{"event": "*", "schema": "public", "table": "items", "filter": "id=eq.1"}))
	c.waitClosed()
	var topics, subs int
	var gauge float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		srv.topicMu.Lock()
		topics = len(srv.topics)
		srv.topicMu.Unlock()
		srv.idx.mu.RLock()
		subs = 0
		for _, ti := range srv.idx.tables {
			subs += ti.nsubs
		}
		srv.idx.mu.RUnlock()
		gauge = counterValue(t, srv.reg, "dollr_realtime_channels", nil)
		if topics == 0 && subs == 0 && gauge == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the socket closed: %d topics, %d subs, channels gauge %v; want 0", topics, subs, gauge)
		}
	}
}
