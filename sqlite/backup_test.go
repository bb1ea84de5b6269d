package sqlite_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/sqlite"
)

// TestBackup copies a live database (a writer still open on it) into a file
// that opens as a dollr store with the same records, owner-only; it refuses
// to overwrite a file or to read a database that is not there.
func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "dollr.db")
	db := openDB(t, path)
	defer db.Close()
	m := addMerchant(t, db, "Backed up")
	dest := filepath.Join(dir, "copy.db")
	info, err := sqlite.Backup(ctx, path, dest)
	if err != nil {
		t.Fatal(err)
	}
	if info.Merchants != 1 || info.Executions != 0 || info.Bytes == 0 {
		t.Errorf("backup info %+v, want one merchant, no executions, a size", info)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if (fi.Mode().Perm() != 0o600 && runtime.GOOS != "windows") || fi.Size() != info.Bytes {
		t.Errorf("backup mode %v size %d; want 0600 and %d bytes", fi.Mode().Perm(), fi.Size(), info.Bytes)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".copy.db.*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	restored := openDB(t, dest)
	defer restored.Close()
	got, err := restored.Merchant(ctx, m.ID)
	if err != nil || got.Name != "Backed up" {
		t.Fatalf("merchant %d in the backup: %+v, %v", m.ID, got, err)
	}

	if _, err := sqlite.Backup(ctx, path, dest); err == nil || !strings.Contains(err.Error(), "never overwrites") {
		t.Errorf("backup onto an existing file: %v, want a refusal", err)
	}
	if _, err := sqlite.Backup(ctx, filepath.Join(dir, "missing.db"), filepath.Join(dir, "other.db")); err == nil {
		t.Error("backup of a database that is not there: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !os.IsNotExist(err) {
		t.Errorf("backup created the missing source: %v", err)
	}
}

// TestRestore replaces a database with a backup, keeping the replaced one
// (with what was written after the backup) under a new name, and refuses a
// file that is not a sound dollr database, leaving the store as it was.
func TestRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "dollr.db")
	db := openDB(t, path)
	before := addMerchant(t, db, "Before")
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := sqlite.Backup(ctx, path, backup); err != nil {
		t.Fatal(err)
	}
	after := addMerchant(t, db, "After")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{garbage, path, filepath.Join(dir, "missing.db")} {
		if _, _, err := sqlite.Restore(ctx, from, path); err == nil {
			t.Errorf("restore from %s: no error", from)
		}
	}
	merchants := func(p string) []string {
		t.Helper()
		s := openDB(t, p)
		defer s.Close()
		var names []string
		for _, m := range []*dollr.Merchant{before, after} {
			if got, err := s.Merchant(ctx, m.ID); err == nil {
				names = append(names, got.Name)
			}
		}
		return names
	}
	if got := merchants(path); strings.Join(got, ",") != "Before,After" {
		t.Fatalf("after refused restores the store holds %v, want both merchants", got)
	}

	info, aside, err := sqlite.Restore(ctx, backup, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Merchants != 1 || aside == "" {
		t.Errorf("restore: %+v, aside %q; want one merchant and the old database kept", info, aside)
	}
	if got := merchants(path); strings.Join(got, ",") != "Before" {
		t.Errorf("the restored store holds %v, want only the merchant made before the backup", got)
	}
	if got := merchants(aside); strings.Join(got, ",") != "Before,After" {
		t.Errorf("the replaced store, kept as %s, holds %v, want both merchants", aside, got)
	}
	if fi, err := os.Stat(path); err != nil || (fi.Mode().Perm() != 0o600 && runtime.GOOS != "windows") {
		t.Errorf("restored file: %v, %v; want mode 0600", fi, err)
	}
}

// addMerchant stores a merchant called name.
func addMerchant(t *testing.T, db *sqlite.DB, name string) *dollr.Merchant {
	t.Helper()
	m := &dollr.Merchant{Name: name, ClientID: "client-" + name, ClientSecretHash: strings.Repeat("a", 64)}
	if err := db.CreateMerchant(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRestoreReadsTheBackupsWAL: a backup file with a -wal beside it (a
// store copied from a server that crashed, or a store kept by an earlier
// restore) is restored with what its WAL holds, and a stale -wal left at the
// target without its database is moved away rather than applied to the
// restored one. Names with '#', '?' and spaces work as any other.
func TestRestoreReadsTheBackupsWAL(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openDB(t, filepath.Join(dir, "live.db"))
	addMerchant(t, db, "In the file")
	base := filepath.Join(dir, "backup #1?.db")
	if _, err := sqlite.Backup(ctx, filepath.Join(dir, "live.db"), base); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A crashed copy: one more merchant only in base's WAL, the files copied
	// while the writer is still open.
	walURI := url.URL{Scheme: "file", Path: base, RawQuery: url.Values{"_pragma": {"journal_mode(WAL)", "wal_autocheckpoint(0)"}}.Encode()}
	w, err := sql.Open("sqlite", walURI.String())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec(`INSERT INTO merchants (name, client_id, client_secret_hash, created_at) VALUES ('In the WAL', 'wal-client', ?, 0)`, strings.Repeat("d", 64)); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed copy.db")
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(base + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if suffix == "-wal" && len(b) == 0 {
			t.Fatal("the WAL is empty: the test would not test anything")
		}
		if err := os.WriteFile(crashed+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	target := filepath.Join(t.TempDir(), "dollr.db")
	// A stale WAL at the target, of another database, without its file.
	stale, err := os.ReadFile(crashed + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target+"-wal", stale, 0o600); err != nil {
		t.Fatal(err)
	}
	info, aside, err := sqlite.Restore(ctx, crashed, target)
	if err != nil {
		t.Fatal(err)
	}
	if info.Merchants != 2 {
		t.Errorf("restored %d merchants, want 2 (one of them only in the backup's WAL)", info.Merchants)
	}
	if _, err := os.Stat(target + "-wal"); !os.IsNotExist(err) {
		t.Errorf("the stale WAL is still beside the restored database: %v", err)
	}
	if _, err := os.Stat(aside + "-wal"); err != nil {
		t.Errorf("the stale WAL was not kept as %s-wal: %v", aside, err)
	}
	if _, err := os.Stat(crashed + "-wal"); err != nil {
		t.Errorf("restore changed the backup's own files: %v", err)
	}
	s := openDB(t, target)
	defer s.Close()
	var n int
	if ms, err := s.Merchants(ctx); err != nil {
		t.Fatal(err)
	} else {
		n = len(ms)
	}
	if n != 2 {
		t.Errorf("the restored store holds %d merchants, want 2", n)
	}
}

// openDB opens (creating) the store at path.
func openDB(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
