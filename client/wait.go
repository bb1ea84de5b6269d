package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dollr/dollr"
)

// WaitOptions tunes WaitForCollection. The zero value polls only (no
// SessionID) with the default back-off.
type WaitOptions struct {
	// SessionID and SourceType identify the collection for a realtime key and
	// the channel payment-intent:<session_id>:<reference_id>. Without a
	// SessionID (or without SupabaseURL/SupabaseAnonKey in the client's
	// Config) WaitForCollection polls only. SourceType defaults to INVOICE.
	SessionID  int64
	SourceType dollr.SourceType
	// RealtimeWindow is how long to wait over realtime for a final status
	// before polling instead; default 30 s (Dollr's guide). Negative: poll only.
	RealtimeWindow time.Duration
	// PollInterval is the first pause between Status API calls (default 2 s);
	// it grows by half after each call up to MaxPollInterval (default 10 s).
	// A longer Retry-After from the server wins.
	PollInterval    time.Duration
	MaxPollInterval time.Duration
	// OnUpdate is called for each new status observation; exact repeats and
	// stale (older) statuses are left out.
	OnUpdate func(Update)
	// OnFallback is called once if realtime is abandoned for polling, with why.
	OnFallback func(reason error)
	// OnRetry, when set, is called while polling each time a Status API call
	// fails with an error that is retried (a network error such as
	// "connection refused", a rate limit or a 5xx), and once more, with a
	// nil Err, when a call next succeeds. RetryEvent.Failures counts the
	// current run of failures, so a caller that reports only Failures == 1
	// and the recovery says one line per outage, not one per retry.
	OnRetry func(RetryEvent)
	// Realtime adjusts the realtime socket (timeouts, dialer); APIKey is
	// taken from the client's Config.
	Realtime RealtimeOptions
}

// Update is one observed status of a collection.
type Update struct {
	Status         dollr.ExecutionStatus
	GatewayMessage string
	RequiresAction bool
	// Via is "realtime" or "status_api".
	Via string
	// At is when the update was received.
	At time.Time
	// Execution is the Status API's answer (Via "status_api"); Record is the
	// checkout_payment_intent_public_status row (Via "realtime").
	Execution *ExecutionResponse
	Record    map[string]any
}

// RetryEvent is one OnRetry report: a retried Status API failure, or the
// recovery after a run of them.
type RetryEvent struct {
	// Err is the failure being retried; nil when a call succeeded after
	// Failures failed ones.
	Err error
	// Failures is the number of consecutive failed calls, this one included
	// (1 for the first of a run); on recovery, how many failed before it.
	Failures int
	// RetryIn is the pause before the next call (0 on recovery).
	RetryIn time.Duration
	// At is when the call failed or succeeded.
	At time.Time
}

const (
	ViaRealtime  = "realtime"
	ViaStatusAPI = "status_api"
)

