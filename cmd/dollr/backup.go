package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dollr/dollr/internal/dirlock"
	"github.com/dollr/dollr/sqlite"
)

func init() {
	register("backup", command{
		Summary: "copy the SQLite store, while the server runs, into one checked file: backup --out FILE",
		Run:     runBackup,
	})
}

func runBackup(ctx context.Context, args []string) int {
	fs := newFlagSet("backup", "dollr backup --out FILE [--data-dir DIR]", `
Copies the SQLite store of a data directory (dollr.db) into FILE while
'dollr serve' keeps running: one consistent moment of every payment, status
change and pending sandbox step, without stopping writes. The copy is checked
(SQLite's integrity check, and the tables read) before it is given its name,
so FILE is either a whole backup or absent (a killed run can leave a hidden
.FILE.<random>.partial beside it, which can be deleted); an existing FILE is
never overwritten. FILE is readable by its owner only: it holds the secrets that sign
every token.

To restore: stop the server, then 'dollr restore --from FILE'. Keep
credentials.json with your backups: it holds the sandbox merchant's client
secret, which the store keeps only as a hash.

With PostgreSQL, back up with pg_dump instead (docs/backup.md).`)
	out := fs.String("out", "", "the backup file to write (required; must not exist)")
	dataDir := fs.String("data-dir", envOr("DOLLR_DATA_DIR", "./dollr-data"), "data directory of 'dollr serve' (env DOLLR_DATA_DIR)")
	databaseURL := databaseURLFlag(fs, "PostgreSQL URL: refused, since pg_dump backs PostgreSQL up (env DATABASE_URL)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "dollr backup: --out is required")
		return 2
	}
	if *databaseURL != "" {
		return refusePostgres("backup", "pg_dump")
	}
	path, err := existingSQLite(*dataDir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr backup: %v\n", err)
		return 1
	}
	// Shared, as a server's: a backup may run beside servers, not beside a
	// restore replacing the file.
	lock, err := dirlock.Shared(*dataDir)
	if errors.Is(err, dirlock.ErrBusy) {
		fmt.Fprintf(os.Stderr, "dollr backup: a restore is running on %s; back up once it is done\n", *dataDir)
		return 1
	} else if err != nil {
		fmt.Fprintf(os.Stderr, "dollr backup: %v\n", err)
		return 1
	}
	defer lock.Release()
	fmt.Fprintf(os.Stderr, "backing up %s to %s ...\n", path, *out)
	start := time.Now()
	info, err := sqlite.Backup(ctx, path, *out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr backup: %v\n", err)
		return 1
	}
	fmt.Printf("backed up %s to %s in %s: %d merchants, %d payments, %d pending sandbox steps, %s; integrity check ok\n",
		path, *out, time.Since(start).Round(time.Millisecond), info.Merchants, info.Executions, info.Pending, bytesIEC(info.Bytes))
	return 0
}

// refusePostgres is the answer of a command that works on the SQLite file
// (backup, restore) to a PostgreSQL store, whose own tool does the job.
func refusePostgres(command, tool string) int {
	fmt.Fprintf(os.Stderr, "dollr %s: the store is PostgreSQL (--database-url or DATABASE_URL); use %s instead, see docs/backup.md\n", command, tool)
	return 2
}
