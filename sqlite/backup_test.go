package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
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
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
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
	if fi.Mode().Perm() != 0o600 || fi.Size() != info.Bytes {
		t.Errorf("backup mode %v size %d; want 0600 and %d bytes", fi.Mode().Perm(), fi.Size(), info.Bytes)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".copy.db.*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	restored, err := sqlite.Open(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
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
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
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
		s, err := sqlite.Open(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
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
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
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
