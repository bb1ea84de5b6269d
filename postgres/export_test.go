package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// PoolQueryRow runs a query on the pool, for tests that look at a pooled
// session's state (its prepared statements, say).
func (d *DB) PoolQueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return d.pool.QueryRow(ctx, sql, args...)
}
