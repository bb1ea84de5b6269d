package bench

import (
	"context"
	"math"
	"time"
)

// Pacer releases work at a steady rate: item i is due at Start + i/Rate. It
// is bounded twice: it never releases more than Max items, and releases none
// that would be due after End. When the caller falls behind, Next returns
// every item already due at once, so the long-run rate holds instead of
// drifting down with each late wake-up.
type Pacer struct {
	Rate  float64   // items per second, > 0
	Max   int       // count bound, > 0
	Start time.Time // zero: the first call to Next
	End   time.Time // time bound; zero: none (Max still bounds)
	// Tick is the shortest time between two releases: items due in between
	// are released together, so a high rate costs fewer wake-ups and
	// requests. Zero releases each item when due.
	Tick time.Duration

	lastRelease time.Time
	released    int
	now         func() time.Time
	sleep       func(ctx context.Context, d time.Duration) error
}

// Released returns how many items Next has handed out so far.
func (p *Pacer) Released() int { return p.released }

// Next waits until at least one more item is due and returns how many are
// due now. It returns 0 when a bound is reached or ctx ends; the caller's loop
// stops there.
func (p *Pacer) Next(ctx context.Context) int {
	now, sleep := p.now, p.sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	if p.Start.IsZero() {
		p.Start = now()
	}
	if p.Rate <= 0 || p.released >= p.Max {
		return 0
	}
	for {
		if ctx.Err() != nil {
			return 0
		}
		t := now()
		next := p.timeOf(p.released)
		if !p.End.IsZero() && next.After(p.End) {
			return 0
		}
		if !p.lastRelease.IsZero() && p.Tick > 0 && t.Before(p.lastRelease.Add(p.Tick)) {
			next = p.lastRelease.Add(p.Tick)
		}
		if !t.Before(next) {
			// The next item is due; so may be more. dueAt and timeOf can
			// disagree by float rounding at a boundary, hence the max.
			due := min(max(p.dueAt(t), p.released+1), p.Max)
			n := due - p.released
			p.released = due
			p.lastRelease = t
			return n
		}
		if err := sleep(ctx, next.Sub(t)); err != nil {
			return 0
		}
	}
}

// dueAt is how many items are due by t, within both bounds.
func (p *Pacer) dueAt(t time.Time) int {
	if !p.End.IsZero() && t.After(p.End) {
		t = p.End
	}
	elapsed := t.Sub(p.Start).Seconds()
	if elapsed < 0 {
		return 0
	}
	due := math.Floor(elapsed*p.Rate) + 1 // item 0 is due at Start
	if due > float64(p.Max) {
		return p.Max
	}
	return int(due)
}

// timeOf is when item i is due.
func (p *Pacer) timeOf(i int) time.Time {
	return p.Start.Add(time.Duration(math.Ceil(float64(i) / p.Rate * float64(time.Second))))
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Rate returns the rate of n events whose timestamps span [first, last]:
// n-1 intervals over the span, so n events paced at r per second measure
// exactly r. It returns 0 when there is no interval to measure.
func Rate(n int64, first, last time.Time) float64 {
	span := last.Sub(first).Seconds()
	if n < 2 || span <= 0 {
		return 0
	}
	return float64(n-1) / span
}
