package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// subSpec is one subscription: the product snippet's channel for one payment.
type subSpec struct {
	sessionID   int64
	referenceID string
	key         string // realtime key (the channel's access_token)
}

// subPool owns a scenario's realtime sockets and their channels.
type subPool struct {
	e        *env
	specs    []subSpec
	onChange func(sub int, c *rowChange, at time.Time) // on the socket's reader goroutine

	mu    sync.Mutex
	conns []*rtConn

	joined, subscribed, failed atomic.Int64
	connsOpen, connsLost       atomic.Int64
	closing                    atomic.Bool
}

func newSubPool(e *env, specs []subSpec, onChange func(int, *rowChange, time.Time)) *subPool {
	return &subPool{e: e, specs: specs, onChange: onChange}
}

// connect opens ceil(len(specs)/perConn) sockets and joins every channel,
// specs[i*perConn:(i+1)*perConn] on socket i. Callers order specs so no
// socket carries two channels of one row.
func (p *subPool) connect(ctx context.Context, perConn int) error {
	nconn := ceilDiv(len(p.specs), perConn)
	return forEach(ctx, nconn, p.e.o.Concurrency, func(ctx context.Context, i int) error {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := dialRealtime(dctx, p.e.wsURL, p.e.dialer, p.e.o.Heartbeat, p)
		if err != nil {
			return fmt.Errorf("realtime socket %d: %w", i, err)
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.connsOpen.Add(1)
		for s := i * perConn; s < min((i+1)*perConn, len(p.specs)); s++ {
			sp := p.specs[s]
			if _, err := c.join(s, sp.sessionID, sp.referenceID, sp.key); err != nil {
				return fmt.Errorf("join: %w", err)
			}
		}
		return nil
	})
}

// waitSubscribed waits until every channel is live ("Subscribed to
// PostgreSQL"), a channel fails, or the timeout passes.
func (p *subPool) waitSubscribed(ctx context.Context, timeout time.Duration) error {
	n := int64(len(p.specs))
	waitUntil(ctx, timeout, func() bool {
		return p.subscribed.Load() == n || p.failed.Load() > 0 || p.connsLost.Load() > 0
	})
	if got := p.subscribed.Load(); got != n {
		return fmt.Errorf("%d of %d channels subscribed (%d failed, %d sockets lost); first errors: %v",
			got, n, p.failed.Load(), p.connsLost.Load(), firstErrors(&p.e.errs))
	}
	return nil
}

// close ends every socket and waits for their reader goroutines.
func (p *subPool) close() {
	p.closing.Store(true)
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	for _, c := range conns {
		<-c.done
	}
}

func (p *subPool) channelEvent(ch *rtChan, ev chanEvent, detail string) {
	switch ev {
	case chanJoinedOK:
		p.joined.Add(1)
	case chanSubscribed:
		p.subscribed.Add(1)
	case chanFailed:
		p.failed.Add(1)
		p.e.errs.add("channel %s: %s", ch.topic, detail)
	}
}

func (p *subPool) change(ch *rtChan, c *rowChange, at time.Time) {
	if p.onChange != nil {
		p.onChange(ch.sub, c, at)
	}
}

func (p *subPool) connClosed(c *rtConn, err error) {
	p.connsOpen.Add(-1)
	if err != nil && !p.closing.Load() {
		p.connsLost.Add(1)
		p.e.errs.add("realtime socket lost: %v", err)
	}
}

// subscribeTimeout scales with the number of channels: joins are answered in
// well under a millisecond each, but thousands queue behind each other.
func subscribeTimeout(n int) time.Duration {
	return 30*time.Second + time.Duration(n)*5*time.Millisecond
}

func firstErrors(l *errorLog) []string {
	errs, _ := l.snapshot()
	if len(errs) > 3 {
		errs = errs[:3]
	}
	return errs
}

func (p *subPool) badFrame(c *rtConn, frame []byte, err error) {
	const show = 300
	if len(frame) > show {
		frame = frame[:show]
	}
	p.e.errs.add("unreadable or unmatched frame (%v): %s", err, frame)
}

// watchPayments subscribes one channel per payment, channelsPerConn to a
// socket, waits until every channel is SUBSCRIBED and records the counts.
// The caller closes the pool.
func (e *env) watchPayments(ctx context.Context, ps []*payment, channelsPerConn int, onChange func(int, *rowChange, time.Time)) (*subPool, error) {
	specs := make([]subSpec, len(ps))
	for i, p := range ps {
		specs[i] = subSpec{sessionID: p.sessionID, referenceID: p.referenceID, key: p.key}
	}
	pool := newSubPool(e, specs, onChange)
	e.prog.set("subscribing", func() string {
		return fmt.Sprintf("sockets %d, subscribed %d/%d", pool.connsOpen.Load(), pool.subscribed.Load(), len(ps))
	})
	if err := pool.connect(ctx, channelsPerConn); err != nil {
		pool.close()
		return nil, err
	}
	if err := pool.waitSubscribed(ctx, subscribeTimeout(len(ps))); err != nil {
		pool.close()
		return nil, err
	}
	e.res.Connections, e.res.Subscriptions = int(pool.connsOpen.Load()), len(ps)
	return pool, nil
}
