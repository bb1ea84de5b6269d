package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/postgres"
	"github.com/dollr/dollr/sqlite"
)

// sqliteFile is the database file inside the data directory.
const sqliteFile = "dollr.db"

// storeConfig chooses the system of record.
type storeConfig struct {
	DataDir     string // SQLite lives here, and credentials.json in either case
	DatabaseURL string // when set, PostgreSQL is the system of record
}

// openStore opens the system of record: PostgreSQL when a database URL is
// given (migrations applied, publication and replication slot created), else
// SQLite in dataDir (created 0700 if missing). The SQLite file is shared
// safely by a running server and a second process such as `dollr merchants
// create` (WAL mode).
func openStore(ctx context.Context, c storeConfig, log *slog.Logger) (dollr.Store, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if c.DatabaseURL != "" {
		return postgres.Open(ctx, c.DatabaseURL, postgres.Options{Logger: log})
	}
	db, err := sqlite.Open(ctx, filepath.Join(c.DataDir, sqliteFile))
	if err != nil {
		return nil, err
	}
	return db, nil
}

// databaseURLUsage documents --database-url for every command that opens the store.
const databaseURLUsage = "PostgreSQL URL (env DATABASE_URL); when set, PostgreSQL replaces the embedded SQLite store (docs/postgres.md)"
