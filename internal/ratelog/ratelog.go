// Package ratelog keeps an error that every request or client retry repeats
// (a database that is down, say) from flooding the log: at most one line a
// second, each saying how many occurrences it left out since the last.
package ratelog

import (
	"sync/atomic"
	"time"
)

// Limiter decides which occurrences of one error are logged. The zero value
// is ready; it is safe for concurrent use.
type Limiter struct {
	last       atomic.Int64 // when it last allowed a line (Unix ns)
	suppressed atomic.Int64
}

// Allow reports whether this occurrence gets a log line and, if so, how many
// it left out since the previous one.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int64) {
	t, last := now.UnixNano(), l.last.Load()
	if last != 0 && t-last < int64(time.Second) || !l.last.CompareAndSwap(last, t) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
