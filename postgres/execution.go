package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dollr/dollr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

const executionColumns = `id, merchant_id, reference_id, session_id, source_id, source_type, payment_account_id,
	payment_method, status, payer_amount, payer_currency, payee_amount, payee_currency, operation_type,
	provider_transaction_id, gateway_message, wallet_message, client_secret, requires_action, request_hash,
	created_at, updated_at`

// The hot lookups, named so TestLookupPlansOnYoungTables can check their
// plans (docs/postgres.md, "Prepared statements and young tables").
const (
	// executionByReferenceSQL is the Status API's, by the unique
	// (merchant_id, reference_id).
	executionByReferenceSQL     = "SELECT " + executionColumns + " FROM executions WHERE merchant_id = $1 AND reference_id = $2"
	latestExecutionForSourceSQL = "SELECT " + executionColumns + " FROM executions WHERE merchant_id = $1 AND source_id = $2 ORDER BY id DESC LIMIT 1"
	recentExecutionTimesSQL     = "SELECT created_at FROM executions WHERE merchant_id = $1 AND source_id = $2 ORDER BY id DESC LIMIT $3"
	// moveSourceSQL finds the source by its primary key alone (its merchant is
	// checked from what it returns): with merchant_id in the condition a
	// young-table plan walked the (merchant_id, number) key instead.
	moveSourceSQL = `UPDATE sources SET status = $1, updated_at = $2, paid_at = coalesce($3, paid_at)
		WHERE id = $4 RETURNING merchant_id`
)

func scanExecution(row pgx.Row) (*dollr.Execution, error) {
	e := &dollr.Execution{}
	var typ, status string
	err := row.Scan(&e.ID, &e.MerchantID, &e.ReferenceID, &e.SessionID, &e.SourceID, &typ, &e.PaymentAccountID,
		&e.PaymentMethod, &status, amount{&e.PayerAmount}, &e.PayerCurrency, amount{&e.PayeeAmount}, &e.PayeeCurrency,
		&e.OperationType, &e.ProviderTransactionID, &e.GatewayMessage, &e.WalletMessage, &e.ClientSecret,
		&e.RequiresAction, &e.RequestHash, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return nil, err
	}
	e.SourceType, e.Status = dollr.SourceType(typ), dollr.ExecutionStatus(status)
	e.CreatedAt, e.UpdatedAt = utc(e.CreatedAt), utc(e.UpdatedAt)
	return e, nil
}

