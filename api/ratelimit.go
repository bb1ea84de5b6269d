package api

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Rate-limit scopes: the metric's label and the warn line's "scope".
const (
	scopeMerchant = "merchant"
	scopeAddress  = "address"
)

const (
	// maxRateKeys caps a limiter's table. Past it, new keys share one
	// overflow bucket: a flood of addresses costs a bounded amount of memory
	// (tens of bytes a key), at the price of throttling newcomers together
	// until idle keys are swept out.
	maxRateKeys = 1 << 16
	// minRateSweep is the table size below which idle keys are left alone:
	// sweeping a small table would cost more than it frees.
	minRateSweep = 1024
	// longestRateSpan bounds the arithmetic (an absurd rate or burst) so
	// that instants stay far from int64 overflow; about 36 years.
	longestRateSpan = int64(1) << 60
)

// rateLimiter is a token bucket per key. A bucket holds burst tokens and
// earns one every interval (1/rate); a request takes one or is refused.
//
// A bucket is kept as the one instant at which it will be full again
// ("full"): holding burst-(full-now)/interval tokens. A bucket absent from
// the table is full, so sweeping out buckets whose full instant has passed
// forgets nothing, and a refusal takes nothing. Instants are nanoseconds
// since the limiter was made, on its clock (Config.Now, which is monotonic
// with time.Now).
//
// One mutex guards the table: a lookup and a few additions, far below the
// cost of the request it guards. There is no goroutine: idle buckets are
// swept when a new key is inserted into a grown table.
type rateLimiter[K comparable] struct {
	now      func() time.Time
	epoch    time.Time
	interval int64 // ns to earn one token
	span     int64 // ns to fill an empty bucket: burst intervals
	maxKeys  int

	mu        sync.Mutex
	full      map[K]int64
	overflow  int64 // the bucket new keys share while the table is at maxKeys
	sweepAt   int   // sweep when the table holds this many keys...
	nextSweep int64 // ...and this instant has passed
}

// newRateLimiter returns a limiter of rate tokens a second with room for
// burst of them (both positive), holding at most maxKeys keys.
func newRateLimiter[K comparable](rate float64, burst int, now func() time.Time, maxKeys int) *rateLimiter[K] {
	// Clamped as a float: converting one past int64's range is undefined.
	interval := int64(min(max(math.Round(float64(time.Second)/rate), 1), float64(longestRateSpan)))
	span := longestRateSpan
	if int64(burst) <= longestRateSpan/interval {
		span = int64(burst) * interval
	}
	return &rateLimiter[K]{
		now: now, epoch: now(), interval: interval, span: span, maxKeys: maxKeys,
		full: make(map[K]int64), sweepAt: min(minRateSweep, maxKeys), nextSweep: math.MinInt64,
	}
}

// allow takes a token from key's bucket. When there is none it reports how
// long until there is one.
func (l *rateLimiter[K]) allow(key K) (ok bool, wait time.Duration) {
	t := l.now().Sub(l.epoch).Nanoseconds()
	l.mu.Lock()
	defer l.mu.Unlock()
	full, known := l.full[key]
	if !known {
		if len(l.full) >= l.sweepAt && t >= l.nextSweep {
			l.sweep(t)
		}
		if len(l.full) >= l.maxKeys {
			ok, wait, l.overflow = l.take(l.overflow, t)
			return ok, wait
		}
		full = t
	}
	ok, wait, l.full[key] = l.take(full, t)
	return ok, wait
}

// take takes a token at instant t from the bucket that is full at full,
// returning the bucket's new full instant (on a refusal, full within
// bounds).
func (l *rateLimiter[K]) take(full, t int64) (ok bool, wait time.Duration, next int64) {
	// A bucket holds no more than burst tokens, and no fewer than none
	// (were the clock ever to step back).
	full = min(max(full, t), t+l.span)
	next = full + l.interval
	if over := next - t - l.span; over > 0 {
		return false, time.Duration(over), full
	}
	return true, 0, next
}

