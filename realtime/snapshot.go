package realtime

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/dollr/dollr"
)

// pendingChange is a live change that arrived while the channel was syncing.
type pendingChange struct {
	seq    uint64
	commit time.Time
	data   []byte
	subs   []*sub
}

// deliver queues a matched change for this channel: ch.ids are the ids of its
// matching bindings (publisher scratch).
func (ch *channel) deliver(c *dollr.Change, data []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return
	}
	if ch.syncing {
		if len(ch.pending) >= ch.s.cfg.SendQueue {
			ch.c.overflow()
			return
		}
		ch.pending = append(ch.pending, pendingChange{seq: c.Seq, commit: c.CommitTime, data: data, subs: slices.Clone(ch.hits)})
		return
	}
	frame := appendChangeFrame(make([]byte, 0, len(data)+len(ch.topicJSON)+48+12*len(ch.ids)), ch.c.vsn, ch.topicJSON, ch.ids, data)
	ch.c.send(outMsg{op: ws.OpText, data: frame, event: true, commit: c.CommitTime})
}

// snapGroup is one snapshot read: the subscriptions of a channel that share a
// table and the same equality conditions.
type snapGroup struct {
	t    *table
	eq   map[string]string
	subs []*sub
}

func snapshotGroups(subs []*sub) []*snapGroup {
	var groups []*snapGroup
	byKey := map[string]*snapGroup{}
	for _, sb := range subs {
		eq, ok := equalities(sb)
		if !ok || len(eq) == 0 || sb.events&(evInsert|evUpdate) == 0 {
			continue
		}
		keys := make([]string, 0, len(eq))
		for k, v := range eq {
			keys = append(keys, k+"\x00"+v)
		}
		sort.Strings(keys)
		key := sb.table.id + "\x00" + strings.Join(keys, "\x00")
		g := byKey[key]
		if g == nil {
			g = &snapGroup{t: sb.table, eq: eq}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.subs = append(g.subs, sb)
	}
	return groups
}

// equalities collects a subscription's plain equality conditions as canonical
// text; ok is false when two of them contradict each other (no row can match).
func equalities(sb *sub) (map[string]string, bool) {
	eq := map[string]string{}
	for i := range sb.conds {
		c := &sb.conds[i]
		if c.op != opEq || c.negate {
			continue
		}
		name := sb.table.cols[c.col].name
		text := canonicalText(c.kind, c.val)
		if prev, dup := eq[name]; dup && prev != text {
			return nil, false
		}
		eq[name] = text
	}
	return eq, true
}

// canonicalText renders a cast value as text a database lookup can use.
func canonicalText(k kind, v value) string {
	switch k {
	case kindTimestamptz, kindTimestamp:
		return time.UnixMicro(v.i).UTC().Format("2006-01-02T15:04:05.999999Z07:00")
	case kindDate:
		return time.Unix(v.i*86400, 0).UTC().Format("2006-01-02")
	}
	return v.text(k)
}

// beginSync starts a new sync of the channel's subscriptions: a flush of any
// older sync does nothing from now on, and an older sync's reads stop. It
// returns the new sync's generation and the snapshot reads it needs; ok is
// false on a closed channel.
func (ch *channel) beginSync(subs []*sub) (gen uint64, groups []*snapGroup, ok bool) {
	if ch.s.cfg.Snapshot != nil {
		groups = snapshotGroups(subs)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed {
		return 0, nil, false
	}
	ch.syncGen++
	if ch.cancel != nil {
		ch.cancel()
		ch.cancel = nil
	}
	return ch.syncGen, groups, true
}

// startSync sends the subscriptions' snapshot (if any), then the live changes
// held since they were registered, and then lets live changes through.
func (ch *channel) startSync(subs []*sub) {
	gen, groups, ok := ch.beginSync(subs)
	if !ok {
		return
	}
	if len(groups) == 0 {
		ch.flush(gen, nil)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if !ch.setCancel(gen, cancel) {
		return
	}
	go ch.syncUntilRead(ctx, cancel, gen, groups, false)
}

// syncNow reads the subscriptions' snapshot before the caller answers a join,
// so whatever commits after the client sees SUBSCRIBED is newer than the
// snapshot and arrives as an event of its own rather than folded into it.
// The caller sends the snapshot with flush(gen, snapshot) once the reply and
// the system message are out; live changes stay held until then. If the read
// fails, err is set and the caller hands groups over to retrySync instead.
func (ch *channel) syncNow(subs []*sub) (gen uint64, groups []*snapGroup, snapshot []outMsg, err error) {
	gen, groups, _ = ch.beginSync(subs)
	if len(groups) == 0 {
		return gen, nil, nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ch.s.cfg.SnapshotTimeout)
	defer cancel()
	snapshot, err = ch.readSnapshots(ctx, groups)
	return gen, groups, snapshot, err
}

// setCancel records cancel as the way to stop sync gen's reads, unless the
// channel closed or a newer sync began meanwhile (then it cancels at once).
func (ch *channel) setCancel(gen uint64, cancel context.CancelFunc) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed || gen != ch.syncGen {
		cancel()
		return false
	}
	ch.cancel = cancel
	return true
}

// Snapshot reads that fail are retried at growing intervals, as the real
// server retries a failed CDC subscription every 5–10 s.
const (
	snapshotRetryFirst = time.Second
	snapshotRetryMax   = 5 * time.Second
	msgSnapshotRetry   = "Unable to read the current rows; retrying"
)

// retrySync follows a failed snapshot read of sync gen: it tells the client
// (a system error), then reads groups again until a read succeeds, the
// channel closes or a newer sync replaces this one. Live changes stay held
// meanwhile.
func (ch *channel) retrySync(gen uint64, groups []*snapGroup) {
	ctx, cancel := context.WithCancel(context.Background())
	if !ch.setCancel(gen, cancel) {
		return
	}
	ch.sendSystem("postgres_changes", "error", msgSnapshotRetry)
	go ch.syncUntilRead(ctx, cancel, gen, groups, true)
}

// syncUntilRead reads groups' snapshot and flushes it for sync gen, retrying
// failed reads until ctx ends (the channel closed or a newer sync began).
// retrying says a read already failed and the client was told; a retry that
// then succeeds says "Subscribed to PostgreSQL" again before the rows.
func (ch *channel) syncUntilRead(ctx context.Context, cancel context.CancelFunc, gen uint64, groups []*snapGroup, retrying bool) {
	defer cancel()
	delay := snapshotRetryFirst
	for {
		if retrying {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, snapshotRetryMax)
		}
		readCtx, readCancel := context.WithTimeout(ctx, ch.s.cfg.SnapshotTimeout)
		snapshot, err := ch.readSnapshots(readCtx, groups)
		readCancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !retrying {
				ch.sendSystem("postgres_changes", "error", msgSnapshotRetry)
				retrying = true
			}
			continue
		}
		if retrying {
			ch.sendSystem("postgres_changes", "ok", msgSubscribed)
		}
		ch.flush(gen, snapshot)
		return
	}
}

