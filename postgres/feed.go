package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dollr/dollr"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Head returns the WAL insert position: every change committed so far has a
// smaller commit LSN, so Follow(Head) delivers exactly the later commits.
func (d *DB) Head(ctx context.Context) (uint64, error) {
	var lsn int64
	if err := d.pool.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::int8").Scan(&lsn); err != nil {
		return 0, internal("head", err)
	}
	return uint64(lsn), nil
}

// Follow streams committed changes from the replication slot. Each
// transaction is one batch; its changes share Seq, the transaction's commit
// LSN, and keep their order. A position is acknowledged to PostgreSQL only
// after handle has returned for it, so after a crash the slot replays from
// the first unacknowledged transaction: a change may be delivered twice
// across restarts, never lost.
//
// after is a lower bound: Follow delivers only commits whose LSN exceeds it,
// and starts no earlier than the slot's acknowledged position, so with after
// below that position the changes in between are not replayed.
//
// The slot admits one reader at a time. While another process (or another
// Follow) holds it, Follow keeps retrying; when PostgreSQL restarts it
// reconnects, both with back-off up to Options.CaptureRetry. It returns
// ctx.Err() when ctx ends and handle's error if handle fails.
func (d *DB) Follow(ctx context.Context, after uint64, handle func([]dollr.Change) error) error {
	c := &capture{
		connCfg:  d.connCfg,
		slot:     d.slot,
		pub:      d.pub,
		types:    d.types,
		interval: d.opts.StatusInterval,
		log:      d.log,
		repair:   d.repairCapture,
		visible:  d.committedVisible,
		m:        d.captureMetrics,
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel) // Close ends Follow too
	defer stop()
	err := c.follow(ctx, after, handle, d.opts.CaptureRetry)
	if d.ctx.Err() != nil && ctx.Err() != nil && !errors.Is(err, errHandler) {
		return errors.New("postgres: store closed")
	}
	return err
}

var errHandler = errors.New("handler failed")

// handlerError carries handle's error out of the stream, unretried.
type handlerError struct{ err error }

func (e handlerError) Error() string        { return e.err.Error() }
func (e handlerError) Unwrap() []error      { return []error{e.err, errHandler} }
func (e handlerError) Is(target error) bool { return target == errHandler }

// capture reads one slot through one publication.
type capture struct {
	connCfg  *pgconn.Config
	slot     string
	pub      string
	types    *typeCache
	interval time.Duration
	log      interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
	// repair recreates a missing publication or slot, or a slot PostgreSQL
	// invalidated (max_slot_wal_keep_size).
	repair func(context.Context) error
	// visible reports whether new snapshots see these committed transactions
	// (see visible.go); nil: deliver at once.
	visible func(context.Context, []uint32) (bool, error)
	// m counts interruptions and shows whether a stream is up (metrics.go).
	m *captureMetrics
	// downSince is when the stream was interrupted (zero while it is up or
	// before it first started), to log how long capture was down.
	downSince time.Time
}

