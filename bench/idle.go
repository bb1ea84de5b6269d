package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// runIdle opens N sockets, each subscribed to one payment channel on which
// nothing happens, holds them for the duration (heartbeats keep them alive)
// and reports the server's RSS growth per connection. Delivered counts the
// sockets and channels still alive at the end.
func runIdle(ctx context.Context, e *env) error {
	o := e.o
	n := o.N
	// One session serves every key: a realtime key names a session and a
	// reference id, and no execution needs to exist for it.
	ps, err := e.preparePayments(ctx, 1, o.Phone, false)
	if err != nil {
		return err
	}
	sess := ps[0]
	specs := make([]subSpec, n)
	var made atomic.Int64
	e.prog.set("setup", func() string { return fmt.Sprintf("realtime keys %d/%d", made.Load(), n) })
	err = forEach(ctx, n, o.Concurrency, func(ctx context.Context, i int) error {
		p := &payment{referenceID: uuid.NewString(), sessionID: sess.sessionID, sourceType: sess.sourceType}
		if err := e.mintKey(ctx, p); err != nil {
			return err
		}
		specs[i] = subSpec{sessionID: p.sessionID, referenceID: p.referenceID, key: p.key}
		made.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	e.res.SetupSeconds = time.Since(e.started).Seconds()

	// The baseline: the server with the API warmed up and no sockets.
	sampler, err := e.startSampler(ctx)
	if err != nil {
		return err
	}
	var unexpected atomic.Int64
	pool := newSubPool(e, specs, func(int, *rowChange, time.Time) { unexpected.Add(1) })
	defer pool.close()
	e.prog.set("connecting", func() string {
		rss, _ := sampler.Current()
		return fmt.Sprintf("sockets %d, subscribed %d/%d, server RSS %.1f MiB", pool.connsOpen.Load(), pool.subscribed.Load(), n, mib(rss))
	})
	if err := pool.connect(ctx, o.ChannelsPerConn); err != nil {
		return err
	}
	if err := pool.waitSubscribed(ctx, subscribeTimeout(n)); err != nil {
		return err
	}
	e.res.Connections, e.res.Subscriptions = int(pool.connsOpen.Load()), n
	start := time.Now()
	e.prog.set("holding", func() string {
		rss, cpu := sampler.Current()
		return fmt.Sprintf("%d sockets open, %s left, server RSS %.1f MiB, CPU %.2f s", pool.connsOpen.Load(),
			time.Until(start.Add(o.Duration)).Round(time.Second), mib(rss), cpu)
	})
	// Hold: sockets stay open with heartbeats; a lost one ends the wait early.
	waitUntil(ctx, o.Duration, func() bool { return pool.connsLost.Load() > 0 || pool.failed.Load() > 0 })
	e.res.MeasuredSeconds = time.Since(start).Seconds()
	e.stopSampler(ctx, sampler)
	alive := pool.connsOpen.Load()
	pool.close()

	r := e.res
	r.Expected = int64(n)
	r.Delivered = min(int64(n)-pool.failed.Load(), alive*int64(o.ChannelsPerConn))
	if u := unexpected.Load(); u > 0 {
		e.errs.add("%d postgres_changes events on channels that should be idle", u)
	}
	if s := r.Server; s != nil && n > 0 {
		r.RSSPerConnBytes = (float64(s.EndRSSBytes) - float64(s.StartRSSBytes)) / float64(n)
	}
	return nil
}
