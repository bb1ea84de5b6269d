package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dollr/dollr"
)

const executionColumns = `id, merchant_id, reference_id, session_id, source_id, source_type, payment_account_id,
	payment_method, status, payer_amount, payer_currency, payee_amount, payee_currency, operation_type,
	provider_transaction_id, gateway_message, wallet_message, client_secret, requires_action, request_hash,
	created_at, updated_at`

func scanExecution(row scanner) (*dollr.Execution, error) {
	var e dollr.Execution
	var typ, status string
	var payer, payee, created, updated int64
	err := row.Scan(&e.ID, &e.MerchantID, &e.ReferenceID, &e.SessionID, &e.SourceID, &typ, &e.PaymentAccountID,
		&e.PaymentMethod, &status, &payer, &e.PayerCurrency, &payee, &e.PayeeCurrency, &e.OperationType,
		&e.ProviderTransactionID, &e.GatewayMessage, &e.WalletMessage, &e.ClientSecret, &e.RequiresAction, &e.RequestHash,
		&created, &updated)
	if err != nil {
		return nil, err
	}
	e.SourceType, e.Status = dollr.SourceType(typ), dollr.ExecutionStatus(status)
	e.PayerAmount, e.PayeeAmount = dollr.Amount(payer), dollr.Amount(payee)
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &e, nil
}

// Execution returns the merchant's execution with referenceID.
func (db *DB) Execution(ctx context.Context, merchantID int64, referenceID string) (*dollr.Execution, error) {
	e, err := scanExecution(db.queryRow(ctx, `SELECT `+executionColumns+` FROM executions
		WHERE merchant_id = ? AND reference_id = ?`, merchantID, referenceID))
	if err != nil {
		return nil, notFound(err, "execution")
	}
	return e, nil
}

