package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dollr/dollr"
	"github.com/jackc/pgx/v5"
)

// Setting returns the value under key, storing value first if absent.
func (d *DB) Setting(ctx context.Context, key, value string) (string, error) {
	var v string
	// One statement: insert if absent, then read whichever value won. A
	// concurrent inserter's row is seen once its insert has committed, because
	// ON CONFLICT waits for it.
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT value FROM settings WHERE key = $1", key).Scan(&v)
	})
	return v, internal("setting", err)
}

func (d *DB) CreateMerchant(ctx context.Context, m *dollr.Merchant) error {
	created := now()
	err := d.pool.QueryRow(ctx, `INSERT INTO merchants (name, client_id, client_secret_hash, created_at)
		VALUES ($1, $2, $3, $4) RETURNING id`, m.Name, m.ClientID, m.ClientSecretHash, created).Scan(&m.ID)
	if pgCode(err) == codeUniqueViolation {
		return dollr.Errorf(dollr.ECONFLICT, "client id %q is already in use", m.ClientID)
	}
	if err != nil {
		return internal("create merchant", err)
	}
	m.CreatedAt = created
	return nil
}

const merchantColumns = "id, name, client_id, client_secret_hash, created_at"

func scanMerchant(row pgx.Row) (*dollr.Merchant, error) {
	m := &dollr.Merchant{}
	if err := row.Scan(&m.ID, &m.Name, &m.ClientID, &m.ClientSecretHash, &m.CreatedAt); err != nil {
		return nil, err
	}
	m.CreatedAt = utc(m.CreatedAt)
	return m, nil
}

func (d *DB) Merchant(ctx context.Context, id int64) (*dollr.Merchant, error) {
	m, err := scanMerchant(d.pool.QueryRow(ctx, "SELECT "+merchantColumns+" FROM merchants WHERE id = $1", id))
	return m, notFound(err, "merchant", "merchant")
}

func (d *DB) MerchantByClientID(ctx context.Context, clientID string) (*dollr.Merchant, error) {
	m, err := scanMerchant(d.pool.QueryRow(ctx, "SELECT "+merchantColumns+" FROM merchants WHERE client_id = $1", clientID))
	return m, notFound(err, "merchant", "merchant")
}

func (d *DB) Merchants(ctx context.Context) ([]*dollr.Merchant, error) {
	rows, err := d.pool.Query(ctx, "SELECT "+merchantColumns+" FROM merchants ORDER BY id")
	if err != nil {
		return nil, internal("merchants", err)
	}
	defer rows.Close()
	var ms []*dollr.Merchant
	for rows.Next() {
		m, err := scanMerchant(rows)
		if err != nil {
			return nil, internal("merchants", err)
		}
		ms = append(ms, m)
	}
	return ms, internal("merchants", rows.Err())
}

// notFound maps pgx.ErrNoRows to Dollr's "<what> not found".
func notFound(err error, what, op string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return dollr.NotFound(what)
	}
	return internal(op, err)
}

