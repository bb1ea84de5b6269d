package backends_test

import (
	"context"
	"os"
	"testing"

	"github.com/google/uuid"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestDatabaseSharedByStores: two stores opened on one database see each
// other's writes, and a new database starts empty.
func TestDatabaseSharedByStores(t *testing.T) {
	backends.Each(t, func(t *testing.T, b backends.Backend) {
		ctx := context.Background()
		db := b.NewDatabase(t)
		one, two := db.Open(t), db.Open(t)
		m := &dollr.Merchant{Name: "m", ClientID: uuid.NewString(), ClientSecretHash: "00"}
		if err := one.CreateMerchant(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got, err := two.Merchant(ctx, m.ID); err != nil || got.ClientID != m.ClientID {
			t.Fatalf("the second store reads %+v, %v", got, err)
		}
		if ms, err := b.Open(t).Merchants(ctx); err != nil || len(ms) != 0 {
			t.Fatalf("a new database has merchants %v, %v", ms, err)
		}
	})
}
