package bench

import (
	"context"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/client"
)

// statusesPerPayment is how many public status changes a payment on the
// sandbox's normal path commits: INSERT as PENDING, PROCESSING, COMPLETED.
const statusesPerPayment = 3

// paymentWatch is what one subscriber has seen of its payment. Each is
// written only by its socket's reader goroutine.
type paymentWatch struct {
	seen    uint8 // one bit per status (statusBit)
	maxRank int8
}

func statusBit(s []byte) uint8 {
	switch string(s) {
	case string(dollr.StatusPending):
		return 1
	case string(dollr.StatusProcessing):
		return 2
	case string(dollr.StatusCompleted):
		return 4
	case string(dollr.StatusFailed):
		return 8
	}
	return 0
}

// bitsUpTo is the statuses a payment shows on its way to final.
func bitsUpTo(final dollr.ExecutionStatus) uint8 {
	switch final {
	case dollr.StatusPending:
		return 1
	case dollr.StatusProcessing:
		return 1 | 2
	case dollr.StatusCompleted:
		return 1 | 2 | 4
	case dollr.StatusFailed:
		return 1 | 2 | 8
	}
	return 0
}

// watchSet records realtime deliveries for a set of payments.
type watchSet struct {
	e          *env
	watches    []paymentWatch
	latency    Histogram
	commits    span // updated_at of delivered changes
	receipts   span
	delivered  atomic.Int64
	duplicates atomic.Int64
	outOfOrder atomic.Int64
	terminal   atomic.Int64
	// commitAt, when set, keeps each status's commit time (polling's witness).
	commitAt [][4]int64
}

func newWatchSet(e *env, n int) *watchSet {
	return &watchSet{e: e, watches: make([]paymentWatch, n)}
}

func (w *watchSet) onChange(sub int, c *rowChange, at time.Time) {
	bit := statusBit(c.status)
	if bit == 0 {
		w.e.errs.add("unknown status %q", c.status)
		return
	}
	pw := &w.watches[sub]
	if pw.seen&bit != 0 {
		w.duplicates.Add(1) // at-least-once: a re-sent latest state
		return
	}
	pw.seen |= bit
	rank := int8(statusRank(c.status))
	if rank < pw.maxRank {
		w.outOfOrder.Add(1)
		w.e.errs.add("payment %s: %s after a later status", c.referenceID, c.status)
	}
	pw.maxRank = max(pw.maxRank, rank)
	w.delivered.Add(1)
	w.receipts.add(at)
	if committed, ok := parseTimestamp(c.updatedAt); ok {
		w.latency.Record(at.Sub(committed))
		w.commits.add(committed)
		if w.commitAt != nil {
			w.commitAt[sub][bits.TrailingZeros8(bit)] = committed.UnixNano()
		}
	} else {
		w.e.errs.add("payment %s: unreadable updated_at %q", c.referenceID, c.updatedAt)
	}
	if rank == 2 {
		w.terminal.Add(1)
	}
}

func runCheckout(ctx context.Context, e *env) error {
	o := e.o
	n := min(o.N, max(o.MaxEvents/statusesPerPayment, 1))
	ps, err := e.preparePayments(ctx, n, o.Phone, false)
	if err != nil {
		return err
	}
	if !o.Subscribe {
		return runCheckoutBaseline(ctx, e, ps)
	}
	e.res.SetupSeconds = time.Since(e.started).Seconds()
	// The server's usage counts from the first realtime key on: minting keys,
	// connecting and joining are part of what watching a payment costs.
	sampler, err := e.startSampler(ctx)
	if err != nil {
		return err
	}
	subscribing := time.Now()
	if err := e.mintKeys(ctx, ps); err != nil {
		return err
	}
	keysCPU, err := sampler.Mark(ctx)
	if err != nil {
		return err
	}
	w := newWatchSet(e, n)
	pool, err := e.watchPayments(ctx, ps, o.ChannelsPerConn, w.onChange)
	if err != nil {
		return err
	}
	defer pool.close()
	e.res.SubscribeSeconds = time.Since(subscribing).Seconds()
	subscribeCPU, err := sampler.Mark(ctx)
	if err != nil {
		return err
	}
	e.res.KeysCPUSeconds, e.res.JoinsCPUSeconds = round3(keysCPU), round3(subscribeCPU-keysCPU)
	start := time.Now()
	executed := make([]bool, n)
	var nexec atomic.Int64
	var execs span
	e.prog.set("running", func() string {
		return fmt.Sprintf("executed %d/%d, delivered %d, final %d, p99 %.2f ms", nexec.Load(), n, w.delivered.Load(), w.terminal.Load(), ms(w.latency.Percentile(99)))
	})
	e.paceExecutions(ctx, ps, o.Rate/statusesPerPayment, start.Add(o.Duration), func(i int, _ *client.ExecutionResponse, at time.Time) {
		executed[i] = true
		nexec.Add(1)
		execs.add(at)
	})
	waitUntil(ctx, o.Drain, func() bool { return w.terminal.Load() >= nexec.Load() })
	e.res.MeasuredSeconds = time.Since(start).Seconds()
	e.stopSampler(ctx, sampler)
	pool.close()

	// The Status API says how far each payment got; every status on the way
	// there must have reached its subscriber.
	e.prog.set("verifying", func() string { return "" })
	if err := e.tally(ctx, ps, executed, w); err != nil {
		return err
	}
	// Each execution starts a payment that commits three status changes, so
	// the paced executions are the generated rate (the commit span would also
	// count the sandbox's delay after the last execution).
	e.res.AchievedRate = execs.rate(nexec.Load()) * statusesPerPayment
	return nil
}

