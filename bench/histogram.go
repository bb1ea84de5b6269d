package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram records durations in log-linear buckets: exact below 256 ns,
// then 128 buckets per power of two, so any reported percentile is within
// 0.8% of a recorded value. Record is lock-free and allocation-free, so every
// reader goroutine of the tool can share one histogram.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; 2^64 ns is 584 years
	max    atomic.Int64
	min    atomic.Int64 // stored as value+1 so the zero value means "none"
}

const (
	histSubBits    = 7
	histSub        = 1 << histSubBits // buckets per power of two
	histExact      = 2 * histSub      // values below this have their own bucket
	histMaxShift   = 63 - histSubBits
	histBuckets    = histExact + histMaxShift*histSub
	histPercentMax = 100.0
)

// histIndex maps a non-negative value to its bucket.
func histIndex(v uint64) int {
	if v < histExact {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [128, 256)
	return histExact + (shift-1)*histSub + int(v>>uint(shift)) - histSub
}

// histUpper returns the largest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < histExact {
		return uint64(i)
	}
	shift := (i-histExact)/histSub + 1
	top := uint64((i-histExact)%histSub + histSub)
	return (top+1)<<uint(shift) - 1
}

// Record adds one duration. Negative durations (a clock stepping back) are
// recorded as zero rather than dropped, so counts stay exact.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[histIndex(uint64(v))].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Min returns the smallest recorded duration, exactly (0 when empty).
func (h *Histogram) Min() time.Duration {
	m := h.min.Load()
	if m == 0 {
		return 0
	}
	return time.Duration(m - 1)
}

// Mean returns the arithmetic mean (0 when empty).
func (h *Histogram) Mean() time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100): the
// smallest recorded value such that at least p% of values are ≤ it, reported
// as its bucket's upper bound clamped to the exact min and max. It returns 0
// when nothing was recorded. Call it once recording has stopped.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := h.n.Load()
	if n == 0 || math.IsNaN(p) {
		return 0
	}
	p = min(max(p, 0), histPercentMax)
	rank := uint64(math.Ceil(p / histPercentMax * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := time.Duration(histUpper(i))
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	if o.n.Load() == 0 {
		return
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	for v := o.Max(); ; {
		m := h.max.Load()
		if int64(v) <= m || h.max.CompareAndSwap(m, int64(v)) {
			break
		}
	}
	for v := int64(o.Min()) + 1; ; {
		m := h.min.Load()
		if (m != 0 && v >= m) || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// Summary is a histogram's digest in milliseconds, the unit every table and
// JSON result uses.
type Summary struct {
	Count  uint64  `json:"count"`
	P50ms  float64 `json:"p50_ms"`
	P95ms  float64 `json:"p95_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
	MinMs  float64 `json:"min_ms"`
}

// Summarize digests h.
func (h *Histogram) Summarize() Summary {
	return Summary{
		Count:  h.Count(),
		P50ms:  ms(h.Percentile(50)),
		P95ms:  ms(h.Percentile(95)),
		P99ms:  ms(h.Percentile(99)),
		MaxMs:  ms(h.Max()),
		MeanMs: ms(h.Mean()),
		MinMs:  ms(h.Min()),
	}
}

// ms converts to milliseconds rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
