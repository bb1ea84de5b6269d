package postgres

import (
	"context"
	"errors"

	"github.com/dollr/dollr"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// PublicStatus returns the public status row and a feed position it
// reflects: every change with Seq <= seq is visible in the row.
//
// The position is read first (the WAL insert position, above the commit
// LSN of every transaction whose commit record is written), then the row.
// A transaction can have written its commit record and not yet become
// visible; FOR SHARE waits for any such writer of the row to finish and
// then returns the row as it left it, so the row is never older than seq.
//
// CommitTime is the clock when the row was read, after any writer of it
// finished: no earlier than the commit of the state returned.
func (d *DB) PublicStatus(ctx context.Context, sessionID int64, referenceID string) (*dollr.PublicStatus, uint64, error) {
	if _, err := uuid.Parse(referenceID); err != nil {
		return nil, 0, dollr.NotFound("execution")
	}
	b := &pgx.Batch{}
	var lsn int64
	b.Queue("SELECT (pg_current_wal_insert_lsn() - '0/0')::int8").QueryRow(func(row pgx.Row) error {
		return row.Scan(&lsn)
	})
	p := &dollr.PublicStatus{}
	var (
		typ, status string
		gateway     *string
		found       bool
	)
	b.Queue(`SELECT id, reference_id::text, session_id, source_type, source_id, status, payer_amount, payer_currency,
		payment_method, requires_action, gateway_message, created_at, updated_at, clock_timestamp()
		FROM checkout_payment_intent_public_status
		WHERE session_id = $1 AND reference_id = $2::uuid
		ORDER BY id DESC LIMIT 1
		FOR SHARE`, sessionID, referenceID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&p.ID, &p.ReferenceID, &p.SessionID, &typ, &p.SourceID, &status, amount{&p.PayerAmount},
			&p.PayerCurrency, &p.PaymentMethod, &p.RequiresAction, &gateway, &p.CreatedAt, &p.UpdatedAt, &p.CommitTime)
		if errors.Is(err, pgx.ErrNoRows) {
			// Not an error of the batch: pgx drops the prepared statements of a
			// batch that fails, and a missing row is the usual case (a checkout
			// page subscribes before its payer pays), so every such snapshot
			// would prepare both statements again.
			return nil
		}
		found = err == nil
		return err
	})
	if err := d.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, internal("public status", err)
	}
	if !found {
		return nil, 0, dollr.NotFound("execution")
	}
	p.SourceType, p.Status = dollr.SourceType(typ), dollr.ExecutionStatus(status)
	if gateway != nil {
		p.GatewayMessage = *gateway
	}
	p.CreatedAt, p.UpdatedAt, p.CommitTime = utc(p.CreatedAt), utc(p.UpdatedAt), utc(p.CommitTime)
	return p, uint64(lsn), nil
}
