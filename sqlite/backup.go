package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
)

// BackupInfo describes a backup Backup wrote and checked.
type BackupInfo struct {
	Bytes      int64 // size of the backup file
	Merchants  int64
	Executions int64 // payments of every merchant
	Pending    int64 // sandbox steps still to run (in-flight payments resume from them after a restore)
}

// Backup writes a consistent copy of the database at path to dest, while
// servers may be writing to it: SQLite's VACUUM INTO reads one snapshot (one
// read transaction, which does not block the writer in WAL mode) into a new
// file. The copy is written beside dest under a temporary name, checked
// (integrity_check, and the tables read), synced, and only then linked as
// dest, so dest is either a whole, checked backup or absent. dest must not
// exist: a backup never overwrites a file. Like the database, the backup holds
// the secrets that sign every token, so it is made readable by its owner only.
func Backup(ctx context.Context, path, dest string) (BackupInfo, error) {
	var info BackupInfo
	if fi, err := os.Stat(path); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	} else if !fi.Mode().IsRegular() {
		return info, fmt.Errorf("sqlite: backup: %s is not a database file", path)
	}
	if _, err := os.Lstat(dest); err == nil {
		return info, fmt.Errorf("sqlite: backup: %s exists; a backup never overwrites a file", dest)
	} else if !errors.Is(err, os.ErrNotExist) {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	// VACUUM INTO accepts an existing file only if it is empty: creating it
	// first, owner-only, gives the backup that mode from its first byte.
	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+"."+rand.Text()[:8]+".partial")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	f.Close()
	defer os.Remove(tmp) // after the link below it only drops the extra name

	if err := vacuumInto(ctx, path, tmp); err != nil {
		return info, err
	}
	if info, err = checkBackup(ctx, tmp); err != nil {
		return info, err
	}
	if err := syncFile(tmp); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	// A hard link, unlike a rename, fails if dest appeared meanwhile.
	if err := os.Link(tmp, dest); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	// The new name is durable once its directory is synced (Windows
	// cannot sync a directory, and does not need to).
	if err := syncFile(filepath.Dir(dest)); err != nil && runtime.GOOS != "windows" {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	return info, nil
}

// vacuumInto copies the database at path into the empty file dest.
func vacuumInto(ctx context.Context, path, dest string) error {
	q := url.Values{"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())}}
	src, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer src.Close()
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("sqlite: backup of %s: %w", path, err)
	}
	return nil
}

// checkBackup opens a finished copy read-only, checks every page and reads
// what it holds.
func checkBackup(ctx context.Context, file string) (BackupInfo, error) {
	var info BackupInfo
	q := url.Values{"mode": {"ro"}}
	db, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		return info, fmt.Errorf("sqlite: backup check: %w", err)
	}
	defer db.Close()
	var result string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&result); err != nil {
		return info, fmt.Errorf("sqlite: backup check: %w", err)
	}
	if result != "ok" {
		return info, fmt.Errorf("sqlite: backup check: integrity_check says %q", result)
	}
	err = db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM merchants), (SELECT count(*) FROM executions),
		(SELECT count(*) FROM jobs)`).Scan(&info.Merchants, &info.Executions, &info.Pending)
	if err != nil {
		return info, fmt.Errorf("sqlite: backup check: not a dollr database? %w", err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		return info, fmt.Errorf("sqlite: backup check: %w", err)
	}
	info.Bytes = fi.Size()
	return info, nil
}

// syncFile flushes a file or directory to disk.
func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
