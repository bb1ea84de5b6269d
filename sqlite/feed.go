package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/dollr/dollr"
)

// The change feed. Every write of a published table also inserts a change_log
// row in the same transaction (the outbox), so a rolled-back transaction
// leaves no trace and seq is the commit order of the single writer. After the
// commit the writer, still holding the write lock, appends the changes to an
// in-memory window of recent changes and wakes every follower: no polling, and
// a live follower never touches the database. A follower that is behind the
// window (it started from an old position) reads change_log instead.

// windowSize is how many recent changes the in-memory window keeps.
const windowSize = 4096

// followBatch is the most changes handed to one call of a Follow handler.
const followBatch = 512

// tableColumns are the columns of every table the feed publishes.
var tableColumns = map[string][]dollr.Column{dollr.PublicStatusTable: dollr.PublicStatusColumns}

// feed is the window of recent changes and the followers' wake-up signal.
type feed struct {
	size   int // changes kept after a trim; the window holds up to twice that
	mu     sync.Mutex
	base   uint64         // seq just before changes[0]: the window covers (base, base+len]
	recent []dollr.Change // contiguous seqs base+1, base+2, ...
	wake   chan struct{}  // closed and replaced on every publish
}

func newFeed(head uint64, size int) *feed {
	return &feed{size: size, base: head, wake: make(chan struct{})}
}

// publish appends committed changes and wakes followers. Callers hold the
// write lock, so publishes arrive in commit order.
func (f *feed) publish(cs []dollr.Change) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cs[0].Seq != f.base+uint64(len(f.recent))+1 {
		// A gap: another process wrote to the file. Restart the window here;
		// followers behind it read the gap from change_log.
		f.base, f.recent = cs[0].Seq-1, nil
	}
	f.recent = append(f.recent, cs...)
	if len(f.recent) > 2*f.size {
		drop := len(f.recent) - f.size
		f.recent = append([]dollr.Change(nil), f.recent[drop:]...)
		f.base += uint64(drop)
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

// since returns up to max changes after seq from the window, ok=false when
// the window no longer reaches back to after, and the channel that is closed
// on the next publish.
func (f *feed) since(after uint64, max int) (batch []dollr.Change, ok bool, wake <-chan struct{}, base uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if after < f.base {
		return nil, false, f.wake, f.base
	}
	i := after - f.base
	if i >= uint64(len(f.recent)) {
		return nil, true, f.wake, f.base
	}
	end := min(uint64(len(f.recent)), i+uint64(max))
	return append([]dollr.Change(nil), f.recent[i:end]...), true, f.wake, f.base
}

// end returns the seq of the newest change in the window.
func (f *feed) end() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.base + uint64(len(f.recent))
}

// skipTo restarts the window after head and wakes followers, which then read
// the changes before it from change_log.
func (f *feed) skipTo(head uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.base, f.recent = head, nil
	close(f.wake)
	f.wake = make(chan struct{})
}

// otherWritersEvery is how often the feed looks for changes committed by
// another process sharing the file, which this process is not told about.
const otherWritersEvery = 250 * time.Millisecond

// watchOtherWriters wakes followers when change_log has grown past what this
// process published: another process (a second dollr on the same file)
// committed changes.
func (db *DB) watchOtherWriters(ctx context.Context) {
	t := time.NewTicker(otherWritersEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if head, err := db.Head(ctx); err != nil || head <= db.feed.end() {
			continue
		}
		// Under the write lock no local commit is between COMMIT and publish,
		// so a head beyond the window is someone else's.
		db.writeMu.Lock()
		if head, err := db.Head(ctx); err == nil && head > db.feed.end() {
			db.feed.skipTo(head)
		}
		db.writeMu.Unlock()
	}
}

// Follow calls handle with the changes after seq after, in commit order, until
// ctx ends, handle fails or the database is closed. Changes delivered from the
// in-memory window share their Record maps between followers: handle must not
// modify them.
func (db *DB) Follow(ctx context.Context, after uint64, handle func([]dollr.Change) error) error {
	for {
		batch, ok, wake, base := db.feed.since(after, followBatch)
		if !ok {
			var err error
			if batch, err = db.readChanges(ctx, after, followBatch); err != nil {
				return err
			}
			if len(batch) == 0 || batch[0].Seq > base+1 {
				// Rows after `after` were pruned but the window still holds
				// more than change_log: resume where the window starts
				// (Follow may start later than after).
				after = base
				continue
			}
		}
		if len(batch) > 0 {
			if err := handle(batch); err != nil {
				return err
			}
			after = batch[len(batch)-1].Seq
			continue
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		case <-db.closed:
			return ErrClosed
		}
	}
}