// ExecutionByID returns the execution with id, whatever its merchant (for job runners).
func (db *DB) ExecutionByID(ctx context.Context, id int64) (*dollr.Execution, error) {
	e, err := scanExecution(db.queryRow(ctx, `SELECT `+executionColumns+` FROM executions WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "execution")
	}
	return e, nil
}

// LatestExecutionForSource returns the newest execution against a source.
func (db *DB) LatestExecutionForSource(ctx context.Context, merchantID, sourceID int64) (*dollr.Execution, error) {
	e, err := scanExecution(db.queryRow(ctx, `SELECT `+executionColumns+` FROM executions
		WHERE source_id = ? AND merchant_id = ? ORDER BY id DESC LIMIT 1`, sourceID, merchantID))
	if err != nil {
		return nil, notFound(err, "execution")
	}
	return e, nil
}

// RecentExecutionTimes returns the creation times of a source's newest n
// executions, newest first; see dollr.Store.
func (db *DB) RecentExecutionTimes(ctx context.Context, merchantID, sourceID int64, n int) ([]time.Time, error) {
	rows, err := db.query(ctx, `SELECT created_at FROM executions
		WHERE source_id = ? AND merchant_id = ? ORDER BY id DESC LIMIT ?`, sourceID, merchantID, max(n, 0))
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var created int64
		if err := rows.Scan(&created); err != nil {
			return nil, internal(err)
		}
		out = append(out, fromMicros(created))
	}
	if err := rows.Err(); err != nil {
		return nil, internal(err)
	}
	return out, nil
}

// sessionUsed is the error for a second execution on one session.
func sessionUsed() error {
	const msg = "session has already been used"
	return &dollr.Error{Code: dollr.ECONFLICT, Message: msg,
		Fields: []dollr.FieldError{{Loc: []any{"body", "session_id"}, Msg: msg, Type: "value_error"}}}
}

// CreateExecution stores e with its public status row and jobs, and moves its
// source, in one transaction; see dollr.Store.
func (db *DB) CreateExecution(ctx context.Context, e *dollr.Execution, jobs []dollr.Job) (*dollr.Execution, bool, error) {
	// A retry is answered from the read pool without queueing for the writer.
	if existing, err := db.Execution(ctx, e.MerchantID, e.ReferenceID); err == nil {
		return existing, false, nil
	} else if !dollr.IsNotFound(err) {
		return nil, false, err
	}

	var stored *dollr.Execution
	created := false
	err := db.update(ctx, func(tx *tx) error {
		// Checked again under the write lock: this is what makes the key
		// idempotent under any concurrency.
		existing, err := scanExecution(tx.queryRow(ctx, `SELECT `+executionColumns+` FROM executions
			WHERE merchant_id = ? AND reference_id = ?`, e.MerchantID, e.ReferenceID))
		if err == nil {
			stored = existing
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return internal(err)
		}
		var used int
		if err := tx.queryRow(ctx, `SELECT count(*) FROM executions WHERE session_id = ?`, e.SessionID).Scan(&used); err != nil {
			return internal(err)
		}
		if used > 0 {
			return sessionUsed()
		}
		// Under the write lock, so two sessions of one source never both start a payment.
		var sourceStatus string
		if err := tx.queryRow(ctx, `SELECT status FROM sources WHERE id = ?`, e.SourceID).Scan(&sourceStatus); err != nil {
			return internal(err)
		}
		if err := dollr.SourceStatus(sourceStatus).CheckPayable("session_id"); err != nil {
			return err
		}

		s := *e
		if s.CreatedAt.IsZero() {
			s.CreatedAt = tx.now
		}
		if s.UpdatedAt.IsZero() {
			s.UpdatedAt = s.CreatedAt
		}
		s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC().Truncate(time.Microsecond), s.UpdatedAt.UTC().Truncate(time.Microsecond)
		err = tx.queryRow(ctx, `INSERT INTO executions (merchant_id, reference_id, session_id, source_id, source_type,
				payment_account_id, payment_method, status, payer_amount, payer_currency, payee_amount, payee_currency,
				operation_type, provider_transaction_id, gateway_message, wallet_message, client_secret, requires_action,
				request_hash, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			s.MerchantID, s.ReferenceID, s.SessionID, s.SourceID, string(s.SourceType), s.PaymentAccountID, s.PaymentMethod,
			string(s.Status), int64(s.PayerAmount), s.PayerCurrency, int64(s.PayeeAmount), s.PayeeCurrency, s.OperationType,
			s.ProviderTransactionID, s.GatewayMessage, s.WalletMessage, s.ClientSecret, s.RequiresAction, s.RequestHash,
			micros(s.CreatedAt), micros(s.UpdatedAt)).Scan(&s.ID)
		switch {
		case uniqueViolation(err, "executions.session_id"):
			return sessionUsed()
		case err != nil:
			return internal(err)
		}
		if err := tx.insertPublicStatus(ctx, s.PublicStatus()); err != nil {
			return err
		}
		if err := tx.moveSource(ctx, s.SourceID, s.Status, s.UpdatedAt); err != nil {
			return err
		}
		if err := tx.insertJobs(ctx, s.ID, jobs); err != nil {
			return err
		}
		stored, created = &s, true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return stored, created, nil
}

// ApplyTransition applies t; see dollr.Transition.
func (db *DB) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	if !dollr.CanTransition(t.From, t.To) {
		return nil, false, dollr.Invalid("value_error",
			fmt.Sprintf("illegal status transition %s -> %s", t.From, t.To), "body", "status")
	}
	var result *dollr.Execution
	applied := false
	err := db.update(ctx, func(tx *tx) error {
		e, err := scanExecution(tx.queryRow(ctx, `SELECT `+executionColumns+` FROM executions WHERE id = ?`, t.ExecutionID))
		if err != nil {
			return notFound(err, "execution")
		}
		if t.DoneJobID != 0 {
			if _, err := tx.exec(ctx, `DELETE FROM jobs WHERE id = ?`, t.DoneJobID); err != nil {
				return internal(err)
			}
		}
		result = e
		if e.Status != t.From {
			return nil // stale: a job ran twice; only DoneJobID goes
		}
		at := t.At
		if at.IsZero() {
			at = tx.now
		}
		e.Status, e.UpdatedAt = t.To, at.UTC().Truncate(time.Microsecond)
		if t.GatewayMessage != nil {
			e.GatewayMessage = *t.GatewayMessage
		}
		if t.ProviderTransactionID != nil {
			e.ProviderTransactionID = *t.ProviderTransactionID
		}
		if t.RequiresAction != nil {
			e.RequiresAction = *t.RequiresAction
		}
		_, err = tx.exec(ctx, `UPDATE executions SET status = ?, updated_at = ?, gateway_message = ?,
			provider_transaction_id = ?, requires_action = ? WHERE id = ?`,
			string(e.Status), micros(e.UpdatedAt), e.GatewayMessage, e.ProviderTransactionID, e.RequiresAction, e.ID)
		if err != nil {
			return internal(err)
		}
		if err := tx.updatePublicStatus(ctx, e.PublicStatus()); err != nil {
			return err
		}
		if err := tx.moveSource(ctx, e.SourceID, e.Status, e.UpdatedAt); err != nil {
			return err
		}
		if err := tx.insertJobs(ctx, e.ID, t.Next); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return result, applied, nil
}

// moveSource makes the source follow its collection's status; a completed
// collection records when the source was paid.
func (tx *tx) moveSource(ctx context.Context, sourceID int64, status dollr.ExecutionStatus, at time.Time) error {
	var paidAt any
	if status == dollr.StatusCompleted {
		paidAt = at.UnixMicro()
	}
	_, err := tx.exec(ctx, `UPDATE sources SET status = ?, updated_at = ?, paid_at = coalesce(?, paid_at) WHERE id = ?`,
		string(dollr.SourceStatusFor(status)), at.UnixMicro(), paidAt, sourceID)
	return internal(err)
}

// NoteGatewayMessage updates an in-flight execution's gateway message; see dollr.Store.
func (db *DB) NoteGatewayMessage(ctx context.Context, merchantID int64, referenceID, message string, at time.Time) (*dollr.Execution, error) {
	var result *dollr.Execution
	err := db.update(ctx, func(tx *tx) error {
		e, err := scanExecution(tx.queryRow(ctx, `SELECT `+executionColumns+` FROM executions
			WHERE merchant_id = ? AND reference_id = ?`, merchantID, referenceID))
		if err != nil {
			return notFound(err, "execution")
		}
		if e.Status.Terminal() {
			return dollr.Invalid("value_error", "execution is "+string(e.Status)+": its messages are final", "body", "reference_ids")
		}
		if at.IsZero() {
			at = tx.now
		}
		e.GatewayMessage, e.UpdatedAt = message, at.UTC().Truncate(time.Microsecond)
		if _, err := tx.exec(ctx, `UPDATE executions SET gateway_message = ?, updated_at = ? WHERE id = ?`,
			e.GatewayMessage, micros(e.UpdatedAt), e.ID); err != nil {
			return internal(err)
		}
		if err := tx.updatePublicStatus(ctx, e.PublicStatus()); err != nil {
			return err
		}
		result = e
		return nil
	})
	return result, err
}
