package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dollr/dollr"
)

// sourcePrefix is the number prefix of each source type.
var sourcePrefix = map[dollr.SourceType]string{dollr.SourceInvoice: "INV", dollr.SourceOrder: "ORD"}

// CreateCheckoutSource stores src with its checkout configuration and party,
// reusing the merchant's party with the same phone.
func (db *DB) CreateCheckoutSource(ctx context.Context, party *dollr.Party, src *dollr.Source) error {
	prefix, ok := sourcePrefix[src.Type]
	if !ok {
		return dollr.Invalid("value_error", fmt.Sprintf("unknown source type %q", src.Type), "body", "source_kind")
	}
	items, err := json.Marshal(src.Items)
	if err != nil {
		return internal(err)
	}
	return db.update(ctx, func(tx *tx) error {
		var partyID, partyCreated int64
		err := tx.queryRow(ctx, `SELECT id, created_at FROM parties WHERE merchant_id = ? AND phone = ?`,
			src.MerchantID, party.Phone).Scan(&partyID, &partyCreated)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			partyCreated = micros(tx.now)
			err = tx.queryRow(ctx, `INSERT INTO parties (merchant_id, name, phone, email, country_code, created_at)
				VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
				src.MerchantID, party.Name, party.Phone, party.Email, party.CountryCode, partyCreated).Scan(&partyID)
			if err != nil {
				return internal(err)
			}
		case err != nil:
			return internal(err)
		}

		year := tx.now.Year()
		var n int64
		err = tx.queryRow(ctx, `INSERT INTO source_counters (merchant_id, source_type, year, last) VALUES (?, ?, ?, 1)
			ON CONFLICT (merchant_id, source_type, year) DO UPDATE SET last = last + 1 RETURNING last`,
			src.MerchantID, string(src.Type), year).Scan(&n)
		if err != nil {
			return internal(err)
		}
		status := src.Status
		if status == "" {
			status = dollr.SourceActive
		}
		number := fmt.Sprintf("%s-%04d-%05d", prefix, year, n)

		var srcID, configID int64
		err = tx.queryRow(ctx, `INSERT INTO sources (merchant_id, type, number, status, currency, total_amount, items,
				party_id, counterparty_id, reference_id, note, due_date, paid_at, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			src.MerchantID, string(src.Type), number, string(status), src.Currency, int64(src.TotalAmount), string(items),
			partyID, src.CounterpartyID, src.ReferenceID, src.Note, microsPtr(src.DueDate), microsPtr(src.PaidAt),
			micros(tx.now), micros(tx.now)).Scan(&srcID)
		if err != nil {
			return internal(err)
		}
		err = tx.queryRow(ctx, `INSERT INTO checkout_configs (source_id, mode, success_url, cancel_url, hosted_token, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			srcID, src.Mode, src.SuccessURL, src.CancelURL, nullString(src.HostedToken), microsPtr(src.ExpiresAt), micros(tx.now)).Scan(&configID)
		if uniqueViolation(err, "checkout_configs.hosted_token") {
			return dollr.Errorf(dollr.ECONFLICT, "hosted token already in use")
		} else if err != nil {
			return internal(err)
		}

		party.ID, party.MerchantID, party.CreatedAt = partyID, src.MerchantID, fromMicros(partyCreated)
		src.ID, src.Number, src.Status, src.PartyID, src.CheckoutConfigID = srcID, number, status, partyID, configID
		src.CreatedAt, src.UpdatedAt = tx.now, tx.now
		return nil
	})
}

const sourceSelect = `SELECT s.id, s.merchant_id, s.type, s.number, s.status, s.currency, s.total_amount, s.items,
	s.party_id, s.counterparty_id, s.reference_id, s.note, s.due_date, s.paid_at, s.created_at, s.updated_at,
	c.id, c.mode, c.success_url, c.cancel_url, c.hosted_token, c.expires_at
	FROM sources s JOIN checkout_configs c ON c.source_id = s.id `

func scanSource(row scanner) (*dollr.Source, error) {
	var s dollr.Source
	var typ, status, items string
	var total, created, updated int64
	var due, paid, expires sql.NullInt64
	var token sql.NullString
	err := row.Scan(&s.ID, &s.MerchantID, &typ, &s.Number, &status, &s.Currency, &total, &items,
		&s.PartyID, &s.CounterpartyID, &s.ReferenceID, &s.Note, &due, &paid, &created, &updated,
		&s.CheckoutConfigID, &s.Mode, &s.SuccessURL, &s.CancelURL, &token, &expires)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(items), &s.Items); err != nil {
		return nil, fmt.Errorf("source %d items: %w", s.ID, err)
	}
	s.Type, s.Status, s.TotalAmount = dollr.SourceType(typ), dollr.SourceStatus(status), dollr.Amount(total)
	s.DueDate, s.PaidAt, s.ExpiresAt = fromMicrosPtr(due), fromMicrosPtr(paid), fromMicrosPtr(expires)
	s.CreatedAt, s.UpdatedAt = fromMicros(created), fromMicros(updated)
	s.HostedToken = token.String
	return &s, nil
}

// Source returns the merchant's source with id.
func (db *DB) Source(ctx context.Context, merchantID, id int64) (*dollr.Source, error) {
	s, err := scanSource(db.queryRow(ctx, sourceSelect+`WHERE s.id = ? AND s.merchant_id = ?`, id, merchantID))
	if err != nil {
		return nil, notFound(err, "source")
	}
	return s, nil
}

// SourceByHostedToken returns the source whose hosted checkout page has token.
func (db *DB) SourceByHostedToken(ctx context.Context, token string) (*dollr.Source, error) {
	if token == "" {
		return nil, dollr.NotFound("source")
	}
	s, err := scanSource(db.queryRow(ctx, sourceSelect+`WHERE c.hosted_token = ?`, token))
	if err != nil {
		return nil, notFound(err, "source")
	}
	return s, nil
}

// Party returns the merchant's party with id.
func (db *DB) Party(ctx context.Context, merchantID, id int64) (*dollr.Party, error) {
	var p dollr.Party
	var created int64
	err := db.queryRow(ctx, `SELECT id, merchant_id, name, phone, email, country_code, created_at
		FROM parties WHERE id = ? AND merchant_id = ?`, id, merchantID).
		Scan(&p.ID, &p.MerchantID, &p.Name, &p.Phone, &p.Email, &p.CountryCode, &created)
	if err != nil {
		return nil, notFound(err, "party")
	}
	p.CreatedAt = fromMicros(created)
	return &p, nil
}

// CreateSession stores s and sets its ID and timestamps.
func (db *DB) CreateSession(ctx context.Context, s *dollr.Session) error {
	return db.update(ctx, func(tx *tx) error {
		var account any
		if s.PaymentAccountID != nil {
			account = *s.PaymentAccountID
		}
		err := tx.queryRow(ctx, `INSERT INTO sessions (merchant_id, source_id, source_type, expires_at, payment_account_id, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			s.MerchantID, s.SourceID, string(s.SourceType), micros(s.ExpiresAt), account, micros(tx.now), micros(tx.now)).Scan(&s.ID)
		if err != nil {
			return internal(err)
		}
		s.CreatedAt, s.UpdatedAt = tx.now, tx.now
		return nil
	})
}

// Session returns the merchant's session with id.
func (db *DB) Session(ctx context.Context, merchantID, id int64) (*dollr.Session, error) {
	var s dollr.Session
	var typ string
	var expires, created, updated int64
	var account sql.NullInt64
	err := db.queryRow(ctx, `SELECT id, merchant_id, source_id, source_type, expires_at, payment_account_id, created_at, updated_at
		FROM sessions WHERE id = ? AND merchant_id = ?`, id, merchantID).
		Scan(&s.ID, &s.MerchantID, &s.SourceID, &typ, &expires, &account, &created, &updated)
	if err != nil {
		return nil, notFound(err, "session")
	}
	s.SourceType = dollr.SourceType(typ)
	s.ExpiresAt, s.CreatedAt, s.UpdatedAt = fromMicros(expires), fromMicros(created), fromMicros(updated)
	if account.Valid {
		s.PaymentAccountID = &account.Int64
	}
	return &s, nil
}

// CreatePaymentAccount stores a and sets its ID and timestamps.
func (db *DB) CreatePaymentAccount(ctx context.Context, a *dollr.PaymentAccount) error {
	return db.update(ctx, func(tx *tx) error {
		err := tx.queryRow(ctx, `INSERT INTO payment_accounts (merchant_id, party_id, account_name, provider, method,
				country_code, account_number, operation_type, is_active, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			a.MerchantID, a.PartyID, a.AccountName, a.Provider, a.Method, a.CountryCode, a.AccountNumber, a.OperationType,
			a.IsActive, micros(tx.now), micros(tx.now)).Scan(&a.ID)
		if err != nil {
			return internal(err)
		}
		a.CreatedAt, a.UpdatedAt = tx.now, tx.now
		return nil
	})
}

// PaymentAccount returns the merchant's payment account with id.
func (db *DB) PaymentAccount(ctx context.Context, merchantID, id int64) (*dollr.PaymentAccount, error) {
	var a dollr.PaymentAccount
	var created, updated int64
	err := db.queryRow(ctx, `SELECT id, merchant_id, party_id, account_name, provider, method, country_code,
			account_number, operation_type, is_active, created_at, updated_at
		FROM payment_accounts WHERE id = ? AND merchant_id = ?`, id, merchantID).
		Scan(&a.ID, &a.MerchantID, &a.PartyID, &a.AccountName, &a.Provider, &a.Method, &a.CountryCode,
			&a.AccountNumber, &a.OperationType, &a.IsActive, &created, &updated)
	if err != nil {
		return nil, notFound(err, "payment account")
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &a, nil
}
