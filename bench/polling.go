package bench

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dollr/dollr/client"
)

// witnessChannelsPerConn multiplexes the polling scenario's witness channels
// onto few sockets: the witness only learns commit times, and should cost the
// server as little as possible next to the polling it measures.
const witnessChannelsPerConn = 100

// runPolling watches payments the way Dollr's guide describes for backends
// without realtime: GET /v1/status/collection/{reference_id} every interval
// from the execute until COMPLETED or FAILED. With the witness on, a
// realtime channel per payment records each status change's commit time, so
// the detection delay is exact; the witness's own server cost is included in
// the CPU figure (run with --witness=false for polling alone).
func runPolling(ctx context.Context, e *env) error {
	o := e.o
	n := min(o.N, max(o.MaxEvents/statusesPerPayment, 1))
	ps, err := e.preparePayments(ctx, n, o.Phone, o.Witness)
	if err != nil {
		return err
	}
	var w *watchSet
	var pool *subPool
	if o.Witness {
		w = newWatchSet(e, n)
		w.commitAt = make([][4]int64, n)
		if pool, err = e.watchPayments(ctx, ps, witnessChannelsPerConn, w.onChange); err != nil {
			return err
		}
		defer pool.close()
	}
	e.res.SetupSeconds = time.Since(e.started).Seconds()

	sampler, err := e.startSampler(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	execEnd := start.Add(o.Duration)
	deadline := execEnd.Add(o.Drain) // no poller outlives this
	executed := make([]bool, n)
	detectedAt := make([][4]int64, n) // per payment and status bit: end of the first poll that saw it
	finalSeen := make([]bool, n)
	var requests, reqErrors, polling, done, nexec atomic.Int64
	var execs span
	var pollers sync.WaitGroup
	e.prog.set("running", func() string {
		return fmt.Sprintf("executed %d/%d, polling %d, final %d, requests %d", nexec.Load(), n, polling.Load(), done.Load(), requests.Load())
	})
	poll := func(i int, first *client.ExecutionResponse) {
		defer pollers.Done()
		defer polling.Add(-1)
		last := first.Status
		// Each client's polls keep their own phase: the first comes at a
		// random point of the first interval. (A fixed phase would lock onto
		// the sandbox's fixed delay and report one constant detection delay.)
		t := time.NewTimer(time.Duration(rand.Int64N(int64(o.PollInterval))) + 1)
		defer t.Stop()
		for range int(time.Until(deadline)/o.PollInterval) + 2 { // bounded in count as well as time
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if time.Now().After(deadline) {
				return
			}
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			res, err := e.api.CollectionStatus(rctx, ps[i].referenceID)
			cancel()
			requests.Add(1)
			if err != nil {
				reqErrors.Add(1)
				e.errs.add("poll %s: %v", ps[i].referenceID, err)
			} else if res.Status != last {
				last = res.Status
				if bit := statusBit([]byte(last)); bit != 0 {
					detectedAt[i][bits.TrailingZeros8(bit)] = time.Now().UnixNano()
				}
				if last.Terminal() {
					finalSeen[i] = true
					done.Add(1)
					return
				}
			}
			t.Reset(o.PollInterval)
		}
	}
	e.paceExecutions(ctx, ps, o.Rate/statusesPerPayment, execEnd, func(i int, res *client.ExecutionResponse, at time.Time) {
		executed[i] = true
		nexec.Add(1)
		execs.add(at)
		if bit := statusBit([]byte(res.Status)); bit != 0 {
			detectedAt[i][bits.TrailingZeros8(bit)] = at.UnixNano()
		}
		if res.Status.Terminal() {
			finalSeen[i] = true
			done.Add(1)
			return
		}
		polling.Add(1)
		pollers.Add(1)
		go poll(i, res)
	})
	pollers.Wait()
	if w != nil {
		// The witness may trail the last poll by a moment.
		waitUntil(ctx, 5*time.Second, func() bool { return w.terminal.Load() >= done.Load() })
	}
	e.res.MeasuredSeconds = time.Since(start).Seconds()
	e.stopSampler(ctx, sampler)
	if pool != nil {
		pool.close()
	}

	r := e.res
	pr := &PollingResult{IntervalSeconds: o.PollInterval.Seconds(), Requests: requests.Load(), RequestErrors: reqErrors.Load()}
	if r.MeasuredSeconds > 0 {
		pr.RequestsPerSec = float64(pr.Requests) / r.MeasuredSeconds
	}
	var delay Histogram
	for i := range ps {
		if !executed[i] {
			continue
		}
		r.Expected++
		if finalSeen[i] {
			r.Delivered++
		}
		if w == nil {
			continue
		}
		// PROCESSING (bit 1) is intermediate; COMPLETED (2) and FAILED (3) final.
		for b := 1; b < 4; b++ {
			seen, committed := detectedAt[i][b], w.commitAt[i][b]
			switch {
			case seen != 0 && committed != 0:
				delay.Record(time.Duration(seen - committed))
			case seen != 0 && committed == 0:
				e.errs.add("payment %s: a poll saw status bit %d that the realtime witness never delivered", ps[i].referenceID, b)
			case b == 1 && seen == 0 && committed != 0:
				pr.Missed++
			}
		}
	}
	if w != nil {
		d, ws := delay.Summarize(), w.latency.Summarize()
		pr.DetectionDelay, pr.Witness = &d, &ws
		r.Duplicates, r.OutOfOrder = w.duplicates.Load(), w.outOfOrder.Load()
	}
	r.Polling = pr
	r.AchievedRate = execs.rate(nexec.Load()) * statusesPerPayment
	return nil
}
