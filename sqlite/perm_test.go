//go:build unix

package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dollr/dollr"
)

// The database holds the token-signing secrets: its files are the owner's
// alone, whatever the data directory's mode, also when an older install made
// them world-readable.
func TestDatabaseFilesOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // as a plain mkdir or a volume leaves it
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dollr.db")
	check := func(when string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("%s: %s has mode %o, want 600", when, filepath.Base(p), perm)
			}
		}
	}
	db := open(t, path)
	if err := db.CreateMerchant(t.Context(), &dollr.Merchant{Name: "m", ClientID: "c", ClientSecretHash: "00"}); err != nil {
		t.Fatal(err)
	}
	check("new database")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	open(t, path)
	check("reopened after a chmod 644")
}