// tally compares what subscribers saw with each payment's final status.
func (e *env) tally(ctx context.Context, ps []*payment, executed []bool, w *watchSet) error {
	finals := make([]dollr.ExecutionStatus, len(ps))
	err := forEach(context.WithoutCancel(ctx), len(ps), e.o.Concurrency, func(ctx context.Context, i int) error {
		if !executed[i] {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res, err := e.api.CollectionStatus(ctx, ps[i].referenceID)
		if err != nil {
			e.errs.add("status %s: %v", ps[i].referenceID, err)
			return nil
		}
		finals[i] = res.Status
		return nil
	})
	if err != nil {
		return err
	}
	var expected, delivered int64
	for i := range ps {
		if !executed[i] || finals[i] == "" {
			continue
		}
		want := bitsUpTo(finals[i])
		expected += int64(bits.OnesCount8(want))
		seen := w.watches[i].seen
		delivered += int64(bits.OnesCount8(seen & want))
		if extra := seen &^ want; extra != 0 {
			e.errs.add("payment %s: delivered statuses %04b beyond its final %s", ps[i].referenceID, extra, finals[i])
		}
	}
	r := e.res
	r.Expected, r.Delivered = expected, delivered
	r.Duplicates, r.OutOfOrder = w.duplicates.Load(), w.outOfOrder.Load()
	s := w.latency.Summarize()
	r.Latency = &s
	r.DeliveryRate = w.receipts.rate(w.delivered.Load())
	return nil
}

// runCheckoutBaseline executes the payments with nobody watching and waits
// the full Drain (there is nothing to wait on), then asks the Status API how
// far each got. Delivered counts payments that reached a final status.
func runCheckoutBaseline(ctx context.Context, e *env, ps []*payment) error {
	o := e.o
	e.res.SetupSeconds = time.Since(e.started).Seconds()
	sampler, err := e.startSampler(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	executed := make([]bool, len(ps))
	var nexec atomic.Int64
	var execs span
	e.prog.set("running (no watchers)", func() string { return fmt.Sprintf("executed %d/%d", nexec.Load(), len(ps)) })
	e.paceExecutions(ctx, ps, o.Rate/statusesPerPayment, start.Add(o.Duration), func(i int, _ *client.ExecutionResponse, at time.Time) {
		executed[i] = true
		nexec.Add(1)
		execs.add(at)
	})
	waitUntil(ctx, o.Drain, func() bool { return false })
	e.res.MeasuredSeconds = time.Since(start).Seconds()
	e.stopSampler(ctx, sampler)
	e.prog.set("verifying", func() string { return "" })
	var final atomic.Int64
	err = forEach(context.WithoutCancel(ctx), len(ps), o.Concurrency, func(ctx context.Context, i int) error {
		if !executed[i] {
			return nil
		}
		res, err := e.api.CollectionStatus(ctx, ps[i].referenceID)
		if err != nil {
			e.errs.add("status %s: %v", ps[i].referenceID, err)
		} else if res.Status.Terminal() {
			final.Add(1)
		}
		return nil
	})
	e.res.Expected, e.res.Delivered = nexec.Load(), final.Load()
	e.res.AchievedRate = execs.rate(nexec.Load()) * statusesPerPayment
	return err
}