// CreateExecution stores e with its public status row, moves its source and
// schedules jobs, in one transaction. Idempotency rests on the unique
// (merchant_id, reference_id) constraint: INSERT ... ON CONFLICT DO NOTHING
// waits for a concurrent inserter of the same key to commit, then does
// nothing, and the execution it stored is read back. That holds across
// connections and servers.
func (d *DB) CreateExecution(ctx context.Context, e *dollr.Execution, jobs []dollr.Job) (*dollr.Execution, bool, error) {
	if _, err := uuid.Parse(e.ReferenceID); err != nil {
		return nil, false, dollr.Invalid("uuid_parsing", "Input should be a valid UUID", "body", "reference_id")
	}
	stored := *e
	if stored.CreatedAt.IsZero() {
		stored.CreatedAt = now()
	}
	if stored.UpdatedAt.IsZero() {
		stored.UpdatedAt = stored.CreatedAt
	}
	stored.CreatedAt, stored.UpdatedAt = stored.CreatedAt.UTC().Truncate(time.Microsecond), stored.UpdatedAt.UTC().Truncate(time.Microsecond)
	var (
		existing *dollr.Execution
		created  bool
	)
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		existing, created = nil, false
		err := tx.QueryRow(ctx, `INSERT INTO executions (merchant_id, reference_id, session_id, source_id, source_type,
			payment_account_id, payment_method, status, payer_amount, payer_currency, payee_amount, payee_currency,
			operation_type, provider_transaction_id, gateway_message, wallet_message, client_secret, requires_action,
			request_hash, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
			ON CONFLICT DO NOTHING RETURNING id`,
			stored.MerchantID, stored.ReferenceID, stored.SessionID, stored.SourceID, string(stored.SourceType),
			stored.PaymentAccountID, stored.PaymentMethod, string(stored.Status), numeric(stored.PayerAmount),
			stored.PayerCurrency, numeric(stored.PayeeAmount), stored.PayeeCurrency, stored.OperationType,
			stored.ProviderTransactionID, stored.GatewayMessage, stored.WalletMessage, stored.ClientSecret,
			stored.RequiresAction, stored.RequestHash, stored.CreatedAt, stored.UpdatedAt).Scan(&stored.ID)
		if errors.Is(err, pgx.ErrNoRows) {
			// A conflict: the same reference_id (idempotent retry) or the
			// session already used by another execution.
			existing, err = scanExecution(tx.QueryRow(ctx, executionByReferenceSQL, stored.MerchantID, stored.ReferenceID))
			if errors.Is(err, pgx.ErrNoRows) {
				return sessionUsed()
			}
			return err
		}
		if err != nil {
			return err
		}
		// The row lock serialises executions of one source: a second session's
		// execution waits here, then sees the first one's PROCESSING and fails.
		var sourceStatus string
		if err := tx.QueryRow(ctx, `SELECT status FROM sources WHERE id = $1 FOR UPDATE`, stored.SourceID).Scan(&sourceStatus); err != nil {
			return err
		}
		if err := dollr.SourceStatus(sourceStatus).CheckPayable("session_id"); err != nil {
			return err
		}
		created = true
		if err := insertPublicStatus(ctx, tx, &stored); err != nil {
			return err
		}
		if err := moveSource(ctx, tx, stored.MerchantID, stored.SourceID, stored.Status, stored.UpdatedAt); err != nil {
			return err
		}
		return insertJobs(ctx, tx, stored.ID, jobs)
	})
	if err != nil {
		return nil, false, internal("create execution", err)
	}
	if !created {
		return existing, false, nil
	}
	if len(jobs) > 0 {
		d.signalJobs()
	}
	return &stored, true, nil
}

// sessionUsed is the error for a second execution on one session (the
// SQLite store's wording).
func sessionUsed() error {
	const msg = "session has already been used"
	return &dollr.Error{Code: dollr.ECONFLICT, Message: msg,
		Fields: []dollr.FieldError{{Loc: []any{"body", "session_id"}, Msg: msg, Type: "value_error"}}}
}

