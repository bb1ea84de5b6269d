package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/sqlite"
)

// sqliteFile is the database file inside the data directory.
const sqliteFile = "dollr.db"

// openStore opens the system of record: SQLite in dataDir (created 0700 if
// missing). The file is shared safely by a running server and a second
// process such as `dollr merchants create` (WAL mode).
func openStore(ctx context.Context, dataDir string) (dollr.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dataDir, sqliteFile))
	if err != nil {
		return nil, err
	}
	return db, nil
}
