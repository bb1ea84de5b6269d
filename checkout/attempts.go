package checkout

import (
	"sync"
	"time"
)

// Each new payment can prompt a payer's phone, and anyone holding a link can
// press Pay, so new attempts per source are bounded: at most maxAttempts in
// any attemptWindow. A retried request (same reference_id) or a look at the
// payment in flight is not an attempt. The count lives in this process: with
// several servers each applies its own bound.
const (
	maxAttempts   = 10
	attemptWindow = 10 * time.Minute
)

// attempts remembers the recent attempt times of each source.
type attempts struct {
	mu       sync.Mutex
	bySource map[int64][]time.Time
}

// take records an attempt for source at now if the bound allows it; else it
// reports how long until the oldest recent attempt leaves the window.
func (a *attempts) take(source int64, now time.Time) (retryAfter time.Duration, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bySource == nil {
		a.bySource = map[int64][]time.Time{}
	}
	recent := a.recent(source, now)
	if len(recent) >= maxAttempts {
		return recent[0].Add(attemptWindow).Sub(now), false
	}
	a.bySource[source] = append(recent, now)
	if len(a.bySource) > 10_000 {
		// Forget sources whose attempts have all left the window, so
		// the map stays as small as the recent traffic.
		for id := range a.bySource {
			if len(a.recent(id, now)) == 0 {
				delete(a.bySource, id)
			}
		}
	}
	return 0, true
}

// recent drops source's attempts older than the window and returns the rest.
func (a *attempts) recent(source int64, now time.Time) []time.Time {
	ts := a.bySource[source]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= attemptWindow {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(a.bySource, source)
		return nil
	}
	a.bySource[source] = ts
	return ts
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
