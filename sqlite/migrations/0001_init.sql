-- Times are INTEGER unix microseconds (UTC): exact, compact and ordered, so
-- run_at and lease comparisons are plain integer comparisons. Amounts are
-- INTEGER hundredths (dollr.Amount): exact, unlike SQLite's REAL.

CREATE TABLE merchants (
	id                 INTEGER PRIMARY KEY,
	name               TEXT    NOT NULL,
	client_id          TEXT    NOT NULL UNIQUE,
	client_secret_hash TEXT    NOT NULL,
	created_at         INTEGER NOT NULL
);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE parties (
	id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stale job run deletes only its own id
	merchant_id  INTEGER NOT NULL REFERENCES merchants (id),
	name         TEXT    NOT NULL,
	phone        TEXT    NOT NULL,
	email        TEXT    NOT NULL,
	country_code TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	UNIQUE (merchant_id, phone)
);

-- source_counters hands out INV-YYYY-NNNNN / ORD-YYYY-NNNNN per merchant, type and year.
CREATE TABLE source_counters (
	merchant_id INTEGER NOT NULL REFERENCES merchants (id),
	source_type TEXT    NOT NULL,
	year        INTEGER NOT NULL,
	last        INTEGER NOT NULL,
	PRIMARY KEY (merchant_id, source_type, year)
) WITHOUT ROWID;

CREATE TABLE sources (
	id              INTEGER PRIMARY KEY,
	merchant_id     INTEGER NOT NULL REFERENCES merchants (id),
	type            TEXT    NOT NULL,
	number          TEXT    NOT NULL,
	status          TEXT    NOT NULL,
	currency        TEXT    NOT NULL,
	total_amount    INTEGER NOT NULL,
	items           TEXT    NOT NULL, -- JSON array of dollr.Item
	party_id        INTEGER NOT NULL REFERENCES parties (id),
	counterparty_id INTEGER NOT NULL,
	reference_id    TEXT    NOT NULL,
	note            TEXT    NOT NULL,
	due_date        INTEGER,
	paid_at         INTEGER,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (merchant_id, number)
);

-- checkout_configs holds how a source is paid: mode, redirect URLs, the hosted page token.
CREATE TABLE checkout_configs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stale job run deletes only its own id
	source_id    INTEGER NOT NULL UNIQUE REFERENCES sources (id),
	mode         TEXT    NOT NULL,
	success_url  TEXT    NOT NULL,
	cancel_url   TEXT    NOT NULL,
	hosted_token TEXT    UNIQUE, -- NULL unless HOSTED
	expires_at   INTEGER,
	created_at   INTEGER NOT NULL
);

CREATE TABLE sessions (
	id                 INTEGER PRIMARY KEY,
	merchant_id        INTEGER NOT NULL REFERENCES merchants (id),
	source_id          INTEGER NOT NULL REFERENCES sources (id),
	source_type        TEXT    NOT NULL,
	expires_at         INTEGER NOT NULL,
	payment_account_id INTEGER,
	created_at         INTEGER NOT NULL,
	updated_at         INTEGER NOT NULL
);

CREATE TABLE payment_accounts (
	id             INTEGER PRIMARY KEY,
	merchant_id    INTEGER NOT NULL REFERENCES merchants (id),
	party_id       INTEGER NOT NULL,
	account_name   TEXT    NOT NULL,
	provider       TEXT    NOT NULL,
	method         TEXT    NOT NULL,
	country_code   TEXT    NOT NULL,
	account_number TEXT    NOT NULL,
	operation_type TEXT    NOT NULL,
	is_active      INTEGER NOT NULL,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);

CREATE TABLE executions (
	id                      INTEGER PRIMARY KEY,
	merchant_id             INTEGER NOT NULL REFERENCES merchants (id),
	reference_id            TEXT    NOT NULL,
	session_id              INTEGER NOT NULL REFERENCES sessions (id),
	source_id               INTEGER NOT NULL REFERENCES sources (id),
	source_type             TEXT    NOT NULL,
	payment_account_id      INTEGER NOT NULL,
	payment_method          TEXT    NOT NULL,
	status                  TEXT    NOT NULL,
	payer_amount            INTEGER NOT NULL,
	payer_currency          TEXT    NOT NULL,
	payee_amount            INTEGER NOT NULL,
	payee_currency          TEXT    NOT NULL,
	operation_type          TEXT    NOT NULL,
	provider_transaction_id TEXT    NOT NULL,
	gateway_message         TEXT    NOT NULL,
	wallet_message          TEXT    NOT NULL,
	client_secret           TEXT    NOT NULL,
	requires_action         INTEGER NOT NULL,
	request_hash            TEXT    NOT NULL,
	created_at              INTEGER NOT NULL,
	updated_at              INTEGER NOT NULL,
	UNIQUE (merchant_id, reference_id), -- idempotency key
	UNIQUE (session_id)                 -- one execution per session
);
CREATE INDEX executions_by_source ON executions (source_id, id);

-- The browser-safe projection the realtime server publishes. Column names are
-- exactly dollr.PublicStatusColumns; the PostgreSQL types they stand for are in
-- the comments. Written in the same transaction as its execution.
CREATE TABLE checkout_payment_intent_public_status (
	id              INTEGER PRIMARY KEY REFERENCES executions (id), -- int8
	reference_id    TEXT    NOT NULL, -- uuid
	session_id      INTEGER NOT NULL, -- int8
	source_type     TEXT    NOT NULL, -- text
	source_id       INTEGER NOT NULL, -- int8
	status          TEXT    NOT NULL, -- text
	payer_amount    INTEGER NOT NULL, -- numeric(18,2), kept in hundredths
	payer_currency  TEXT    NOT NULL, -- text
	payment_method  TEXT    NOT NULL, -- text
	requires_action INTEGER NOT NULL, -- bool
	gateway_message TEXT,             -- text, NULL when empty
	created_at      INTEGER NOT NULL, -- timestamptz
	updated_at      INTEGER NOT NULL  -- timestamptz
);
CREATE UNIQUE INDEX public_status_by_session ON checkout_payment_intent_public_status (session_id);

CREATE TABLE jobs (
	id           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stale job run deletes only its own id
	kind         TEXT    NOT NULL,
	execution_id INTEGER NOT NULL,
	payload      TEXT    NOT NULL,
	run_at       INTEGER NOT NULL,
	leased_until INTEGER, -- NULL when not claimed
	attempts     INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_by_run_at ON jobs (run_at, id);

-- change_log is the outbox of the change feed, written in the same transaction
-- as every change of a published table. AUTOINCREMENT keeps seq from ever being
-- reused after pruning, and sqlite_sequence then holds the feed head.
CREATE TABLE change_log (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	commit_time INTEGER NOT NULL,
	schema_name TEXT    NOT NULL,
	table_name  TEXT    NOT NULL,
	type        TEXT    NOT NULL,
	record      TEXT,   -- JSON, NULL on DELETE
	old_record  TEXT    -- JSON, NULL on INSERT
);