func (c *capture) follow(ctx context.Context, after uint64, handle func([]dollr.Change) error, maxWait time.Duration) error {
	pos := after
	bo := newBackoff(50*time.Millisecond, maxWait)
	waiting := false // logged that another reader holds the slot
	for {
		progressed, err := c.stream(ctx, &pos, handle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if progressed {
			bo.reset()
		}
		switch code := pgCode(err); {
		case code == codeObjectInUse:
			if !waiting {
				c.log.Info("replication slot in use by another reader; will take over when it is free", "slot", c.slot)
				waiting = true
			}
		case (code == codeUndefinedObject || code == codeSlotInvalidated) && c.repair != nil:
			c.log.Warn("replication slot or publication missing or invalidated; recreating it (changes committed meanwhile are not delivered)",
				"slot", c.slot, "publication", c.pub, "err", err)
			if rerr := c.repair(ctx); rerr != nil {
				c.log.Warn("recreating replication slot failed", "err", rerr)
			}
		default:
			waiting = false
			c.log.Warn("change capture interrupted; reconnecting", "slot", c.slot, "err", err)
			c.m.interrupted()
			if c.downSince.IsZero() {
				c.downSince = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(bo.next()):
		}
	}
}

// stream runs one replication connection until it fails. pos is the Seq
// of the last delivered commit; it advances as batches are handled.
func (c *capture) stream(ctx context.Context, pos *uint64, handle func([]dollr.Change) error) (progressed bool, err error) {
	conn, err := connectReplication(ctx, c.connCfg)
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())

	// Status updates report the slot's own position until this connection
	// has handled something; a lower one would move the slot back.
	confirmed, err := slotPosition(ctx, conn, c.slot)
	if err != nil {
		return false, err
	}
	var start pglogrepl.LSN // 0: from the slot's acknowledged position
	if *pos > 0 {
		start = pglogrepl.LSN(*pos + 1)
	}
	err = pglogrepl.StartReplication(ctx, conn, c.slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + c.pub + "'"},
	})
	if err != nil {
		return false, err
	}
	c.m.setStreaming(true)
	defer c.m.setStreaming(false)
	if !c.downSince.IsZero() {
		c.log.Info("change capture resumed", "slot", c.slot, "down_for", time.Since(c.downSince).Round(time.Millisecond).String())
		c.downSince = time.Time{}
	}

	s := &stream{capture: c, conn: conn, rels: map[uint32]*relation{}, acked: confirmed, reported: confirmed}
	// Transactions are handed to handle on a goroutine of their own, so the
	// connection keeps being read while handle runs (publishing to another
	// server takes a round trip); whatever committed meanwhile goes to the
	// next handle call as one batch. The slot is acknowledged only up to what
	// handle has returned from.
	h := newHandoff(*pos, handle)
	h.visible, h.log = c.visible, c.log
	hctx, stopHandoff := context.WithCancel(ctx)
	go h.run(hctx, stopHandoff)
	defer func() {
		stopHandoff()
		<-h.done
		*pos, progressed = h.pos, h.progressed
		if h.err != nil {
			err = handlerError{h.err}
		}
	}()
	next := time.Now().Add(c.interval)
	var ackBy time.Time // when handled transactions are acknowledged; zero: none waiting
	for {
		if handled := h.handledLSN(); handled > s.acked {
			s.acked = handled
			// Acknowledged a little later, with whatever follows: a
			// status update per transaction costs both sides a message.
			if ackBy.IsZero() {
				ackBy = time.Now().Add(ackDelay)
			}
		}
		now := time.Now()
		if !now.Before(next) || (!ackBy.IsZero() && !now.Before(ackBy)) {
			if err := s.report(); err != nil {
				return false, err
			}
			next, ackBy = now.Add(c.interval), time.Time{}
		}
		deadline := next
		if !ackBy.IsZero() && ackBy.Before(deadline) {
			deadline = ackBy
		}
		if soon := now.Add(ackDelay); h.busy() && soon.Before(deadline) {
			deadline = soon // wake up to acknowledge what the handler finishes
		}
		rctx, cancel := context.WithDeadline(hctx, deadline)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && hctx.Err() == nil {
				continue
			}
			return false, err
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				return false, errors.New("postgres: empty replication message")
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return false, err
				}
				// Between transactions, with every one handed over handled,
				// everything the server has sent was handled, so its position
				// can be acknowledged; otherwise the slot would pin WAL while
				// other tables are busy.
				if !s.inTxn && !h.busy() && ka.ServerWALEnd > s.acked {
					s.acked = ka.ServerWALEnd
				}
				if ka.ReplyRequested {
					if err := s.report(); err != nil {
						return false, err
					}
					next, ackBy = time.Now().Add(c.interval), time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return false, err
				}
				batch, commit, err := s.apply(ctx, xld.WALData)
				if err != nil {
					return false, err
				}
				if commit == nil {
					continue
				}
				// Every commit, even one with nothing published, goes through
				// the handoff: its position is acknowledged only after every
				// transaction before it was handled.
				if !h.put(hctx, committedTxn{changes: batch, seq: uint64(commit.CommitLSN), end: commit.TransactionEndLSN, xid: s.xid}) {
					return false, hctx.Err()
				}
			}
		case *pgproto3.ErrorResponse:
			return false, pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CopyDone:
			return false, errors.New("postgres: server ended the replication stream")
		}
	}
}

