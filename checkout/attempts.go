package checkout

import "time"

// Each new payment can prompt a payer's phone, and anyone holding a link can
// press Pay, so new payments per source are bounded: at most maxAttempts in
// any attemptWindow. They are counted from the store's executions against the
// source, so every server sharing the store applies one bound. A retried
// request (same reference_id) or a look at the payment in flight is not a new
// payment.
const (
	maxAttempts   = 10
	attemptWindow = 10 * time.Minute
)

// attemptWait says whether one more payment may start against a source whose
// newest executions were created at recent (newest first, at most
// maxAttempts), and if not, how long until the oldest of them leaves the
// window.
func attemptWait(recent []time.Time, now time.Time) (time.Duration, bool) {
	if len(recent) < maxAttempts {
		return 0, true
	}
	if wait := recent[maxAttempts-1].Add(attemptWindow).Sub(now); wait > 0 {
		return wait, false
	}
	return 0, true
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
