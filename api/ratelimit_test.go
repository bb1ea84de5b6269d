package api

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{t: start} }

// fakeStart is where the limiter tests' clocks start.
var fakeStart = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// expect checks one allow call: allowed, or refused with exactly wait.
func expect[K comparable](t *testing.T, l *rateLimiter[K], key K, wantOK bool, wantWait time.Duration) {
	t.Helper()
	ok, wait := l.allow(key)
	if ok != wantOK || wait != wantWait {
		t.Fatalf("allow(%v) = %v, %s; want %v, %s", key, ok, wait, wantOK, wantWait)
	}
}

// A bucket lets burst requests through at once, refuses the next with the
// time until a token is earned, and refills at rate, never beyond burst.
func TestRateLimiterBucket(t *testing.T) {
	clock := newFakeClock(fakeStart)
	l := newRateLimiter[string](1, 3, clock.Now, maxRateKeys)
	for range 3 {
		expect(t, l, "a", true, 0)
	}
	expect(t, l, "a", false, time.Second)
	expect(t, l, "a", false, time.Second) // a refusal costs nothing
	expect(t, l, "b", true, 0)            // keys are independent

	clock.Advance(400 * time.Millisecond)
	expect(t, l, "a", false, 600*time.Millisecond)
	clock.Advance(600 * time.Millisecond)
	expect(t, l, "a", true, 0)
	expect(t, l, "a", false, time.Second)

	// A long idle time fills the bucket, and no more than full.
	clock.Advance(time.Hour)
	for range 3 {
		expect(t, l, "a", true, 0)
	}
	expect(t, l, "a", false, time.Second)

	// Fractional rates: one token every 2 s, or every 250 ms.
	slow := newRateLimiter[int64](0.5, 1, clock.Now, maxRateKeys)
	expect(t, slow, 7, true, 0)
	expect(t, slow, 7, false, 2*time.Second)
	clock.Advance(1500 * time.Millisecond)
	expect(t, slow, 7, false, 500*time.Millisecond)
	fast := newRateLimiter[int64](4, 2, clock.Now, maxRateKeys)
	expect(t, fast, 7, true, 0)
	expect(t, fast, 7, true, 0)
	expect(t, fast, 7, false, 250*time.Millisecond)

	// Absurd rates and bursts stay within int64: the smallest still limits,
	// the largest earns a token every nanosecond.
	tiny := newRateLimiter[int64](1e-300, 1<<30, clock.Now, maxRateKeys)
	expect(t, tiny, 7, true, 0)
	if ok, wait := tiny.allow(7); ok || wait <= 0 {
		t.Fatalf("rate 1e-300, burst 2^30: second request %v, wait %s; want refused", ok, wait)
	}
	huge := newRateLimiter[int64](1e300, 1, clock.Now, maxRateKeys)
	expect(t, huge, 7, true, 0)
	expect(t, huge, 7, false, time.Nanosecond)
}

// A clock that steps back (a Config.Now without a monotonic reading) leaves
// a used bucket empty, not owing the hour the clock lost.
func TestRateLimiterClockBack(t *testing.T) {
	clock := newFakeClock(fakeStart)
	l := newRateLimiter[string](1, 2, clock.Now, maxRateKeys)
	expect(t, l, "a", true, 0)
	clock.Advance(-time.Hour)
	expect(t, l, "a", false, time.Second)
	expect(t, l, "new", true, 0) // a new key starts full whatever the clock
	clock.Advance(time.Second)
	expect(t, l, "a", true, 0)
}

func TestRetryAfterSeconds(t *testing.T) {
	for wait, want := range map[time.Duration]int64{
		0: 1, time.Nanosecond: 1, 250 * time.Millisecond: 1, time.Second: 1,
		time.Second + time.Nanosecond: 2, 2500 * time.Millisecond: 3, time.Minute: 60,
	} {
		if got := retryAfterSeconds(wait); got != want {
			t.Errorf("retryAfterSeconds(%s) = %d, want %d", wait, got, want)
		}
	}
}

