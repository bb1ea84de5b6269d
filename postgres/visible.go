package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A commit reaches the replication stream once its WAL record is flushed,
// which can be a moment before the committing backend leaves the process
// array; until then other sessions' snapshots still see the old row. A change
// delivered in that moment would let a client's Status API call, made on the
// event, read the old status. So capture delivers a transaction only once a
// fresh snapshot sees it.

// snapshot is what pg_current_snapshot() reports, reduced to the 32-bit
// transaction ids the replication stream carries.
type snapshot struct {
	xmax uint32   // first id not yet completed
	xip  []uint32 // ids in progress below xmax
}

// parseSnapshot reads pg_current_snapshot()'s text form "xmin:xmax:xip,...".
func parseSnapshot(s string) (snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return snapshot{}, fmt.Errorf("postgres: snapshot %q: want xmin:xmax:xip", s)
	}
	var snap snapshot
	for i, p := range parts {
		if i == 2 && p == "" {
			break
		}
		for f := range strings.SplitSeq(p, ",") {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return snapshot{}, fmt.Errorf("postgres: snapshot %q: %w", s, err)
			}
			switch i {
			case 1:
				snap.xmax = uint32(v)
			case 2:
				snap.xip = append(snap.xip, uint32(v))
			}
		}
	}
	return snap, nil
}

// sees reports whether a committed transaction is visible in the snapshot:
// completed before it was taken (below xmax, in wrapping xid order) and not
// listed as in progress.
func (s snapshot) sees(xid uint32) bool {
	if int32(xid-s.xmax) >= 0 {
		return false
	}
	for _, x := range s.xip {
		if x == xid {
			return false
		}
	}
	return true
}

// committedVisible reports whether a new snapshot sees every transaction in xids.
func (d *DB) committedVisible(ctx context.Context, xids []uint32) (bool, error) {
	var text string
	if err := d.pool.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&text); err != nil {
		return false, err
	}
	snap, err := parseSnapshot(text)
	if err != nil {
		return false, err
	}
	for _, x := range xids {
		if !snap.sees(x) {
			return false, nil
		}
	}
	return true, nil
}

// maxVisibilityWait bounds how long delivery waits for visibility: the gap
// is normally microseconds, and a stuck check must not stop realtime.
const maxVisibilityWait = 2 * time.Second

// waitVisible returns once check reports xids visible, ctx ends, or
// maxVisibilityWait passes (then it delivers anyway and says so).
func waitVisible(ctx context.Context, xids []uint32, check func(context.Context, []uint32) (bool, error), log interface{ Warn(string, ...any) }) {
	if len(xids) == 0 || check == nil {
		return
	}
	deadline := time.Now().Add(maxVisibilityWait)
	pause := 100 * time.Microsecond
	for {
		// The check itself is bounded too: a pool with every connection
		// busy must not hold delivery past the bound.
		cctx, cancel := context.WithDeadline(ctx, deadline)
		ok, err := check(cctx, xids)
		cancel()
		if ok || ctx.Err() != nil {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("change capture: delivering changes before a snapshot sees their commit", "transactions", len(xids), "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 10*time.Millisecond)
	}
}
