package bench

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistogramPercentilesExactSmall(t *testing.T) {
	var h Histogram
	// 1..100 ns are below the exact threshold, so percentiles are exact ranks.
	for i := 100; i >= 1; i-- {
		h.Record(time.Duration(i))
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50}, {95, 95}, {99, 99}, {100, 100}, {0.5, 1}, {1, 1}, {0, 1}, {99.01, 100},
	}
	for _, tt := range tests {
		if got := h.Percentile(tt.p); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.p, got, tt.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Min() != 1 || h.Mean() != 50 {
		t.Errorf("count/max/min/mean = %d/%v/%v/%v", h.Count(), h.Max(), h.Min(), h.Mean())
	}
}

func TestHistogramEmpty(t *testing.T) {
	var h Histogram
	if h.Percentile(99) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	if s := h.Summarize(); s.Count != 0 || s.P99ms != 0 {
		t.Fatalf("summary of empty = %+v", s)
	}
}

func TestHistogramNegativeIsZero(t *testing.T) {
	var h Histogram
	h.Record(-5 * time.Millisecond)
	if h.Count() != 1 || h.Max() != 0 || h.Percentile(50) != 0 {
		t.Fatalf("negative sample: count %d max %v p50 %v", h.Count(), h.Max(), h.Percentile(50))
	}
}

// Against a sorted slice of random latencies, every percentile must be within
// the bucket's relative error (1/128) of the exact nearest-rank value.
func TestHistogramPercentilesMatchSortedWithinError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 0, 50_000)
	for range 50_000 {
		// A long-tailed mix: microseconds to a few seconds.
		v := time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		if r.IntN(100) == 0 {
			v += time.Duration(r.IntN(3000)) * time.Millisecond
		}
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, p := range []float64{1, 10, 50, 90, 95, 99, 99.9, 100} {
		rank := int(float64(len(vals))*p/100+0.999999) - 1
		want := vals[max(rank, 0)]
		got := h.Percentile(p)
		if got < want || float64(got-want) > float64(want)/128+1 {
			t.Errorf("p%v = %v, exact %v: outside the bucket error", p, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("max/min = %v/%v, want %v/%v", h.Max(), h.Min(), vals[len(vals)-1], vals[0])
	}
}

func TestHistogramIndexIsMonotonicAndBounded(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 255, 256, 257, 511, 512, 1 << 20, 1<<20 + 1, 1 << 40, 1<<62 + 12345, 1<<63 - 1} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d (prev %d, buckets %d)", v, i, prev, histBuckets)
		}
		if up := histUpper(i); up < v {
			t.Fatalf("histUpper(%d) = %d < value %d", i, up, v)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d also fits bucket %d", v, i-1)
		}
		prev = i
	}
}

func TestHistogramConcurrentRecordAndMerge(t *testing.T) {
	var a, b Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				a.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	b.Record(time.Hour)
	b.Merge(&a)
	if a.Count() != 8000 || b.Count() != 8001 {
		t.Fatalf("counts %d, %d", a.Count(), b.Count())
	}
	if b.Max() != time.Hour || b.Min() != 0 {
		t.Fatalf("merged max/min %v/%v", b.Max(), b.Min())
	}
	if got := b.Percentile(100); got != time.Hour {
		t.Fatalf("merged p100 = %v", got)
	}
}

func TestRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		n    int64
		span time.Duration
		want float64
	}{
		{"paced 100/s for 10s", 1001, 10 * time.Second, 100},
		{"single event", 1, time.Second, 0},
		{"empty span", 10, 0, 0},
		{"two events 1ms apart", 2, time.Millisecond, 1000},
	}
	for _, tt := range tests {
		if got := Rate(tt.n, t0, t0.Add(tt.span)); got != tt.want {
			t.Errorf("%s: Rate = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	d := 1234567 * time.Nanosecond
	for i := 0; b.Loop(); i++ {
		h.Record(d + time.Duration(i&1023))
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			h.Record(time.Duration(i&0xfffff) * time.Microsecond)
			i++
		}
	})
}
