package bench

import (
	"context"
	"testing"
	"time"
)

// fakeClock lets pacer tests run without real sleeping: sleep advances time.
type fakeClock struct {
	t      time.Time
	sleeps int
}

func (c *fakeClock) now() time.Time { return c.t }
func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.sleeps++
	c.t = c.t.Add(d)
	return ctx.Err()
}

func newFakePacer(rate float64, max int, end time.Duration) (*Pacer, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	p := &Pacer{Rate: rate, Max: max, Start: c.t, now: c.now, sleep: c.sleep}
	if end > 0 {
		p.End = c.t.Add(end)
	}
	return p, c
}

func drain(p *Pacer, limit int) (total, calls int) {
	for calls < limit {
		n := p.Next(context.Background())
		if n == 0 {
			return total, calls
		}
		total += n
		calls++
	}
	return total, calls
}

func TestPacerStopsAtCount(t *testing.T) {
	p, c := newFakePacer(1000, 250, 0)
	total, _ := drain(p, 10_000)
	if total != 250 || p.Released() != 250 {
		t.Fatalf("released %d, want exactly 250", total)
	}
	// 250 items at 1000/s: the last is due 249 ms after start.
	if got := c.t.Sub(p.Start); got != 249*time.Millisecond {
		t.Fatalf("last item released at +%v, want +249ms", got)
	}
}

func TestPacerStopsAtTime(t *testing.T) {
	p, c := newFakePacer(100, 1_000_000, 2*time.Second)
	total, _ := drain(p, 1_000_000)
	// Items due at 0, 10ms, ..., 2000ms: 201 of them.
	if total != 201 {
		t.Fatalf("released %d in 2s at 100/s, want 201", total)
	}
	if c.t.After(p.End) {
		t.Fatalf("pacer slept past its end: %v > %v", c.t, p.End)
	}
}

func TestPacerCatchesUpInBatches(t *testing.T) {
	p, c := newFakePacer(1000, 100, 0)
	if n := p.Next(context.Background()); n != 1 {
		t.Fatalf("first Next = %d, want 1", n)
	}
	c.t = c.t.Add(50 * time.Millisecond) // the caller stalled for 50 ms
	if n := p.Next(context.Background()); n != 50 {
		t.Fatalf("after a 50ms stall Next = %d, want the 50 items due", n)
	}
}

func TestPacerStopsOnContext(t *testing.T) {
	p, _ := newFakePacer(10, 1000, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n := p.Next(ctx); n != 0 {
		t.Fatalf("Next on a cancelled context = %d, want 0", n)
	}
}

func TestPacerRealClockBounded(t *testing.T) {
	// With the real clock the loop must end by itself at the time bound.
	p := &Pacer{Rate: 200, Max: 1 << 30, End: time.Now().Add(100 * time.Millisecond)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	total := 0
	for {
		n := p.Next(ctx)
		if n == 0 {
			break
		}
		total += n
	}
	if ctx.Err() != nil {
		t.Fatal("pacer did not stop at its time bound")
	}
	if total > 21+1 { // at most the items due within 100 ms at 200/s
		t.Fatalf("released %d items in a 100ms window at 200/s", total)
	}
}

func TestPacerTickBatches(t *testing.T) {
	p, c := newFakePacer(1000, 100, 0)
	p.Tick = 10 * time.Millisecond
	total, calls := drain(p, 1000)
	if total != 100 {
		t.Fatalf("released %d, want 100", total)
	}
	// 100 items over 99 ms in releases at least 10 ms apart: 10 or 11 calls.
	if calls < 10 || calls > 11 {
		t.Fatalf("%d releases, want about 10 batches of 10", calls)
	}
	if c.sleeps > 2*calls {
		t.Fatalf("%d sleeps for %d releases", c.sleeps, calls)
	}
}
