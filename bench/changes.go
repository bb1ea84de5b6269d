package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// slowPhoneSuffix makes the sandbox keep a payment PROCESSING for its long
// delay (docs/sandbox.md), so its row can be touched without it moving on.
const slowPhoneSuffix = "02"

// maxTouchBatch bounds the reference ids per status-touch request.
const maxTouchBatch = 500

// touchMessage is the gateway_message of one touch batch; the run id keeps a
// previous run's rows (sent once as the latest state on subscribe) apart.
func (e *env) touchMessage(batch int64) string {
	return "bench-" + e.runID + "-" + strconv.FormatInt(batch, 10)
}

// touchBatch reads the batch number back from a delivered gateway_message;
// ok is false for messages of other runs.
func (e *env) touchBatch(msg []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(msg, []byte("bench-"))
	if !ok {
		return 0, false
	}
	rest, ok = bytes.CutPrefix(rest, []byte(e.runID))
	if !ok || len(rest) < 2 || rest[0] != '-' {
		return 0, false
	}
	return parseInt(rest[1:])
}

// touch calls the sandbox's POST /v1/sandbox/status-touch: each listed
// execution's public status row gets an UPDATE of gateway_message and
// updated_at in its own transaction, in list order.
func (e *env) touch(ctx context.Context, refs []string, msg string) error {
	tok, err := e.api.AccessToken(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"reference_ids": refs, "gateway_message": msg})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.res.Target+"/v1/sandbox/status-touch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status-touch: %s: %s", resp.Status, strings.TrimSpace(string(data)))
	}
	var out struct {
		Touched int `json:"touched"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("status-touch: %w", err)
	}
	if out.Touched != len(refs) {
		return fmt.Errorf("status-touch: touched %d of %d rows", out.Touched, len(refs))
	}
	return nil
}

// changesState is what subscribers of the changes scenario record.
type changesState struct {
	e          *env
	lastBatch  []int64   // per subscription; written by its socket's reader goroutine
	count      []int64   // deliveries per subscription, likewise
	got        [][]int64 // batches received per subscription, likewise: names what was lost
	snapSeen   []bool    // the row's state from before the run arrived (the join's snapshot)
	snapshots  atomic.Int64
	latency    Histogram
	commits    span
	receipts   span
	delivered  atomic.Int64
	duplicates atomic.Int64
	outOfOrder atomic.Int64
}

func (s *changesState) onChange(sub int, c *rowChange, at time.Time) {
	batch, ok := s.e.touchBatch(c.gatewayMessage)
	if !ok {
		// The row's state from before this run: the snapshot sent once after
		// "Subscribed to PostgreSQL".
		if !s.snapSeen[sub] {
			s.snapSeen[sub] = true
			s.snapshots.Add(1)
		}
		return
	}
	switch last := s.lastBatch[sub]; {
	case batch == last:
		s.duplicates.Add(1)
		return
	case batch < last:
		s.outOfOrder.Add(1)
		s.e.errs.add("row %s: touch %d after %d", c.referenceID, batch, last)
		return
	}
	s.lastBatch[sub] = batch
	s.count[sub]++
	s.got[sub] = append(s.got[sub], batch)
	s.delivered.Add(1)
	s.receipts.add(at)
	if committed, ok := parseTimestamp(c.updatedAt); ok {
		s.latency.Record(at.Sub(committed))
		s.commits.add(committed)
	} else {
		s.e.errs.add("row %s: unreadable updated_at %q", c.referenceID, c.updatedAt)
	}
}

func runChanges(ctx context.Context, e *env) error {
	o := e.o
	rows := o.N
	phone := o.Phone[:len(o.Phone)-2] + slowPhoneSuffix
	ps, err := e.preparePayments(ctx, rows, phone, true)
	if err != nil {
		return err
	}
	var executed atomic.Int64
	e.prog.set("setup", func() string { return fmt.Sprintf("executions %d/%d", executed.Load(), rows) })
	err = forEach(ctx, rows, o.Concurrency, func(ctx context.Context, i int) error {
		if _, err := e.execute(ctx, ps[i]); err != nil {
			return fmt.Errorf("execute: %w", err)
		}
		executed.Add(1)
		return nil
	})
	if err != nil {
		return err
	}

	// Subscriptions k-major: sub = k*rows + row. With at most rows channels per
	// socket, no socket carries two channels of one row (the realtime key
	// allows one topic per payment, and a second join would replace the first).
	k := o.Subscribers
	specs := make([]subSpec, rows*k)
	for j := range specs {
		p := ps[j%rows]
		specs[j] = subSpec{sessionID: p.sessionID, referenceID: p.referenceID, key: p.key}
	}
	st := &changesState{e: e, lastBatch: make([]int64, len(specs)), count: make([]int64, len(specs)), got: make([][]int64, len(specs)), snapSeen: make([]bool, len(specs))}
	for j := range st.lastBatch {
		st.lastBatch[j] = -1
	}
	pool := newSubPool(e, specs, st.onChange)
	defer pool.close()
	e.prog.set("subscribing", func() string {
		return fmt.Sprintf("sockets %d, subscribed %d/%d", pool.connsOpen.Load(), pool.subscribed.Load(), len(specs))
	})
	if err := pool.connect(ctx, min(o.ChannelsPerConn, rows)); err != nil {
		return err
	}
	if err := pool.waitSubscribed(ctx, subscribeTimeout(len(specs))); err != nil {
		return err
	}
	if o.WaitSnapshots {
		// Start in steady state: every channel has its row's snapshot. A
		// change committed before a channel's snapshot is read is folded into
		// it (the client sees the newer state only), which would count as a
		// lost touch; --wait-snapshots=false measures exactly that window.
		e.prog.set("snapshots", func() string { return fmt.Sprintf("%d/%d", st.snapshots.Load(), len(specs)) })
		want := int64(len(specs))
		if !waitUntil(ctx, subscribeTimeout(len(specs)), func() bool { return st.snapshots.Load() >= want }) {
			return fmt.Errorf("%d of %d channels received their row's snapshot", st.snapshots.Load(), want)
		}
	}
	e.res.Connections, e.res.Subscriptions = int(pool.connsOpen.Load()), len(specs)
	e.res.SetupSeconds = time.Since(e.started).Seconds()

	sampler, err := e.startSampler(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	touched := make([]int64, rows)        // per row; each row is written by one worker only
	touchBatches := make([][]int64, rows) // likewise: which batches touched it
	var touchedTotal atomic.Int64
	e.prog.set("running", func() string {
		return fmt.Sprintf("touched %d, delivered %d, p99 %.2f ms", touchedTotal.Load(), st.delivered.Load(), ms(st.latency.Percentile(99)))
	})
	// Touch workers send status-touch requests in parallel (--concurrency of
	// them: each touch is its own commit, so parallel requests let the
	// database group commits). Worker w owns the rows ≡ w (mod workers) and
	// sends one request at a time, so a row's touches commit in the order
	// they were numbered.
	workers := min(o.Concurrency, rows)
	queues := make([]chan []int, workers)
	chunk := min(maxTouchBatch, max(rows/workers, 1)) // a chunk never repeats a row
	var wg sync.WaitGroup
	var batches atomic.Int64
	for w := range workers {
		queues[w] = make(chan []int, 256)
		wg.Go(func() {
			for list := range queues[w] {
				for len(list) > 0 {
					part := list[:min(chunk, len(list))]
					list = list[len(part):]
					refs := make([]string, len(part))
					for i, r := range part {
						refs[i] = ps[r].referenceID
					}
					batch := batches.Add(1)
					if err := e.touch(ctx, refs, e.touchMessage(batch)); err != nil {
						e.errs.add("%v", err)
						continue
					}
					for _, r := range part {
						touched[r]++
						touchBatches[r] = append(touchBatches[r], batch)
					}
					touchedTotal.Add(int64(len(part)))
				}
			}
		})
	}
	// Touches go out in 5 ms ticks: a request per touch would measure HTTP
	// overhead, not the change path.
	pacer := &Pacer{Rate: o.Rate, Max: o.MaxEvents, End: start.Add(o.Duration), Tick: 5 * time.Millisecond}
	next := 0
pace:
	for {
		n := pacer.Next(ctx)
		if n == 0 {
			break
		}
		lists := make([][]int, workers)
		for range n {
			r := next % rows
			lists[r%workers] = append(lists[r%workers], r)
			next++
		}
		for w, l := range lists {
			if len(l) == 0 {
				continue
			}
			select {
			case queues[w] <- l:
			case <-ctx.Done():
				break pace
			}
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	want := touchedTotal.Load() * int64(k)
	waitUntil(ctx, o.Drain, func() bool { return st.delivered.Load() >= want })
	e.res.MeasuredSeconds = time.Since(start).Seconds()
	e.stopSampler(ctx, sampler)
	pool.close()

	// Per subscription: each must have seen every touch of its row.
	r := e.res
	r.Expected = want
	shortSubs := 0
	for j, c := range st.count {
		r.Delivered += min(c, touched[j%rows])
		if c < touched[j%rows] {
			shortSubs++
			e.errs.add("subscription %d (row %s, socket %d): %d of %d touches delivered, missing batches %v",
				j, ps[j%rows].referenceID, j/min(o.ChannelsPerConn, rows), c, touched[j%rows], missing(touchBatches[j%rows], st.got[j], 5))
		}
	}
	if shortSubs > 0 {
		e.errs.add("%d of %d subscriptions missed touches", shortSubs, len(st.count))
	}
	r.Duplicates, r.OutOfOrder = st.duplicates.Load(), st.outOfOrder.Load()
	s := st.latency.Summarize()
	r.Latency = &s
	r.AchievedRate = st.commits.rate(touchedTotal.Load())
	r.DeliveryRate = st.receipts.rate(r.Delivered)
	return nil
}

// missing lists up to limit batches of want (ascending) absent from got
// (ascending).
func missing(want, got []int64, limit int) []int64 {
	var out []int64
	i := 0
	for _, b := range want {
		for i < len(got) && got[i] < b {
			i++
		}
		if i < len(got) && got[i] == b {
			continue
		}
		if out = append(out, b); len(out) == limit {
			break
		}
	}
	return out
}
