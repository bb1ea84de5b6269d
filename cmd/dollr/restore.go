package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dollr/dollr/internal/dirlock"
	"github.com/dollr/dollr/sqlite"
)

func init() {
	register("restore", command{
		Summary: "put a backup in place of the SQLite store, with the server stopped: restore --from FILE",
		Run:     runRestore,
	})
}

func runRestore(ctx context.Context, args []string) int {
	fs := newFlagSet("restore", "dollr restore --from FILE [--data-dir DIR]", `
Puts a backup made by 'dollr backup' in place of the data directory's SQLite
store (dollr.db). The backup is read through SQLite (a -wal beside it counts)
into a new file, which is checked (SQLite's integrity check, and the tables
read) before it takes dollr.db's place. The store it replaces is kept beside
it, with its -wal and -shm files, as dollr.db.before-restore-<time>: nothing
is deleted, so a restore can be undone.

Every server and command using the data directory must be stopped: restore
refuses while one has the store open (they hold a lock on dollr.lock), and
'dollr serve' refuses to start while a restore runs. The directory is created
if missing, for a restore on a new machine; put the credentials.json kept with
the backup in it.

With PostgreSQL, restore with pg_restore instead (docs/backup.md).`)
	from := fs.String("from", "", "the backup file (required)")
	dataDir := fs.String("data-dir", envOr("DOLLR_DATA_DIR", "./dollr-data"), "data directory of 'dollr serve' (env DOLLR_DATA_DIR)")
	databaseURL := databaseURLFlag(fs, "PostgreSQL URL: refused, since pg_restore restores PostgreSQL (env DATABASE_URL)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *from == "" {
		fmt.Fprintln(os.Stderr, "dollr restore: --from is required")
		return 2
	}
	if *databaseURL != "" {
		return refusePostgres("restore", "pg_restore")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "dollr restore: %v\n", err)
		return 1
	}
	lock, err := dirlock.Exclusive(*dataDir)
	if errors.Is(err, dirlock.ErrBusy) {
		fmt.Fprintf(os.Stderr, "dollr restore: a dollr process has the store in %s open (it holds %s); stop it, then restore\n", *dataDir, dirlock.FileName)
		return 1
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "dollr restore: %v\n", err)
		return 1
	}
	defer lock.Release()
	if !dirlock.Supported {
		fmt.Fprintln(os.Stderr, "dollr restore: this system cannot tell whether a server has the store open; make sure none runs")
	}
	path := filepath.Join(*dataDir, sqliteFile)
	info, aside, err := sqlite.Restore(ctx, *from, path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr restore: %v\n", err)
		return 1
	}
	fmt.Printf("restored %s into %s: %d merchants, %d payments, %d pending sandbox steps; integrity check ok\n",
		*from, path, info.Merchants, info.Executions, info.Pending)
	if aside != "" {
		fmt.Printf("the store it replaced is kept as %s\n", aside)
	}
	if _, err := os.Stat(filepath.Join(*dataDir, credentialsFile)); errors.Is(err, os.ErrNotExist) {
		fmt.Printf("%s has no %s: put the one kept with the backup there before 'dollr serve', or the server makes a new sandbox merchant\n",
			*dataDir, credentialsFile)
	}
	return 0
}