// sweep drops the buckets that are full again at t. Below the cap the next
// sweep waits until the table has doubled, so sweeping costs O(1) a key; at
// the cap it waits a bucket's refill time (at least a second), the soonest
// that keys seen since could be idle, so a flood of new keys cannot make
// every request walk the table.
func (l *rateLimiter[K]) sweep(t int64) {
	for k, full := range l.full {
		if full <= t {
			delete(l.full, k)
		}
	}
	l.sweepAt, l.nextSweep = max(minRateSweep, 2*len(l.full)), t
	if l.sweepAt >= l.maxKeys {
		l.sweepAt, l.nextSweep = l.maxKeys, t+max(l.span, int64(time.Second))
	}
}

// keys is how many keys the table holds (for tests).
func (l *rateLimiter[K]) keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.full)
}

// defaultRateBurst is the burst when none is configured: two seconds' worth
// of requests, at least one.
func defaultRateBurst(rate float64) int {
	return int(min(max(1, math.Ceil(2*rate)), 1<<30))
}

// RateBurst is the burst a Config rate limit applies: burst, or when it is 0
// the default, max(1, ceil(2×rate)). 0 when rate is 0 (no limit). New logs
// the bursts in force.
func RateBurst(rate float64, burst int) int {
	switch {
	case rate <= 0:
		return 0
	case burst <= 0:
		return defaultRateBurst(rate)
	}
	return burst
}

// retryAfterSeconds is a 429's Retry-After for a wait: whole seconds rounded
// up, since a client that comes back early is refused again, and at least 1
// (0 would invite an immediate retry).
func retryAfterSeconds(wait time.Duration) int64 {
	return max(1, int64((wait+time.Second-1)/time.Second))
}

// addressKey is the per-address limit's key for a request's RemoteAddr
// (which httplog.TrustedProxies.RealRemote may have set without a port): the
// IPv4 address, or an IPv6 address's /64. One IPv6 host commonly holds a
// whole /64, so keying by address would let it fill the table with keys of
// its own and push every new client into the shared overflow bucket.
func addressKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a = a.Unmap(); a.Is6() {
		return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
	}
	return a.String()
}

// limitAddress refuses a request over its client address's rate
// (Config.AddressRateLimit) before h does any work.
func (s *Server) limitAddress(h http.Handler) http.Handler {
	if s.addressLimit == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := addressKey(r.RemoteAddr)
		if ok, wait := s.addressLimit.allow(key); !ok {
			s.tooManyRequests(w, r, scopeAddress, wait, "remote", key)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// limitMerchant reports whether an authenticated merchant's request may go
// on (Config.MerchantRateLimit), answering 429 if not.
func (s *Server) limitMerchant(w http.ResponseWriter, r *http.Request, merchantID int64) bool {
	if s.merchantLimit == nil {
		return true
	}
	ok, wait := s.merchantLimit.allow(merchantID)
	if !ok {
		s.tooManyRequests(w, r, scopeMerchant, wait, "merchant_id", merchantID)
	}
	return ok
}

// tooManyRequests answers 429 {"detail":"Too Many Requests"} with
// Retry-After, as Dollr documents (dollr-api.md §4.6, §9.5), counts it and
// logs it at most once a second per scope: a client that ignores
// Retry-After must not flood the log too.
func (s *Server) tooManyRequests(w http.ResponseWriter, r *http.Request, scope string, wait time.Duration, keyAttr string, key any) {
	secs := retryAfterSeconds(wait)
	if s.metrics != nil {
		s.metrics.rateLimited.WithLabelValues(scope).Inc()
	}
	lim := &s.addressLimitLog
	if scope == scopeMerchant {
		lim = &s.merchantLimitLog
	}
	if ok, suppressed := lim.Allow(time.Now()); ok {
		s.log.WarnContext(r.Context(), "rate limited", "scope", scope, keyAttr, key, "retry_after", secs,
			"request_id", RequestID(r.Context()), "suppressed", suppressed)
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeDetail(w, http.StatusTooManyRequests, "Too Many Requests")
}
