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
	var info BackupInfo // zero on the early errors
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
	tmp := filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+"."+rand.Text()[:8]+".partial")
	if err := createEmpty(tmp); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	defer os.Remove(tmp) // after the link below it only drops the extra name

	if err := vacuumInto(ctx, path, tmp, false); err != nil {
		return info, err
	}
	info, err := checkBackup(ctx, tmp)
	if err != nil {
		return info, err
	}
	if err := syncFile(tmp); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	if err := linkNew(tmp, dest); err != nil {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	// The new name is durable once its directory is synced (Windows
	// cannot sync a directory, and does not need to).
	if err := syncFile(filepath.Dir(dest)); err != nil && runtime.GOOS != "windows" {
		return info, fmt.Errorf("sqlite: backup: %w", err)
	}
	return info, nil
}

// vacuumInto copies the database at path into the empty file dest; with
// readOnly the source is opened read-only, so that it is not changed (a
// writable connection's close would fold a -wal beside it into it).
func vacuumInto(ctx context.Context, path, dest string, readOnly bool) error {
	params := url.Values{"_pragma": {fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds())}}
	if readOnly {
		params.Set("mode", "ro")
	}
	src, err := sql.Open("sqlite", fileURI(path, params))
	if err != nil {
		return fmt.Errorf("sqlite: backup: %w", err)
	}
	defer src.Close()
	// The target is a plain name for SQLite, not a URI.
	if _, err := src.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("sqlite: backup of %s: %w", path, err)
	}
	return nil
}

// checkBackup opens a finished copy read-only, checks every page and reads
// what it holds.
func checkBackup(ctx context.Context, file string) (BackupInfo, error) {
	var info BackupInfo
	db, err := sql.Open("sqlite", fileURI(file, url.Values{"mode": {"ro"}}))
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

// Restore puts the backup file from in place of the database at path. from
// is read through SQLite (VACUUM INTO, so a -wal beside it counts, as it
// would for any reader) into a new file beside path, and that file, the one
// installed, is checked as Backup checks its copies. The database it replaces
// is kept as aside (with its -wal beside it as aside-wal), never deleted, so
// a restore can be undone; aside is "" when there was nothing to keep. The
// -wal, -shm and -journal files move first, and also when path itself is
// missing: left in place, SQLite would apply them to the restored database. A failure after
// the first move puts every moved file back. The caller must make sure no
// process has the database open (cmd/dollr holds the data directory's lock).
func Restore(ctx context.Context, from, path string) (info BackupInfo, aside string, err error) {
	if fi, err := os.Stat(from); err != nil {
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	} else if !fi.Mode().IsRegular() {
		return info, "", fmt.Errorf("sqlite: restore: %s is not a backup file", from)
	}
	if same, _ := sameFile(from, path); same {
		return info, "", fmt.Errorf("sqlite: restore: %s is the database itself", from)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+rand.Text()[:8]+".partial")
	if err := createEmpty(tmp); err != nil {
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	}
	defer os.Remove(tmp) // a no-op once renamed
	if err := vacuumInto(ctx, from, tmp, true); err != nil {
		return info, "", err
	}
	if info, err = checkBackup(ctx, tmp); err != nil {
		return info, "", err
	}
	if err := syncFile(tmp); err != nil {
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	}

	// The kept database and its journal files keep SQLite's naming
	// (<name>-wal beside <name>), so the kept set opens as it was.
	kept := path + ".before-restore-" + time.Now().UTC().Format("20060102T150405.000Z")
	var moved []string // journal suffixes ("" for the database) moved aside, in order
	undo := func() {
		for i := len(moved) - 1; i >= 0; i-- {
			os.Rename(kept+moved[i], path+moved[i])
		}
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal", ""} {
		if err := os.Rename(path+suffix, kept+suffix); err == nil {
			moved = append(moved, suffix)
		} else if !errors.Is(err, os.ErrNotExist) {
			undo()
			return info, "", fmt.Errorf("sqlite: restore: keeping the replaced database: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		undo()
		return info, "", fmt.Errorf("sqlite: restore: %w", err)
	}
	if len(moved) > 0 {
		aside = kept
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

// createEmpty creates the empty owner-only file name, which must not exist.
// VACUUM INTO accepts an existing file only if it is empty: made first, the
// copy has this mode from its first byte.
func createEmpty(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// linkNew gives the file tmp the new name dest, failing if dest exists. A hard
// link fails if dest appeared meanwhile; where the file system has no hard
// links (FAT, some network and FUSE mounts) a rename after a last check does,
// with a small window for a file appearing in between.
func linkNew(tmp, dest string) error {
	err := os.Link(tmp, dest)
	if err == nil || errors.Is(err, os.ErrExist) {
		return err
	}
	if _, serr := os.Lstat(dest); serr == nil {
		return fmt.Errorf("%s exists; a backup never overwrites a file", dest)
	} else if !errors.Is(serr, os.ErrNotExist) {
		return serr
	}
	return os.Rename(tmp, dest)
}

// fileURI is path as an SQLite URI with the given parameters, its characters
// escaped: in a plain name, '?' or '#' would cut the path short and the
// parameters would be lost (mode=ro, and SQLite would create another file).
func fileURI(path string, params url.Values) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	p := filepath.ToSlash(abs)
	if filepath.VolumeName(abs) != "" { // C:/x becomes /C:/x
		p = "/" + p
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: params.Encode()}
	return u.String()
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