// readSnapshots reads every group's rows and renders them as events. It stops
// at the first failed read and returns its error.
func (ch *channel) readSnapshots(ctx context.Context, groups []*snapGroup) ([]outMsg, error) {
	var msgs []outMsg
	var rv rowView
	for _, g := range groups {
		rows, seq, err := ch.s.cfg.Snapshot.Snapshot(ctx, g.t.schema, g.t.name, g.eq)
		if err != nil {
			ch.s.m.snapshots.WithLabelValues("error").Inc()
			if ctx.Err() == nil || errors.Is(err, context.DeadlineExceeded) {
				ch.s.logLimited(&ch.s.snapshotErrors, "realtime: snapshot failed; retrying", "table", g.t.id, "err", err)
			}
			return nil, err
		}
		ch.s.m.snapshots.WithLabelValues("ok").Inc()
		for _, sb := range g.subs {
			sb.snapSeq.Store(seq)
		}
		for i := range rows {
			r := rows[i]
			r.Schema, r.Table = g.t.schema, g.t.name
			if r.Type == "" {
				r.Type = dollr.ChangeInsert
			}
			if r.CommitTime.IsZero() {
				r.CommitTime = ch.s.now()
			}
			row := testedRow(&r)
			if row == nil {
				continue
			}
			rv.reset(g.t, row)
			var ids []int64
			for _, sb := range g.subs {
				if sb.matches(r.Type, &rv) && !slices.Contains(ids, sb.id) {
					ids = append(ids, sb.id)
				}
			}
			if len(ids) == 0 {
				continue
			}
			frame := appendChangeFrame(nil, ch.c.vsn, ch.topicJSON, ids, encodeChangeData(&r, g.t))
			msgs = append(msgs, outMsg{op: ws.OpText, data: frame, event: true})
		}
	}
	return msgs, nil
}

// flush sends the snapshot messages and the held live changes not covered by
// the snapshot, then ends syncing. A flush of an outdated sync does nothing.
func (ch *channel) flush(gen uint64, snapshot []outMsg) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed || gen != ch.syncGen {
		return
	}
	for _, m := range snapshot {
		ch.c.send(m)
	}
	var ids []int64
	for _, p := range ch.pending {
		ids = ids[:0]
		for _, sb := range p.subs {
			if snap := sb.snapSeq.Load(); snap != 0 && p.seq <= snap {
				continue
			}
			if !slices.Contains(ids, sb.id) {
				ids = append(ids, sb.id)
			}
		}
		if len(ids) == 0 {
			continue
		}
		frame := appendChangeFrame(nil, ch.c.vsn, ch.topicJSON, ids, p.data)
		ch.c.send(outMsg{op: ws.OpText, data: frame, event: true, commit: p.commit})
	}
	ch.pending = nil
	ch.syncing = false
	ch.cancel = nil
}
