package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Provider messages on in-flight payments are the most frequent write there
// is, and each is tiny. Concurrent NoteGatewayMessage calls are therefore
// group-committed: one statement and one commit for all the calls waiting
// while the previous statement ran. A lone caller pays one round trip; under
// load the commit, the WAL flush and the replication slot's per-transaction
// work are shared, which is what lets PostgreSQL carry thousands of changes
// a second on two cores (docs/benchmarks.md).

// maxNoteBatch bounds one group-committed statement.
const maxNoteBatch = 256

// noteBatchTimeout bounds one group-committed statement, whoever waits on it.
const noteBatchTimeout = 30 * time.Second

type noteRequest struct {
	merchantID  int64
	referenceID string
	message     string
	at          time.Time
	done        chan noteResult // buffered: the committer never blocks on it
}

type noteResult struct {
	e   *dollr.Execution
	err error
}

type noteKey struct {
	merchantID  int64
	referenceID string
}

// noteCommitter is the group committer. At most one statement runs at a time
// per process, so batches never wait on each other's row locks here; batches
// of two servers lock their rows in id order and cannot deadlock either.
type noteCommitter struct {
	d       *DB
	mu      sync.Mutex
	pending []*noteRequest
	running bool // a commit loop is draining pending
}

// NoteGatewayMessage updates an in-flight execution's gateway message; see
// dollr.Store. The update and its public status row commit together, possibly
// in one transaction with other callers' updates (see noteCommitter).
func (d *DB) NoteGatewayMessage(ctx context.Context, merchantID int64, referenceID, message string, at time.Time) (*dollr.Execution, error) {
	if at.IsZero() {
		at = now()
	}
	if _, err := uuid.Parse(referenceID); err != nil {
		return nil, dollr.NotFound("execution")
	}
	r := &noteRequest{merchantID: merchantID, referenceID: referenceID, message: message,
		at: at.UTC().Truncate(time.Microsecond), done: make(chan noteResult, 1)}
	d.notes.submit(r)
	select {
	case res := <-r.done:
		return res.e, res.err
	case <-ctx.Done():
		// The update may still commit, as after any timeout mid-commit.
		return nil, internal("note gateway message", ctx.Err())
	}
}

func (c *noteCommitter) submit(r *noteRequest) {
	c.mu.Lock()
	c.pending = append(c.pending, r)
	start := !c.running
	c.running = true
	c.mu.Unlock()
	if start {
		go c.commitLoop()
	}
}

// commitLoop commits batches until nothing is pending.
func (c *noteCommitter) commitLoop() {
	for {
		c.mu.Lock()
		batch := c.take()
		if len(batch) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.commit(batch)
	}
}

// take removes the next batch from pending (c.mu held). A second request for
// an execution already in the batch waits for the next one, so one
// execution's messages apply in the order they were submitted.
func (c *noteCommitter) take() []*noteRequest {
	if len(c.pending) == 0 {
		return nil
	}
	batch := make([]*noteRequest, 0, min(len(c.pending), maxNoteBatch))
	seen := make(map[noteKey]bool, cap(batch))
	rest := c.pending[:0]
	for _, r := range c.pending {
		k := noteKey{r.merchantID, r.referenceID}
		if len(batch) == cap(batch) || seen[k] {
			seen[k] = true // later requests for k stay behind this one
			rest = append(rest, r)
			continue
		}
		seen[k] = true
		batch = append(batch, r)
	}
	clear(c.pending[len(rest):])
	c.pending = rest
	return batch
}

// noteBatchSQL applies a batch of messages in one statement. The rows are
// locked in id order (the FOR UPDATE sits above the sort), so two servers'
// batches cannot deadlock; READ COMMITTED re-checks the status condition on
// the row version a concurrent transition leaves, so a message never lands
// on a finished payment.
var noteBatchSQL = `WITH input AS (
	SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::timestamptz[])
		AS i(merchant_id, reference_id, message, at)
), locked AS (
	SELECT x.id AS locked_id, i.message AS new_message, i.at AS new_at
	FROM executions x JOIN input i ON x.merchant_id = i.merchant_id AND x.reference_id = i.reference_id
	WHERE x.status NOT IN (` + terminalStatuses + `)
	ORDER BY x.id
	FOR UPDATE OF x
), e AS (
	UPDATE executions x SET gateway_message = locked.new_message, updated_at = locked.new_at
	FROM locked WHERE x.id = locked.locked_id
	RETURNING ` + executionColumns + `
), p AS (
	UPDATE checkout_payment_intent_public_status ps
	SET gateway_message = nullif(e.gateway_message, ''), updated_at = e.updated_at
	FROM e WHERE ps.id = e.id
)
SELECT ` + executionColumns + ` FROM e`

var terminalStatuses = "'" + string(dollr.StatusCompleted) + "', '" + string(dollr.StatusFailed) + "'"

// commit runs one batch and answers every request in it.
func (c *noteCommitter) commit(batch []*noteRequest) {
	ctx, cancel := context.WithTimeout(c.d.ctx, noteBatchTimeout)
	defer cancel()
	merchants := make([]int64, len(batch))
	refs := make([]string, len(batch))
	messages := make([]string, len(batch))
	ats := make([]time.Time, len(batch))
	for i, r := range batch {
		merchants[i], refs[i], messages[i], ats[i] = r.merchantID, r.referenceID, r.message, r.at
	}
	updated := make(map[noteKey]*dollr.Execution, len(batch))
	var err error
	for attempt := 0; ; attempt++ {
		clear(updated)
		err = c.runBatch(ctx, merchants, refs, messages, ats, updated)
		// Only a deadlock with a writer outside this process can happen;
		// PostgreSQL rolled the statement back, so it is safe to run again.
		if pgCode(err) != codeDeadlock || attempt == 2 {
			break
		}
	}
	for _, r := range batch {
		if err != nil {
			r.done <- noteResult{err: internal("note gateway message", err)}
			continue
		}
		if e := updated[noteKey{r.merchantID, r.referenceID}]; e != nil {
			r.done <- noteResult{e: e}
			continue
		}
		r.done <- noteResult{err: c.whyNotUpdated(ctx, r)}
	}
}

func (c *noteCommitter) runBatch(ctx context.Context, merchants []int64, refs, messages []string, ats []time.Time,
	updated map[noteKey]*dollr.Execution) error {
	rows, err := c.d.pool.Query(ctx, noteBatchSQL, merchants, refs, messages, ats)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return err
		}
		updated[noteKey{e.MerchantID, e.ReferenceID}] = e
	}
	return rows.Err()
}

// whyNotUpdated explains a request the batch did not apply. A payment never
// leaves a final status, so a final status read now was final when the batch
// looked.
func (c *noteCommitter) whyNotUpdated(ctx context.Context, r *noteRequest) error {
	var status string
	err := c.d.pool.QueryRow(ctx, "SELECT status FROM executions WHERE merchant_id = $1 AND reference_id = $2",
		r.merchantID, r.referenceID).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return dollr.NotFound("execution")
	case err != nil:
		return internal("note gateway message", err)
	case !dollr.ExecutionStatus(status).Terminal():
		return dollr.NotFound("execution") // created after the batch looked
	}
	return dollr.Invalid("value_error", "execution is "+status+": its messages are final", "body", "reference_ids")
}