// committedTxn is one decoded transaction waiting for the handler.
type committedTxn struct {
	changes []dollr.Change
	seq     uint64        // its commit LSN, the changes' Seq
	end     pglogrepl.LSN // where the slot may be acknowledged once it is handled
	xid     uint32        // its transaction id
}

// maxCoalesce bounds the transactions one handle call carries.
const maxCoalesce = 256

// handoff runs handle for one replication connection's transactions, in
// order, coalescing those that queued up while the previous call ran.
type handoff struct {
	queue   chan committedTxn
	handle  func([]dollr.Change) error
	visible func(context.Context, []uint32) (bool, error) // nil: no wait
	log     interface{ Warn(string, ...any) }
	waiting atomic.Int64  // put but not yet handled
	handled atomic.Uint64 // end LSN of the last transaction handled
	done    chan struct{}
	// Owned by run until done is closed.
	pos        uint64
	progressed bool
	err        error
}

func newHandoff(pos uint64, handle func([]dollr.Change) error) *handoff {
	return &handoff{queue: make(chan committedTxn, maxCoalesce), handle: handle, pos: pos, done: make(chan struct{})}
}

func (h *handoff) put(ctx context.Context, t committedTxn) bool {
	h.waiting.Add(1)
	select {
	case h.queue <- t:
		return true
	case <-ctx.Done():
		return false
	}
}

func (h *handoff) busy() bool { return h.waiting.Load() > 0 }

func (h *handoff) handledLSN() pglogrepl.LSN { return pglogrepl.LSN(h.handled.Load()) }

// run ends when ctx ends or handle fails; then h.err is set and stop ends
// the stream's reading.
func (h *handoff) run(ctx context.Context, stop context.CancelFunc) {
	defer close(h.done)
	for {
		var t committedTxn
		select {
		case <-ctx.Done():
			return
		case t = <-h.queue:
		}
		// A fresh slice per call: handle may keep it.
		batch := h.fresh(t)
		var xids []uint32
		if len(batch) > 0 {
			xids = append(xids, t.xid)
		}
		n, last := 1, t
	drain:
		for n < maxCoalesce {
			select {
			case u := <-h.queue:
				if more := h.fresh(u); len(more) > 0 {
					batch = append(batch[:len(batch):len(batch)], more...) // never into t.changes' spare capacity
					xids = append(xids, u.xid)
				}
				n, last = n+1, u
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			waitVisible(ctx, xids, h.visible, h.log)
			if ctx.Err() != nil {
				return
			}
			if err := h.handle(batch); err != nil {
				h.err = err
				stop()
				return
			}
		}
		h.progressed = true
		h.pos = max(h.pos, last.seq)
		h.handled.Store(uint64(last.end))
		h.waiting.Add(int64(-n))
	}
}

// fresh drops a transaction already delivered (at or before pos): after a
// reconnect the slot may replay what the previous connection handled.
func (h *handoff) fresh(t committedTxn) []dollr.Change {
	if t.seq <= h.pos {
		return nil
	}
	return t.changes
}

// stream is the state of one replication connection.
type stream struct {
	*capture
	conn     *pgconn.PgConn
	rels     map[uint32]*relation
	inTxn    bool
	xid      uint32 // of the transaction being decoded
	txn      []dollr.Change
	acked    pglogrepl.LSN // handled up to here; reported as flushed
	reported pglogrepl.LSN // last position sent in a status update
}

// ackDelay is how long a handled transaction may wait for its
// acknowledgement. A later acknowledgement only means more redelivery (which
// Seq filters) after a crash, and the slot keeps WAL a little longer.
const ackDelay = 20 * time.Millisecond

// report sends a standby status update with the acknowledged position.
func (s *stream) report() error {
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.acked})
	if err == nil {
		s.reported = s.acked
	}
	return err
}