// WaitForCollection waits for the collection referenceID to reach COMPLETED
// or FAILED, the way Dollr's guide prescribes: obtain a realtime key,
// subscribe to the collection's public status row, wait up to
// RealtimeWindow, then poll GET /v1/status/collection with back-off until the
// status is final or ctx ends. A realtime CHANNEL_ERROR, CLOSED, TIMED_OUT or
// refused key switches to polling at once. A final status seen over realtime
// is only a hint: the returned ExecutionResponse always comes from the Status
// API.
//
// Errors: ctx's error when it ends first, wrapping also the last retried
// error if the most recent Status API call failed (so errors.Is finds both
// context.DeadlineExceeded and, say, syscall.ECONNREFUSED); an *APIError for
// answers that retrying cannot fix (404: the execution does not exist,
// 401/403/422). Rate limits, 5xx and network errors while polling are
// retried and reported through OnRetry.
func (c *Client) WaitForCollection(ctx context.Context, referenceID string, opts WaitOptions) (*ExecutionResponse, error) {
	if referenceID == "" {
		return nil, errors.New("client: WaitForCollection needs a reference ID")
	}
	if opts.SourceType == "" {
		opts.SourceType = dollr.SourceInvoice
	}
	if opts.RealtimeWindow == 0 {
		opts.RealtimeWindow = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.MaxPollInterval <= 0 {
		opts.MaxPollInterval = 10 * time.Second
	}
	if opts.MaxPollInterval < opts.PollInterval {
		opts.MaxPollInterval = opts.PollInterval
	}
	w := &waiter{c: c, ref: referenceID, opts: opts}
	if res, done, err := w.realtime(ctx); done {
		return res, err
	}
	return w.poll(ctx)
}

type waiter struct {
	c    *Client
	ref  string
	opts WaitOptions
	last *Update
	// failures counts consecutive failed polls; lastErr is the latest of
	// them (nil once a poll succeeds).
	failures int
	lastErr  error
}

// report passes u to OnUpdate unless it repeats or predates the last one.
func (w *waiter) report(u Update) {
	if w.last != nil {
		if statusRank(u.Status) < statusRank(w.last.Status) {
			return // a late realtime event after the Status API moved on
		}
		if u.Status == w.last.Status && u.GatewayMessage == w.last.GatewayMessage && u.RequiresAction == w.last.RequiresAction {
			return
		}
	}
	w.last = &u
	if w.opts.OnUpdate != nil {
		w.opts.OnUpdate(u)
	}
}

func (w *waiter) reportExecution(res *ExecutionResponse) {
	w.report(Update{Status: res.Status, GatewayMessage: res.GatewayMessage, RequiresAction: res.RequiresAction,
		Via: ViaStatusAPI, At: time.Now(), Execution: res})
}

func statusRank(s dollr.ExecutionStatus) int {
	switch s {
	case dollr.StatusPending:
		return 0
	case dollr.StatusProcessing:
		return 1
	case dollr.StatusCompleted, dollr.StatusFailed:
		return 2
	}
	return 0
}

func (w *waiter) fallback(reason error) {
	if w.opts.OnFallback != nil {
		w.opts.OnFallback(reason)
	}
}

// rtEvent is what realtime callbacks hand the waiting goroutine.
type rtEvent struct {
	status ChannelStatus
	err    error
	change *PostgresChange
}

// realtime runs the realtime phase. done=false means: continue by polling.
func (w *waiter) realtime(ctx context.Context) (res *ExecutionResponse, done bool, err error) {
	cfg := w.c.cfg
	if w.opts.SessionID <= 0 || cfg.SupabaseURL == "" || cfg.SupabaseAnonKey == "" || w.opts.RealtimeWindow < 0 {
		return nil, false, nil
	}
	wctx, cancel := context.WithTimeout(ctx, w.opts.RealtimeWindow)
	defer cancel()
	// outcome turns a failure of the realtime phase into "poll now", unless
	// the caller's own context ended.
	outcome := func(reason error) (*ExecutionResponse, bool, error) {
		if ctx.Err() != nil {
			return nil, true, w.ctxErr(ctx)
		}
		w.fallback(reason)
		return nil, false, nil
	}

	keyReq := RealtimeKeyRequest{SessionID: w.opts.SessionID, SourceType: w.opts.SourceType, ReferenceID: w.ref}
	key, err := w.c.CreateRealtimeKey(wctx, keyReq)
	if err != nil {
		return outcome(fmt.Errorf("realtime key: %w", err))
	}
	events := make(chan rtEvent, 16)
	stop := make(chan struct{})
	defer close(stop)
	deliver := func(e rtEvent) {
		select {
		case events <- e:
		case <-stop:
		}
	}
	ropts := w.opts.Realtime
	ropts.APIKey = cfg.SupabaseAnonKey
	conn, err := DialRealtime(wctx, cfg.SupabaseURL, ropts)
	if err != nil {
		return outcome(fmt.Errorf("realtime connect: %w", err))
	}
	defer conn.Close()
	ch, err := conn.Join(fmt.Sprintf("payment-intent:%d:%s", w.opts.SessionID, w.ref), ChannelOptions{
		AccessToken: key.AccessToken,
		PostgresChanges: []PostgresChangesFilter{{
			Event: "*", Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable, Filter: "reference_id=eq." + w.ref,
		}},
		OnStatus: func(s ChannelStatus, err error) { deliver(rtEvent{status: s, err: err}) },
		OnChange: func(ev *PostgresChange) { deliver(rtEvent{change: ev}) },
	})
	if err != nil {
		return outcome(err)
	}

	// Renew the key when two thirds of its life have passed, so a long
	// window never runs on an expired key (the server would close the channel).
	var renew <-chan time.Time
	if key.ExpiresIn > 0 {
		t := time.NewTimer(time.Duration(key.ExpiresIn) * time.Second * 2 / 3)
		defer t.Stop()
		renew = t.C
	}

	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, true, w.ctxErr(ctx)
			}
			return outcome(fmt.Errorf("no final status over realtime within %s", w.opts.RealtimeWindow))
		case <-renew:
			renew = nil
			if k, err := w.c.CreateRealtimeKey(wctx, keyReq); err == nil {
				_ = ch.SetAccessToken(k.AccessToken)
				if k.ExpiresIn > 0 {
					t := time.NewTimer(time.Duration(k.ExpiresIn) * time.Second * 2 / 3)
					defer t.Stop()
					renew = t.C
				}
			}
		case e := <-events:
			if e.change == nil {
				if e.status != ChannelSubscribed {
					return outcome(fmt.Errorf("realtime %s: %v", e.status, e.err))
				}
				// Catch up on anything committed before the subscription was
				// live: one Status API call. A 404 here only means the
				// execution has not landed yet; its INSERT will arrive.
				res, err := w.c.CollectionStatus(wctx, w.ref)
				switch {
				case err == nil:
					w.reportExecution(res)
					if res.Status.Terminal() {
						return res, true, nil
					}
				case IsNotFound(err):
				case isFatal(err):
					return nil, true, err
				}
				continue
			}
			rec := e.change.Record
			if rec == nil {
				continue // a DELETE carries no status
			}
			st, _ := rec["status"].(string)
			msg, _ := rec["gateway_message"].(string)
			ra, _ := rec["requires_action"].(bool)
			w.report(Update{Status: dollr.ExecutionStatus(st), GatewayMessage: msg, RequiresAction: ra,
				Via: ViaRealtime, At: e.change.ReceivedAt, Record: rec})
			if !dollr.ExecutionStatus(st).Terminal() {
				continue
			}
			// Realtime is a UX hint; the Status API decides.
			res, err := w.c.CollectionStatus(ctx, w.ref)
			if err != nil {
				if ctx.Err() != nil {
					return nil, true, w.ctxErr(ctx)
				}
				if isFatal(err) {
					return nil, true, err
				}
				return outcome(fmt.Errorf("confirming over the Status API: %w", err))
			}
			w.reportExecution(res)
			if res.Status.Terminal() {
				return res, true, nil
			}
			// The row said final but the Status API does not yet: realtime
			// has nothing more to send, so poll until the two agree.
			return outcome(fmt.Errorf("realtime said %s but the Status API still says %s", st, res.Status))
		}
	}
}

