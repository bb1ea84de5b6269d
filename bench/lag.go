package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// serverLagMetric is the realtime server's own histogram of commit → socket
// write. Its difference over a run splits the tool's commit → client latency
// into the server's part and the rest (kernel, tool), which is how a slow
// percentile gets its bottleneck named.
const serverLagMetric = "dollr_realtime_delivery_lag_seconds"

// bucketCounts is a cumulative Prometheus histogram: upper bound → count.
type bucketCounts map[float64]float64

// LagSummary is a Prometheus histogram's digest over a run. Percentiles are
// bucket upper bounds: the true value is at most this.
type LagSummary struct {
	Count       uint64  `json:"count"`
	P50AtMostMs float64 `json:"p50_at_most_ms"`
	P99AtMostMs float64 `json:"p99_at_most_ms"` // -1: above LastBucketMs
	MeanMs      float64 `json:"mean_ms"`
	// LastBucketMs is the histogram's largest finite bound, what a -1
	// percentile is known to exceed.
	LastBucketMs float64 `json:"last_bucket_ms"`
}

// bound renders a percentile: "≤ 5 ms", or "> 25 ms" past the last bucket.
func (l *LagSummary) bound(ms float64) string {
	if ms < 0 {
		return fmt.Sprintf("> %g ms", l.LastBucketMs)
	}
	return fmt.Sprintf("≤ %g ms", ms)
}

// scrapeLag reads the server's delivery-lag histogram; nil when the server
// does not export it.
func scrapeLag(ctx context.Context, hc *http.Client, metricsURL string) (bucketCounts, float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	return parseLag(io.LimitReader(resp.Body, 16<<20))
}

func parseLag(r io.Reader) (bucketCounts, float64, error) {
	var b bucketCounts
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, serverLagMetric+"_sum "); ok {
			sum, _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
			continue
		}
		rest, ok := strings.CutPrefix(line, serverLagMetric+`_bucket{le="`)
		if !ok {
			continue
		}
		le, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		n, err2 := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err1 != nil || err2 != nil {
			return nil, 0, fmt.Errorf("bad %s line %q", serverLagMetric, line)
		}
		if b == nil {
			b = bucketCounts{}
		}
		b[bound] = n
	}
	return b, sum, sc.Err()
}

// lagBetween digests the observations made between two scrapes.
func lagBetween(before, after bucketCounts, sumBefore, sumAfter float64) *LagSummary {
	if after == nil {
		return nil
	}
	bounds := make([]float64, 0, len(after))
	for le := range after {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total <= 0 {
		return &LagSummary{}
	}
	at := func(p float64) float64 {
		rank := math.Ceil(p / 100 * total)
		for _, le := range bounds {
			if after[le]-before[le] >= rank {
				return le * 1000
			}
		}
		return math.Inf(1)
	}
	s := &LagSummary{Count: uint64(total), P50AtMostMs: at(50), P99AtMostMs: at(99), MeanMs: (sumAfter - sumBefore) / total * 1000}
	for _, le := range bounds {
		if !math.IsInf(le, 1) {
			s.LastBucketMs = le * 1000
		}
	}
	if math.IsInf(s.P99AtMostMs, 1) {
		s.P99AtMostMs = -1 // beyond the last finite bucket
	}
	if math.IsInf(s.P50AtMostMs, 1) {
		s.P50AtMostMs = -1
	}
	return s
}
