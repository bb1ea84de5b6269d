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
	m := &dollr.Merchant{Name: "Backed up", ClientID: "backup-client", ClientSecretHash: strings.Repeat("a", 64)}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
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
