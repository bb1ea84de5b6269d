package postgres_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
)

// A snapshot of a payment not yet executed, the usual case when a checkout
// page joins before its payer pays, must keep its prepared statements: pgx
// drops every statement of a batch that ends in an error, so a missing row
// reported as one made each such join prepare both statements again.
func TestPublicStatusMissingRowKeepsStatementsPrepared(t *testing.T) {
	db := openURL(t, pgtest.NewDatabase(t), postgres.Options{MaxConns: 1}) // one session to look into
	ctx := ctxT(t)
	var first time.Time
	for i := range 3 {
		if _, _, err := db.PublicStatus(ctx, 1, uuid.NewString()); !dollr.IsNotFound(err) {
			t.Fatalf("snapshot %d of a missing row: %v, want not found", i+1, err)
		}
		var prepared time.Time
		err := db.Pool().QueryRow(ctx, `SELECT prepare_time FROM pg_prepared_statements
			WHERE statement LIKE '%FROM checkout_payment_intent_public_status%FOR SHARE%'
			AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&prepared)
		if err != nil {
			t.Fatalf("after snapshot %d the snapshot's statement is not prepared: %v", i+1, err)
		}
		if i == 0 {
			first = prepared
		} else if !prepared.Equal(first) {
			t.Fatalf("snapshot %d prepared its statement again (at %v, first at %v)", i+1, prepared, first)
		}
	}
}
