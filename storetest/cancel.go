package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// testCancelledWrites cancels writes at every moment of their life (an HTTP
// client that hangs up mid-request does this) and demands that the store stays
// writable and that a write reported as done is there. A SQLite driver can
// report a cancelled BEGIN that did start a transaction; left open, it made
// every later write fail until a restart.
func testCancelledWrites(t *testing.T, s dollr.Store) {
	const attempts = 3000
	deadline := time.Now().Add(20 * time.Second)
	var cancelled, done int
	for i := 0; i < attempts && time.Now().Before(deadline); i++ {
		m := &dollr.Merchant{
			Name:             fmt.Sprintf("Cancelled %d", i),
			ClientID:         fmt.Sprintf("cancelled-%d-%s", i, newUUID()),
			ClientSecretHash: fmt.Sprintf("%064x", i),
		}
		// Timeouts from 0 to 100 µs sweep the cancellation across BEGIN,
		// the statements and COMMIT.
		c, cancel := context.WithTimeout(ctx(t), time.Duration(i%100)*time.Microsecond)
		err := s.CreateMerchant(c, m)
		cancel()
		if err == nil {
			done++
			if _, err := s.MerchantByClientID(ctx(t), m.ClientID); err != nil {
				t.Fatalf("attempt %d: CreateMerchant returned nil, then MerchantByClientID: %v", i, err)
			}
		} else {
			cancelled++
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && c.Err() == nil {
				t.Fatalf("attempt %d: CreateMerchant with a live context: %v", i, err)
			}
		}
		if i%50 == 0 {
			// A write with a live context must always work.
			newMerchant(t, s)
		}
	}
	newMerchant(t, s)
	t.Logf("%d writes cancelled, %d done", cancelled, done)
}