// slotPosition returns the slot's confirmed_flush_lsn. A replication
// connection to a database accepts plain SQL before START_REPLICATION.
func slotPosition(ctx context.Context, conn *pgconn.PgConn, slot string) (pglogrepl.LSN, error) {
	// slot is checked against nameRE, so it needs no escaping beyond quotes.
	res, err := conn.Exec(ctx, "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '"+slot+"'").ReadAll()
	if err != nil {
		return 0, err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || res[0].Rows[0][0] == nil {
		return 0, &pgconn.PgError{Code: codeUndefinedObject, Message: fmt.Sprintf("replication slot %q does not exist", slot)}
	}
	return pglogrepl.ParseLSN(string(res[0].Rows[0][0]))
}

// relation is a table as a Relation message describes it.
type relation struct {
	schema, table string
	columns       []dollr.Column
	types         []pgType
	key           []bool // part of the replica identity
}

// apply decodes one pgoutput message. At a Commit it returns the
// transaction's changes, with Seq and CommitTime set.
func (s *stream) apply(ctx context.Context, data []byte) ([]dollr.Change, *pglogrepl.CommitMessage, error) {
	m, err := parseLogical(data)
	if err != nil {
		return nil, nil, err
	}
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		rel := &relation{schema: m.Namespace, table: m.RelationName}
		for _, col := range m.Columns {
			t, err := s.types.get(ctx, col.DataType)
			if err != nil {
				return nil, nil, err
			}
			rel.columns = append(rel.columns, dollr.Column{Name: col.Name, Type: t.name})
			rel.types = append(rel.types, t)
			rel.key = append(rel.key, col.Flags&1 != 0)
		}
		s.rels[m.RelationID] = rel
	case *pglogrepl.BeginMessage:
		s.inTxn, s.xid = true, m.Xid
		s.txn = nil
	case *pglogrepl.InsertMessage:
		rel, rec, err := s.tuple(ctx, m.RelationID, m.Tuple, false)
		if err != nil {
			return nil, nil, err
		}
		s.add(rel, dollr.ChangeInsert, rec, nil)
	case *pglogrepl.UpdateMessage:
		rel, rec, err := s.tuple(ctx, m.RelationID, m.NewTuple, false)
		if err != nil {
			return nil, nil, err
		}
		// Without an old tuple the key did not change: take it from the new row.
		old := keyOf(rel, rec)
		if m.OldTuple != nil {
			_, old, err = s.tuple(ctx, m.RelationID, m.OldTuple, m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey)
			if err != nil {
				return nil, nil, err
			}
		}
		s.add(rel, dollr.ChangeUpdate, rec, old)
	case *pglogrepl.DeleteMessage:
		rel, old, err := s.tuple(ctx, m.RelationID, m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey)
		if err != nil {
			return nil, nil, err
		}
		s.add(rel, dollr.ChangeDelete, nil, old)
	case *pglogrepl.CommitMessage:
		batch := s.txn
		s.inTxn, s.txn = false, nil
		for i := range batch {
			batch[i].Seq = uint64(m.CommitLSN)
			batch[i].CommitTime = m.CommitTime.UTC()
		}
		return batch, m, nil
	}
	return nil, nil, nil
}

func (s *stream) add(rel *relation, typ dollr.ChangeType, rec, old map[string]any) {
	s.txn = append(s.txn, dollr.Change{
		Schema: rel.schema, Table: rel.table, Type: typ, Columns: rel.columns, Record: rec, OldRecord: old,
	})
}

