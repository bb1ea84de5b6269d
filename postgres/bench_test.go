package postgres_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
)

// BenchmarkCommitToFollow measures from the return of a status UPDATE's
// commit to its change reaching Follow's handler, through the slot.
func BenchmarkCommitToFollow(b *testing.B) {
	url := pgtest.NewDatabase(b)
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	m := &dollr.Merchant{Name: "bench", ClientID: "bench-" + newUUID(), ClientSecretHash: "h"}
	if err := db.CreateMerchant(ctx, m); err != nil {
		b.Fatal(err)
	}
	e, err := newPending(ctx, db, m)
	if err != nil {
		b.Fatal(err)
	}
	seen := make(chan time.Time, 1)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go db.Follow(fctx, 0, func(batch []dollr.Change) error {
		for _, c := range batch {
			if c.Type == dollr.ChangeUpdate {
				seen <- time.Now()
			}
		}
		return nil
	})
	lat := make([]time.Duration, 0, b.N)
	var msg string
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			msg = "a"
		} else {
			msg = "b"
		}
		if _, err := db.Pool().Exec(ctx, "UPDATE checkout_payment_intent_public_status SET gateway_message = $1 WHERE id = $2", msg, e.ID); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		select {
		case at := <-seen:
			lat = append(lat, at.Sub(committed))
		case <-time.After(30 * time.Second):
			b.Fatal("change never arrived")
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
