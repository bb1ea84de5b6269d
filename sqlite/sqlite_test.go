package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/sqlite"
	"github.com/dollr/dollr/storetest"
)

func open(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) dollr.Store {
		return open(t, filepath.Join(t.TempDir(), "dollr.db"))
	})
}