// tuple decodes a row of relation id. keyOnly keeps only the replica
// identity columns (an old key tuple sends the others as NULL).
func (s *stream) tuple(ctx context.Context, id uint32, tup *pglogrepl.TupleData, keyOnly bool) (*relation, map[string]any, error) {
	rel, ok := s.rels[id]
	if !ok {
		return nil, nil, fmt.Errorf("postgres: change of relation %d before its Relation message", id)
	}
	if tup == nil {
		return rel, nil, fmt.Errorf("postgres: change of %s.%s without a row", rel.schema, rel.table)
	}
	if len(tup.Columns) != len(rel.columns) {
		return nil, nil, fmt.Errorf("postgres: row of %s.%s has %d columns, relation has %d", rel.schema, rel.table, len(tup.Columns), len(rel.columns))
	}
	rec := make(map[string]any, len(rel.columns))
	for i, col := range tup.Columns {
		if keyOnly && !rel.key[i] {
			continue
		}
		name := rel.columns[i].Name
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			rec[name] = nil
		case pglogrepl.TupleDataTypeToast:
			// An unchanged value stored out of line is not sent; leave it out
			// rather than invent one. (The public status table keeps its
			// values inline; see the migration.)
		case pglogrepl.TupleDataTypeText:
			v, err := s.types.decodeValue(ctx, rel.types[i], string(col.Data))
			if err != nil {
				return nil, nil, fmt.Errorf("postgres: %s.%s.%s: %w", rel.schema, rel.table, name, err)
			}
			rec[name] = v
		default:
			return nil, nil, fmt.Errorf("postgres: %s.%s.%s: unexpected tuple data type %q", rel.schema, rel.table, name, col.DataType)
		}
	}
	return rel, rec, nil
}

// keyOf returns the replica identity columns of a row.
func keyOf(rel *relation, rec map[string]any) map[string]any {
	old := map[string]any{}
	for i, col := range rel.columns {
		if rel.key[i] {
			if v, ok := rec[col.Name]; ok {
				old[col.Name] = v
			}
		}
	}
	return old
}

// parseLogical decodes a pgoutput message, turning a decoder panic on a
// malformed message into an error.
func parseLogical(data []byte) (m pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errMalformed
	}
	switch data[0] {
	case 'B', 'C', 'R', 'I', 'U', 'D':
	default:
		// Origin, Type, Truncate, logical decoding messages: the feed emits
		// nothing for them, so they are not decoded at all.
		return nil, nil
	}
	if err := checkTuples(data); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("postgres: malformed pgoutput message: %v", r)
		}
	}()
	return pglogrepl.Parse(data)
}

var errMalformed = errors.New("postgres: malformed pgoutput message")

// checkTuples verifies that the rows of an Insert, Update or Delete message
// fit in it, because the decoder allocates a value's length before looking.
func checkTuples(data []byte) error {
	if len(data) == 0 {
		return errMalformed
	}
	switch data[0] {
	case 'I', 'U', 'D':
	default:
		return nil
	}
	if len(data) < 6 {
		return errMalformed
	}
	kind, rest := data[0], data[5:] // type, relation id
	for {
		if len(rest) == 0 {
			return errMalformed
		}
		tag := rest[0]
		rest = rest[1:]
		var err error
		if rest, err = checkTuple(rest); err != nil {
			return err
		}
		// Only an Update's old row (K or O) is followed by another (N).
		if kind != 'U' || tag == 'N' {
			return nil
		}
	}
}

func checkTuple(b []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, errMalformed
	}
	n := int(b[0])<<8 | int(b[1])
	b = b[2:]
	for range n {
		if len(b) < 1 {
			return nil, errMalformed
		}
		kind := b[0]
		b = b[1:]
		if kind == 't' || kind == 'b' {
			if len(b) < 4 {
				return nil, errMalformed
			}
			size := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
			b = b[4:]
			if size > uint64(len(b)) {
				return nil, errMalformed
			}
			b = b[size:]
		}
	}
	return b, nil
}

// repairCapture recreates what capture needs after an operator dropped the
// slot or publication, or PostgreSQL invalidated the slot because it held
// more WAL than max_slot_wal_keep_size allows. A new slot starts now: the
// changes in between are not delivered (realtime clients still get the
// current row when they subscribe).
func (d *DB) repairCapture(ctx context.Context) error {
	var status *string
	err := d.pool.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1", d.slot).Scan(&status)
	if err == nil && status != nil && *status == "lost" {
		if _, err := d.pool.Exec(ctx, "SELECT pg_drop_replication_slot($1)", d.slot); err != nil && pgCode(err) != codeUndefinedObject {
			return fmt.Errorf("postgres: drop invalidated slot %s: %w", d.slot, err)
		}
	}
	return d.ensureCapture(ctx)
}