func insertPublicStatus(ctx context.Context, tx pgx.Tx, e *dollr.Execution) error {
	p := e.PublicStatus()
	_, err := tx.Exec(ctx, `INSERT INTO checkout_payment_intent_public_status (id, reference_id, session_id, source_type,
		source_id, status, payer_amount, payer_currency, payment_method, requires_action, gateway_message, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		p.ID, p.ReferenceID, p.SessionID, string(p.SourceType), p.SourceID, string(p.Status), numeric(p.PayerAmount),
		p.PayerCurrency, p.PaymentMethod, p.RequiresAction, nullString(p.GatewayMessage), p.CreatedAt, p.UpdatedAt)
	return err
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (d *DB) Execution(ctx context.Context, merchantID int64, referenceID string) (*dollr.Execution, error) {
	e, err := scanExecution(d.pool.QueryRow(ctx, executionByReferenceSQL, merchantID, referenceID))
	return e, notFound(err, "execution", "execution")
}

func (d *DB) ExecutionByID(ctx context.Context, id int64) (*dollr.Execution, error) {
	e, err := scanExecution(d.pool.QueryRow(ctx, "SELECT "+executionColumns+" FROM executions WHERE id = $1", id))
	return e, notFound(err, "execution", "execution")
}

func (d *DB) LatestExecutionForSource(ctx context.Context, merchantID, sourceID int64) (*dollr.Execution, error) {
	e, err := scanExecution(d.pool.QueryRow(ctx, latestExecutionForSourceSQL, merchantID, sourceID))
	return e, notFound(err, "execution", "execution")
}

// RecentExecutionTimes returns the creation times of a source's newest n
// executions, newest first; see dollr.Store.
func (d *DB) RecentExecutionTimes(ctx context.Context, merchantID, sourceID int64, n int) ([]time.Time, error) {
	rows, err := d.pool.Query(ctx, recentExecutionTimesSQL, merchantID, sourceID, max(n, 0))
	if err != nil {
		return nil, internal("recent execution times", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (time.Time, error) {
		var t time.Time
		err := r.Scan(&t)
		return t.UTC(), err
	})
	if err != nil {
		return nil, internal("recent execution times", err)
	}
	return out, nil
}

// ApplyTransition applies t under a row lock on the execution, so two
// workers applying the same transition (a job run twice) serialise and the
// second finds it stale.
func (d *DB) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	if !dollr.CanTransition(t.From, t.To) {
		return nil, false, dollr.Invalid("value_error", "illegal status transition "+string(t.From)+" -> "+string(t.To), "body", "status")
	}
	at := t.At
	if at.IsZero() {
		at = now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	var (
		e       *dollr.Execution
		applied bool
	)
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = scanExecution(tx.QueryRow(ctx, "SELECT "+executionColumns+" FROM executions WHERE id = $1 FOR UPDATE", t.ExecutionID))
		if errors.Is(err, pgx.ErrNoRows) {
			return dollr.NotFound("execution")
		}
		if err != nil {
			return err
		}
		applied = false
		if e.Status != t.From {
			// Stale: only the job that carried it is finished.
			return deleteJob(ctx, tx, t.DoneJobID)
		}
		e.Status, e.UpdatedAt = t.To, at
		if t.GatewayMessage != nil {
			e.GatewayMessage = *t.GatewayMessage
		}
		if t.ProviderTransactionID != nil {
			e.ProviderTransactionID = *t.ProviderTransactionID
		}
		if t.RequiresAction != nil {
			e.RequiresAction = *t.RequiresAction
		}
		if _, err := tx.Exec(ctx, `UPDATE executions SET status = $2, updated_at = $3, gateway_message = $4,
			provider_transaction_id = $5, requires_action = $6 WHERE id = $1`,
			e.ID, string(e.Status), e.UpdatedAt, e.GatewayMessage, e.ProviderTransactionID, e.RequiresAction); err != nil {
			return err
		}
		p := e.PublicStatus()
		if _, err := tx.Exec(ctx, `UPDATE checkout_payment_intent_public_status SET status = $2, requires_action = $3,
			gateway_message = $4, updated_at = $5 WHERE id = $1`,
			p.ID, string(p.Status), p.RequiresAction, nullString(p.GatewayMessage), p.UpdatedAt); err != nil {
			return err
		}
		if err := moveSource(ctx, tx, e.MerchantID, e.SourceID, e.Status, at); err != nil {
			return err
		}
		if err := deleteJob(ctx, tx, t.DoneJobID); err != nil {
			return err
		}
		applied = true
		return insertJobs(ctx, tx, e.ID, t.Next)
	})
	if err != nil {
		return nil, false, internal("apply transition", err)
	}
	if applied && len(t.Next) > 0 {
		d.signalJobs()
	}
	return e, applied, nil
}

// moveSource gives the source the status its collection implies, and the
// payment time once it completed.
func moveSource(ctx context.Context, tx pgx.Tx, merchantID, sourceID int64, st dollr.ExecutionStatus, at time.Time) error {
	var paidAt *time.Time // NULL leaves paid_at as it is
	if st == dollr.StatusCompleted {
		paidAt = &at
	}
	var owner int64
	err := tx.QueryRow(ctx, moveSourceSQL, string(dollr.SourceStatusFor(st)), at, paidAt, sourceID).Scan(&owner)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil // no such source: nothing to move, as before
	case err == nil && owner != merchantID:
		// The caller's transaction rolls the update back.
		return fmt.Errorf("source %d belongs to merchant %d, not %d", sourceID, owner, merchantID)
	}
	return err
}
