package bench

import (
	"sync/atomic"
	"time"
)

// span tracks the earliest and latest of a stream of instants, lock-free.
type span struct {
	first, last atomic.Int64 // unix nanoseconds; 0: none yet
}

func (s *span) add(t time.Time) {
	v := t.UnixNano()
	for {
		f := s.first.Load()
		if (f != 0 && f <= v) || s.first.CompareAndSwap(f, v) {
			break
		}
	}
	for {
		l := s.last.Load()
		if l >= v || s.last.CompareAndSwap(l, v) {
			break
		}
	}
}

// rate is n events per second over the span.
func (s *span) rate(n int64) float64 {
	f, l := s.first.Load(), s.last.Load()
	if f == 0 {
		return 0
	}
	return Rate(n, time.Unix(0, f), time.Unix(0, l))
}