// isFatal reports whether retrying the same Status API call cannot help.
func isFatal(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && !ae.Temporary()
}

// nextPollInterval grows d by half, up to max.
func nextPollInterval(d, max time.Duration) time.Duration {
	d += d / 2
	if d > max {
		return max
	}
	return d
}

// poll calls the Status API at once, then with back-off, until a final status.
func (w *waiter) poll(ctx context.Context) (*ExecutionResponse, error) {
	interval := w.opts.PollInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		res, err := w.c.CollectionStatus(ctx, w.ref)
		wait := interval
		switch {
		case err == nil:
			w.recovered()
			w.reportExecution(res)
			if res.Status.Terminal() {
				return res, nil
			}
		case ctx.Err() != nil:
			return nil, w.ctxErr(ctx)
		case isFatal(err):
			return nil, err
		default:
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > wait {
				wait = ae.RetryAfter
			}
			w.failed(err, wait)
		}
		interval = nextPollInterval(interval, w.opts.MaxPollInterval)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return nil, w.ctxErr(ctx)
		case <-timer.C:
		}
	}
}

// failed records a retried poll failure and reports it.
func (w *waiter) failed(err error, retryIn time.Duration) {
	w.failures++
	w.lastErr = err
	if w.opts.OnRetry != nil {
		w.opts.OnRetry(RetryEvent{Err: err, Failures: w.failures, RetryIn: retryIn, At: time.Now()})
	}
}

// recovered ends a run of poll failures, reporting the recovery.
func (w *waiter) recovered() {
	if w.failures == 0 {
		return
	}
	n := w.failures
	w.failures, w.lastErr = 0, nil
	if w.opts.OnRetry != nil {
		w.opts.OnRetry(RetryEvent{Failures: n, At: time.Now()})
	}
}

// ctxErr is the error for ctx ending: it names the last status seen and,
// when the latest Status API call failed, that failure too.
func (w *waiter) ctxErr(ctx context.Context) error {
	what := fmt.Sprintf("collection %s", w.ref)
	if w.last != nil {
		what += fmt.Sprintf(" still %s", w.last.Status)
	}
	if w.lastErr != nil {
		return fmt.Errorf("%s: %w (last of %d failed Status API calls in a row: %w)", what, ctx.Err(), w.failures, w.lastErr)
	}
	return fmt.Errorf("%s: %w", what, ctx.Err())
}