// CreateCheckoutSource stores the source and its party, reusing the
// merchant's party with the same phone, and numbers the source per merchant,
// type and year.
func (d *DB) CreateCheckoutSource(ctx context.Context, party *dollr.Party, src *dollr.Source) error {
	prefix, ok := sourcePrefix[src.Type]
	if !ok {
		return dollr.Invalid("value_error", fmt.Sprintf("unknown source type %q", src.Type), "body", "source_kind")
	}
	created := now()
	items, err := json.Marshal(src.Items)
	if err != nil {
		return internal("create checkout source", err)
	}
	if src.Items == nil {
		items = []byte("[]")
	}
	var hostedToken *string
	if src.HostedToken != "" {
		hostedToken = &src.HostedToken
	}
	var (
		partyID, sourceID, configID int64
		partyCreated                = created
		number                      string
	)
	err = d.inTx(ctx, func(tx pgx.Tx) error {
		// The no-op update makes RETURNING yield the existing party too.
		err := tx.QueryRow(ctx, `INSERT INTO parties (merchant_id, name, phone, email, country_code, created_at)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (merchant_id, phone) DO UPDATE SET phone = EXCLUDED.phone
			RETURNING id, created_at`,
			src.MerchantID, party.Name, party.Phone, party.Email, party.CountryCode, created).Scan(&partyID, &partyCreated)
		if err != nil {
			return err
		}
		year := created.Year()
		var n int
		err = tx.QueryRow(ctx, `INSERT INTO source_numbers (merchant_id, source_type, year, last) VALUES ($1, $2, $3, 1)
			ON CONFLICT (merchant_id, source_type, year) DO UPDATE SET last = source_numbers.last + 1
			RETURNING last`, src.MerchantID, string(src.Type), year).Scan(&n)
		if err != nil {
			return err
		}
		number = fmt.Sprintf("%s-%04d-%05d", prefix, year, n)
		return tx.QueryRow(ctx, `INSERT INTO sources (merchant_id, type, number, status, currency, total_amount, items,
			party_id, counterparty_id, mode, reference_id, note, due_date, expires_at, success_url, cancel_url,
			checkout_config_id, hosted_token, paid_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
			nextval('checkout_config_ids'), $17, $18, $19, $19)
			RETURNING id, checkout_config_id`,
			src.MerchantID, string(src.Type), number, string(src.Status), src.Currency, numeric(src.TotalAmount), items,
			partyID, src.CounterpartyID, src.Mode, src.ReferenceID, src.Note, src.DueDate, src.ExpiresAt,
			src.SuccessURL, src.CancelURL, hostedToken, src.PaidAt, created).Scan(&sourceID, &configID)
	})
	if err != nil {
		if pgCode(err) == codeForeignKey {
			return dollr.NotFound("merchant")
		}
		return internal("create checkout source", err)
	}
	party.ID, party.MerchantID, party.CreatedAt = partyID, src.MerchantID, utc(partyCreated)
	src.ID, src.PartyID, src.Number, src.CheckoutConfigID = sourceID, partyID, number, configID
	src.CreatedAt, src.UpdatedAt = created, created
	return nil
}

// sourcePrefix starts a source number: INV-2026-00001, ORD-2026-00001.
var sourcePrefix = map[dollr.SourceType]string{dollr.SourceInvoice: "INV", dollr.SourceOrder: "ORD"}

const sourceColumns = `id, merchant_id, type, number, status, currency, total_amount, items, party_id, counterparty_id,
	mode, reference_id, note, due_date, expires_at, success_url, cancel_url, checkout_config_id,
	coalesce(hosted_token, ''), paid_at, created_at, updated_at`

// partyByIDSQL reads a merchant's party by its id.
const partyByIDSQL = `SELECT id, merchant_id, name, phone, email, country_code, created_at
		FROM parties WHERE merchant_id = $1 AND id = $2`

// sourceByIDSQL reads a source by its primary key alone: with merchant_id in
// the query too, a generic plan made on a young table could walk the
// (merchant_id, number) index instead and read every source of the merchant.
// Source checks the merchant.
const sourceByIDSQL = "SELECT " + sourceColumns + " FROM sources WHERE id = $1"

func scanSource(row pgx.Row) (*dollr.Source, error) {
	s := &dollr.Source{}
	var typ, status string
	var items []byte
	err := row.Scan(&s.ID, &s.MerchantID, &typ, &s.Number, &status, &s.Currency, amount{&s.TotalAmount}, &items,
		&s.PartyID, &s.CounterpartyID, &s.Mode, &s.ReferenceID, &s.Note, &s.DueDate, &s.ExpiresAt,
		&s.SuccessURL, &s.CancelURL, &s.CheckoutConfigID, &s.HostedToken, &s.PaidAt, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return nil, err
	}
	s.Type, s.Status = dollr.SourceType(typ), dollr.SourceStatus(status)
	if err := json.Unmarshal(items, &s.Items); err != nil {
		return nil, fmt.Errorf("source %d items: %w", s.ID, err)
	}
	if len(s.Items) == 0 {
		s.Items = nil
	}
	s.DueDate, s.ExpiresAt, s.PaidAt = utcPtr(s.DueDate), utcPtr(s.ExpiresAt), utcPtr(s.PaidAt)
	s.CreatedAt, s.UpdatedAt = utc(s.CreatedAt), utc(s.UpdatedAt)
	return s, nil
}

