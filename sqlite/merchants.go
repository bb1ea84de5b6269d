package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/dollr/dollr"
)

// Setting returns the value under key, storing value first if the key is absent.
func (db *DB) Setting(ctx context.Context, key, value string) (string, error) {
	var stored string
	err := db.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&stored)
	if err == nil {
		return stored, nil
	} else if !errors.Is(err, sql.ErrNoRows) {
		return "", internal(err)
	}
	err = db.update(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
			return err
		}
		return tx.queryRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&stored)
	})
	return stored, internal(err)
}

// CreateMerchant stores m and sets its ID and CreatedAt.
func (db *DB) CreateMerchant(ctx context.Context, m *dollr.Merchant) error {
	return db.update(ctx, func(tx *tx) error {
		var n int
		if err := tx.queryRow(ctx, `SELECT count(*) FROM merchants WHERE client_id = ?`, m.ClientID).Scan(&n); err != nil {
			return internal(err)
		}
		if n > 0 {
			return dollr.Errorf(dollr.ECONFLICT, "client id %q is already in use", m.ClientID)
		}
		err := tx.queryRow(ctx, `INSERT INTO merchants (name, client_id, client_secret_hash, created_at)
			VALUES (?, ?, ?, ?) RETURNING id`, m.Name, m.ClientID, m.ClientSecretHash, micros(tx.now)).Scan(&m.ID)
		if err != nil {
			return internal(err)
		}
		m.CreatedAt = tx.now
		return nil
	})
}

const merchantColumns = `id, name, client_id, client_secret_hash, created_at`

func scanMerchant(row scanner) (*dollr.Merchant, error) {
	var m dollr.Merchant
	var created int64
	if err := row.Scan(&m.ID, &m.Name, &m.ClientID, &m.ClientSecretHash, &created); err != nil {
		return nil, err
	}
	m.CreatedAt = fromMicros(created)
	return &m, nil
}

// Merchant returns the merchant with id.
func (db *DB) Merchant(ctx context.Context, id int64) (*dollr.Merchant, error) {
	m, err := scanMerchant(db.queryRow(ctx, `SELECT `+merchantColumns+` FROM merchants WHERE id = ?`, id))
	if err != nil {
		return nil, notFound(err, "merchant")
	}
	return m, nil
}

// MerchantByClientID returns the merchant owning an API client ID.
func (db *DB) MerchantByClientID(ctx context.Context, clientID string) (*dollr.Merchant, error) {
	m, err := scanMerchant(db.queryRow(ctx, `SELECT `+merchantColumns+` FROM merchants WHERE client_id = ?`, clientID))
	if err != nil {
		return nil, notFound(err, "merchant")
	}
	return m, nil
}

// Merchants lists every merchant in ID order.
func (db *DB) Merchants(ctx context.Context) ([]*dollr.Merchant, error) {
	rows, err := db.query(ctx, `SELECT `+merchantColumns+` FROM merchants ORDER BY id`)
	if err != nil {
		return nil, internal(err)
	}
	defer rows.Close()
	var out []*dollr.Merchant
	for rows.Next() {
		m, err := scanMerchant(rows)
		if err != nil {
			return nil, internal(err)
		}
		out = append(out, m)
	}
	return out, internal(rows.Err())
}
