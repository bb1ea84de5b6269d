package client

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

// TestWaitForCollectionHonoursRateLimit: against a real server limiting the
// merchant to one request a second (burst 5, which the set-up's four calls
// fit in), polling every few milliseconds soon meets 429 with Retry-After: 1.
// Each refusal is retried after the server's second, not the 5-20 ms poll
// pace, and the wait still ends with the final status.
func TestWaitForCollectionHonoursRateLimit(t *testing.T) {
	srv := startServer(t, "--sandbox-delay", "2s", "--api-rate-limit", "1", "--api-rate-burst", "5")
	c, _ := newTestClient(t, srv)
	ctx := testContext(t, time.Minute)
	p := prepareMoMo(t, ctx, c, phoneCompletes)
	if _, err := c.ExecuteCollection(ctx, p.request); err != nil {
		t.Fatal(err)
	}
	var r retries
	final, err := c.WaitForCollection(ctx, p.request.ReferenceID, fastPolling(&r))
	if err != nil || final.Status != dollr.StatusCompleted {
		t.Fatalf("WaitForCollection = %+v, %v", final, err)
	}
	events := r.all()
	limited := 0
	for i, e := range events {
		if e.Err == nil {
			continue // a recovery
		}
		var ae *APIError
		if StatusCode(e.Err) != http.StatusTooManyRequests || !errors.As(e.Err, &ae) || ae.RetryAfter != time.Second || e.RetryIn != time.Second {
			t.Fatalf("event %d = %+v; want a 429 retried after its Retry-After, 1s", i, e)
		}
		limited++
		// The next call came no sooner than the server asked (a lower
		// bound, which a slow machine cannot break).
		if i+1 < len(events) && events[i+1].At.Sub(e.At) < time.Second {
			t.Errorf("event %d came %s after the 429 of event %d, before its Retry-After", i+1, events[i+1].At.Sub(e.At), i)
		}
	}
	if limited == 0 || events[len(events)-1].Err != nil {
		t.Fatalf("OnRetry events %+v; want 429s, then the recovery", events)
	}
}