// Head returns the seq of the newest committed change (0 if none). It reads
// sqlite_sequence, which survives pruning.
func (db *DB) Head(ctx context.Context) (uint64, error) {
	var head int64
	err := db.queryRow(ctx, `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'), 0)`).Scan(&head)
	if err != nil {
		return 0, internal(err)
	}
	return uint64(head), nil
}

// readChanges reads up to limit changes after seq after from change_log.
func (db *DB) readChanges(ctx context.Context, after uint64, limit int) ([]dollr.Change, error) {
	rows, err := db.query(ctx, `SELECT seq, commit_time, schema_name, table_name, type, record, old_record
		FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	var out []dollr.Change
	for rows.Next() {
		var c dollr.Change
		var seq, commit int64
		var typ string
		var record, old sql.NullString
		if err := rows.Scan(&seq, &commit, &c.Schema, &c.Table, &typ, &record, &old); err != nil {
			return nil, internal(err)
		}
		c.Seq, c.CommitTime, c.Type, c.Columns = uint64(seq), fromMicros(commit), dollr.ChangeType(typ), tableColumns[c.Table]
		if c.Record, err = decodeRecord(record, c.Columns); err != nil {
			return nil, internal(fmt.Errorf("change %d record: %w", seq, err))
		}
		if c.OldRecord, err = decodeRecord(old, c.Columns); err != nil {
			return nil, internal(fmt.Errorf("change %d old record: %w", seq, err))
		}
		out = append(out, c)
	}
	return out, internal(rows.Err())
}

// decodeRecord turns stored JSON back into the value types of dollr.Change:
// int64 for integer columns, json.Number for numeric, bool, string, nil.
func decodeRecord(s sql.NullString, cols []dollr.Column) (map[string]any, error) {
	if !s.Valid {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader([]byte(s.String)))
	d.UseNumber()
	var rec map[string]any
	if err := d.Decode(&rec); err != nil {
		return nil, err
	}
	for _, col := range cols {
		switch col.Type {
		case "int2", "int4", "int8":
			if n, ok := rec[col.Name].(json.Number); ok {
				v, err := n.Int64()
				if err != nil {
					return nil, fmt.Errorf("column %s: %w", col.Name, err)
				}
				rec[col.Name] = v
			}
		}
	}
	return rec, nil
}

// emit records a change of a published table in tx's outbox.
func (tx *tx) emit(ctx context.Context, typ dollr.ChangeType, table string, record, old map[string]any) error {
	var rec, oldRec any
	if record != nil {
		b, err := json.Marshal(record)
		if err != nil {
			return internal(err)
		}
		rec = string(b)
	}
	if old != nil {
		b, err := json.Marshal(old)
		if err != nil {
			return internal(err)
		}
		oldRec = string(b)
	}
	var seq int64
	err := tx.queryRow(ctx, `INSERT INTO change_log (commit_time, schema_name, table_name, type, record, old_record)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING seq`, micros(tx.now), dollr.PublicSchema, table, string(typ), rec, oldRec).Scan(&seq)
	if err != nil {
		return internal(err)
	}
	tx.changes = append(tx.changes, dollr.Change{
		Seq: uint64(seq), Schema: dollr.PublicSchema, Table: table, Type: typ, CommitTime: tx.now,
		Columns: tableColumns[table], Record: record, OldRecord: old,
	})
	return nil
}

// insertPublicStatus writes a new public status row and its INSERT change.
func (tx *tx) insertPublicStatus(ctx context.Context, p dollr.PublicStatus) error {
	_, err := tx.exec(ctx, `INSERT INTO checkout_payment_intent_public_status (id, reference_id, session_id,
			source_type, source_id, status, payer_amount, payer_currency, payment_method, requires_action,
			gateway_message, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.ReferenceID, p.SessionID, string(p.SourceType), p.SourceID, string(p.Status), int64(p.PayerAmount),
		p.PayerCurrency, p.PaymentMethod, p.RequiresAction, nullString(p.GatewayMessage), micros(p.CreatedAt), micros(p.UpdatedAt))
	if err != nil {
		return internal(err)
	}
	return tx.emit(ctx, dollr.ChangeInsert, dollr.PublicStatusTable, p.Record(), nil)
}

// updatePublicStatus rewrites a public status row and records its UPDATE change.
func (tx *tx) updatePublicStatus(ctx context.Context, p dollr.PublicStatus) error {
	_, err := tx.exec(ctx, `UPDATE checkout_payment_intent_public_status SET reference_id = ?, session_id = ?,
			source_type = ?, source_id = ?, status = ?, payer_amount = ?, payer_currency = ?, payment_method = ?,
			requires_action = ?, gateway_message = ?, created_at = ?, updated_at = ?
		WHERE id = ?`,
		p.ReferenceID, p.SessionID, string(p.SourceType), p.SourceID, string(p.Status), int64(p.PayerAmount),
		p.PayerCurrency, p.PaymentMethod, p.RequiresAction, nullString(p.GatewayMessage), micros(p.CreatedAt), micros(p.UpdatedAt), p.ID)
	if err != nil {
		return internal(err)
	}
	return tx.emit(ctx, dollr.ChangeUpdate, dollr.PublicStatusTable, p.Record(), map[string]any{dollr.PublicStatusKey: p.ID})
}

// PublicStatus returns the public status row of the execution in session
// sessionID with referenceID, and the feed head read in the same statement
// (one read transaction), so every change up to that seq is in the row.
func (db *DB) PublicStatus(ctx context.Context, sessionID int64, referenceID string) (*dollr.PublicStatus, uint64, error) {
	var p dollr.PublicStatus
	var typ, status string
	var amount, created, updated, head int64
	var gm sql.NullString
	// The head change's commit time is no earlier than the commit this row
	// reflects and no later than any change after the snapshot, so a client
	// ordering events by commit_timestamp never sees the snapshot as stale.
	var headCommit sql.NullInt64
	err := db.queryRow(ctx, `SELECT id, reference_id, session_id, source_type, source_id, status, payer_amount,
			payer_currency, payment_method, requires_action, gateway_message, created_at, updated_at,
			coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'change_log'), 0),
			(SELECT commit_time FROM change_log WHERE seq = (SELECT seq FROM sqlite_sequence WHERE name = 'change_log'))
		FROM checkout_payment_intent_public_status WHERE session_id = ? AND reference_id = ?`, sessionID, referenceID).
		Scan(&p.ID, &p.ReferenceID, &p.SessionID, &typ, &p.SourceID, &status, &amount, &p.PayerCurrency, &p.PaymentMethod,
			&p.RequiresAction, &gm, &created, &updated, &head, &headCommit)
	if err != nil {
		return nil, 0, notFound(err, "execution")
	}
	p.SourceType, p.Status, p.PayerAmount, p.GatewayMessage = dollr.SourceType(typ), dollr.ExecutionStatus(status), dollr.Amount(amount), gm.String
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	if headCommit.Valid { // else pruned away: callers fall back to UpdatedAt
		p.CommitTime = fromMicros(headCommit.Int64)
	}
	return &p, uint64(head), nil
}

// Pruning. change_log only has to cover followers that are briefly behind:
// the realtime server needs no replay across restarts, because a client that
// joins (or rejoins) gets the row's current state as a snapshot first. So the
// log keeps about ten minutes and at most maxChangeRows rows.
const (
	changeRetention = 10 * time.Minute
	maxChangeRows   = 100_000
	pruneEvery      = 30 * time.Second
	pruneChunk      = 5_000 // rows per write transaction, so writers wait at most a few ms
)

func (db *DB) pruneLoop(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		_, _ = db.prune(ctx, time.Now().Add(-changeRetention), maxChangeRows)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// prune deletes change_log rows committed before cutoff and all but the newest
// keep rows, oldest first, and returns how many it deleted.
func (db *DB) prune(ctx context.Context, cutoff time.Time, keep int64) (int64, error) {
	var total int64
	for {
		var n int64
		err := db.update(ctx, func(tx *tx) error {
			var oldest, head sql.NullInt64
			if err := tx.queryRow(ctx, `SELECT min(seq), max(seq) FROM change_log`).Scan(&oldest, &head); err != nil {
				return internal(err)
			}
			if !oldest.Valid {
				return nil
			}
			// Rows are in commit-time order, so the old ones are a prefix: find
			// where it ends without an index on commit_time.
			var firstKept sql.NullInt64
			if err := tx.queryRow(ctx, `SELECT min(seq) FROM change_log WHERE seq < ? AND commit_time >= ?`,
				oldest.Int64+pruneChunk, micros(cutoff)).Scan(&firstKept); err != nil {
				return internal(err)
			}
			upTo := oldest.Int64 + pruneChunk // exclusive
			if firstKept.Valid {
				upTo = firstKept.Int64
			}
			upTo = max(upTo, min(head.Int64-keep+1, oldest.Int64+pruneChunk))
			res, err := tx.exec(ctx, `DELETE FROM change_log WHERE seq < ?`, upTo)
			if err != nil {
				return internal(err)
			}
			n, err = res.RowsAffected()
			return internal(err)
		})
		total += n
		if err != nil || n < pruneChunk {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}
