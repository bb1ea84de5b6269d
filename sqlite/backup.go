package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"
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
		return info, fmt.Errorf("sqlite: backup check of %s: %w", file, err)
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

// Restore puts the backup file from in place of the database at path. The
// backup is checked first, as Backup checks its copies, and copied beside
// path under a temporary name. The database it replaces is kept, with its
// -wal and -shm files, under path's name plus aside's suffix, never deleted,
// so a restore can be undone; aside is "" when there was none. The -wal and
// -shm files go first: left in place, they would be applied to the restored
// database. The caller must make sure no process has the database open
// (cmd/dollr holds the data directory's lock).
func Restore(ctx context.Context, from, path string) (info BackupInfo, aside string, err error) {
	if fi, err := os.Stat(from); err != nil {
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	} else if !fi.Mode().IsRegular() {
		return info, "", fmt.Errorf("sqlite: restore: %s is not a backup file", from)
	}
	if same, _ := sameFile(from, path); same {
		return info, "", fmt.Errorf("sqlite: restore: %s is the database itself", from)
	}
	if info, err = checkBackup(ctx, from); err != nil {
		return info, "", err
	}
	tmp := path + "." + rand.Text()[:8] + ".partial"
	if err := copyFile(from, tmp); err != nil {
		os.Remove(tmp)
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	}
	defer os.Remove(tmp) // a no-op once renamed
	if _, err := os.Stat(path); err == nil {
		aside = path + ".before-restore-" + time.Now().UTC().Format("20060102T150405.000Z")
		for _, suffix := range []string{"-wal", "-shm", ""} {
			if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return info, aside, fmt.Errorf("sqlite: restore: keeping the replaced database: %w", err)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return info, aside, fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := syncFile(filepath.Dir(path)); err != nil && runtime.GOOS != "windows" {
		return info, aside, fmt.Errorf("sqlite: restore: %w", err)
	}
	return info, aside, nil
}

// sameFile reports whether a and b name one file.
func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(fa, fb), nil
}

// copyFile copies from into a new owner-only file to, synced.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
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