func (d *DB) Source(ctx context.Context, merchantID int64, id int64) (*dollr.Source, error) {
	s, err := scanSource(d.pool.QueryRow(ctx, sourceByIDSQL, id))
	if err == nil && s.MerchantID != merchantID {
		return nil, dollr.NotFound("source") // another merchant's
	}
	return s, notFound(err, "source", "source")
}

func (d *DB) SourceByHostedToken(ctx context.Context, token string) (*dollr.Source, error) {
	if token == "" {
		return nil, dollr.NotFound("source")
	}
	s, err := scanSource(d.pool.QueryRow(ctx, "SELECT "+sourceColumns+" FROM sources WHERE hosted_token = $1", token))
	return s, notFound(err, "source", "source")
}

func (d *DB) Party(ctx context.Context, merchantID, id int64) (*dollr.Party, error) {
	p := &dollr.Party{}
	err := d.pool.QueryRow(ctx, partyByIDSQL, merchantID, id).
		Scan(&p.ID, &p.MerchantID, &p.Name, &p.Phone, &p.Email, &p.CountryCode, &p.CreatedAt)
	if err != nil {
		return nil, notFound(err, "party", "party")
	}
	p.CreatedAt = utc(p.CreatedAt)
	return p, nil
}

func (d *DB) CreateSession(ctx context.Context, s *dollr.Session) error {
	created := now()
	err := d.pool.QueryRow(ctx, `INSERT INTO sessions (merchant_id, source_id, source_type, expires_at, payment_account_id, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id`,
		s.MerchantID, s.SourceID, string(s.SourceType), s.ExpiresAt, s.PaymentAccountID, created).Scan(&s.ID)
	if pgCode(err) == codeForeignKey {
		return dollr.NotFound("source")
	}
	if err != nil {
		return internal("create session", err)
	}
	s.CreatedAt, s.UpdatedAt = created, created
	return nil
}

func (d *DB) Session(ctx context.Context, merchantID, id int64) (*dollr.Session, error) {
	s := &dollr.Session{}
	var typ string
	err := d.pool.QueryRow(ctx, `SELECT id, merchant_id, source_id, source_type, expires_at, payment_account_id, created_at, updated_at
		FROM sessions WHERE merchant_id = $1 AND id = $2`, merchantID, id).
		Scan(&s.ID, &s.MerchantID, &s.SourceID, &typ, &s.ExpiresAt, &s.PaymentAccountID, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return nil, notFound(err, "session", "session")
	}
	s.SourceType = dollr.SourceType(typ)
	s.ExpiresAt, s.CreatedAt, s.UpdatedAt = utc(s.ExpiresAt), utc(s.CreatedAt), utc(s.UpdatedAt)
	return s, nil
}

func (d *DB) CreatePaymentAccount(ctx context.Context, a *dollr.PaymentAccount) error {
	created := now()
	err := d.pool.QueryRow(ctx, `INSERT INTO payment_accounts (merchant_id, party_id, account_name, provider, method,
		country_code, account_number, operation_type, is_active, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id`,
		a.MerchantID, a.PartyID, a.AccountName, a.Provider, a.Method, a.CountryCode, a.AccountNumber,
		a.OperationType, a.IsActive, created).Scan(&a.ID)
	if err != nil {
		if pgCode(err) == codeForeignKey {
			return dollr.NotFound("merchant")
		}
		return internal("create payment account", err)
	}
	a.CreatedAt, a.UpdatedAt = created, created
	return nil
}

func (d *DB) PaymentAccount(ctx context.Context, merchantID, id int64) (*dollr.PaymentAccount, error) {
	a := &dollr.PaymentAccount{}
	err := d.pool.QueryRow(ctx, `SELECT id, merchant_id, party_id, account_name, provider, method, country_code,
		account_number, operation_type, is_active, created_at, updated_at
		FROM payment_accounts WHERE merchant_id = $1 AND id = $2`, merchantID, id).
		Scan(&a.ID, &a.MerchantID, &a.PartyID, &a.AccountName, &a.Provider, &a.Method, &a.CountryCode,
			&a.AccountNumber, &a.OperationType, &a.IsActive, &a.CreatedAt, &a.UpdatedAt)
	if err != nil {
		return nil, notFound(err, "payment account", "payment account")
	}
	a.CreatedAt, a.UpdatedAt = utc(a.CreatedAt), utc(a.UpdatedAt)
	return a, nil
}