func TestDefaultRateBurst(t *testing.T) {
	for rate, want := range map[float64]int{0.01: 1, 0.5: 1, 0.7: 2, 1: 2, 2.4: 5, 1000: 2000, 1e12: 1 << 30} {
		if got := defaultRateBurst(rate); got != want {
			t.Errorf("defaultRateBurst(%v) = %d, want %d", rate, got, want)
		}
	}
	if RateBurst(0, 5) != 0 || RateBurst(2, 0) != 4 || RateBurst(2, 7) != 7 {
		t.Errorf("RateBurst: %d %d %d, want 0 4 7", RateBurst(0, 5), RateBurst(2, 0), RateBurst(2, 7))
	}
}

func TestAddressKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234": "192.0.2.1", "203.0.113.7": "203.0.113.7", "[::ffff:192.0.2.9]:80": "192.0.2.9",
		"[2001:db8::1]:443": "2001:db8::/64", "2001:db8::2": "2001:db8::/64", "[2001:db8:0:1::5%eth0]:1": "2001:db8:0:1::/64",
		"": "", "not an address": "not an address",
	} {
		if got := addressKey(in); got != want {
			t.Errorf("addressKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A stream of new keys, each used once, keeps the table near the number of
// keys not yet full again: idle ones are swept out as it grows.
func TestRateLimiterSweepKeepsTableBounded(t *testing.T) {
	clock := newFakeClock(fakeStart)
	l := newRateLimiter[int](1, 1, clock.Now, maxRateKeys) // a key is idle 1 s after its use
	most := 0
	for i := range 20000 {
		clock.Advance(time.Millisecond) // so at most 1000 keys are busy
		expect(t, l, i, true, 0)
		most = max(most, l.keys())
	}
	// A sweep leaves at most the 1000 busy keys and the next comes at twice
	// as many.
	if most > 2000 {
		t.Fatalf("the table grew to %d keys; want at most 2000", most)
	}
	clock.Advance(time.Second)
	for i := range minRateSweep {
		expect(t, l, -1-i, true, 0)
	}
	if n := l.keys(); n > minRateSweep+1 {
		t.Fatalf("%d keys after the old ones went idle; want them swept", n)
	}
}

// At the cap, new keys share one overflow bucket until a sweep, no sooner
// than a refill time later, makes room; known keys keep their own buckets.
func TestRateLimiterOverflowAtCap(t *testing.T) {
	clock := newFakeClock(fakeStart)
	l := newRateLimiter[string](1, 1, clock.Now, 4)
	for _, k := range []string{"a", "b", "c", "d"} {
		expect(t, l, k, true, 0)
	}
	expect(t, l, "e", true, 0) // the overflow bucket's token
	expect(t, l, "f", false, time.Second)
	expect(t, l, "e", false, time.Second)
	expect(t, l, "a", false, time.Second)
	if n := l.keys(); n != 4 {
		t.Fatalf("%d keys, want the cap, 4", n)
	}
	clock.Advance(500 * time.Millisecond)
	expect(t, l, "g", false, 500*time.Millisecond) // no sweep yet: nothing could be idle

	clock.Advance(500 * time.Millisecond)
	expect(t, l, "g", true, 0) // a..d are full again and swept; g gets its own bucket
	if n := l.keys(); n != 1 {
		t.Fatalf("%d keys after the sweep, want 1", n)
	}
	expect(t, l, "g", false, time.Second)
	expect(t, l, "h", true, 0)
}

// Concurrent callers share buckets exactly: with the clock still, one key
// lets through its burst and no more, and the table never passes its cap.
func TestRateLimiterConcurrent(t *testing.T) {
	clock := newFakeClock(fakeStart)
	const burst, workers, calls = 50, 8, 500
	l := newRateLimiter[string](1, burst, clock.Now, 64)
	var shared atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				if ok, _ := l.allow("shared"); ok {
					shared.Add(1)
				}
				l.allow(fmt.Sprintf("w%d-%d", w, i%100))
			}
		})
	}
	wg.Wait()
	if n := shared.Load(); n != burst {
		t.Fatalf("%d requests of the shared key let through, want the burst, %d", n, burst)
	}
	if n := l.keys(); n > 64 {
		t.Fatalf("%d keys, over the cap of 64", n)
	}
}
