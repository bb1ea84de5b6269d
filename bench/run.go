package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr/client"
)

// maxHTTPConns bounds the tool's HTTP connections to the server (setup,
// executions, polls), so descriptor use stays predictable.
const maxHTTPConns = 256

// env is what every scenario shares during one run.
type env struct {
	o       Options
	target  *url.URL
	wsURL   string
	dialer  *Dialer
	http    *http.Client
	api     *client.Client
	runID   string
	errs    errorLog
	prog    *progress
	res     *Result
	started time.Time
}

// Run executes one scenario against a running server and returns its
// result. An error means the run could not be carried out at all; a run that
// lost deliveries returns a Result with OK false.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	base := o.BaseURL
	if base == "" {
		base = o.Credentials.BaseURL
	}
	base = strings.TrimRight(base, "/")
	target, err := CheckTarget(base, o.AllowRemote)
	if err != nil {
		return nil, err
	}
	supabase := o.Credentials.SupabaseURL
	if o.BaseURL != "" || supabase == "" {
		supabase = base // dollr serves realtime on its API origin
	}
	if _, err := CheckTarget(supabase, o.AllowRemote); err != nil {
		return nil, err
	}
	if err := CheckConns(plannedConns(o), maxHTTPConns); err != nil {
		return nil, err
	}
	wsURL, err := realtimeURL(supabase, o.Credentials.SupabaseAnonKey)
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dialer := NewDialer(target)
	transport := &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConns:        maxHTTPConns,
		MaxIdleConnsPerHost: maxHTTPConns,
		MaxConnsPerHost:     maxHTTPConns,
		IdleConnTimeout:     90 * time.Second,
	}
	defer transport.CloseIdleConnections()
	hc := &http.Client{Transport: transport, Timeout: 60 * time.Second}
	api, err := client.New(client.Config{
		BaseURL: base, ClientID: o.Credentials.ClientID, ClientSecret: o.Credentials.ClientSecret,
		SupabaseURL: supabase, SupabaseAnonKey: o.Credentials.SupabaseAnonKey,
		HTTPClient: hc, UserAgent: "dollr-bench",
	})
	if err != nil {
		return nil, err
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	e := &env{
		o: o, target: target, wsURL: wsURL, dialer: dialer, http: hc, api: api,
		runID: hex.EncodeToString(id[:]), started: time.Now(),
		prog: newProgress(o.Progress, o.Scenario),
	}
	e.res = &Result{
		Scenario: o.Scenario, Label: o.Label, Target: base, StartedAt: e.started, Machine: ThisMachine(),
		Params: Params{
			N: o.N, Rate: o.Rate, ChannelsPerConn: o.ChannelsPerConn,
			DurationSeconds: o.Duration.Seconds(), MaxEvents: o.MaxEvents,
		},
	}
	if o.Scenario == "changes" {
		e.res.Params.Subscribers = o.Subscribers
	}
	if o.Scenario == "polling" {
		e.res.Params.PollSeconds = o.PollInterval.Seconds()
	}
	if o.Scenario != "idle" {
		e.res.TargetRate = o.Rate
	}
	defer e.prog.stop()

	switch o.Scenario {
	case "checkout":
		err = runCheckout(ctx, e)
	case "changes":
		err = runChanges(ctx, e)
	case "idle":
		err = runIdle(ctx, e)
	case "polling":
		err = runPolling(ctx, e)
	}
	if err != nil {
		return nil, err
	}
	r := e.res
	r.Errors, r.ErrorsTotal = e.errs.snapshot()
	if r.Delivered < r.Expected {
		r.Lost = r.Expected - r.Delivered
	}
	r.OK = r.Lost == 0 && r.ErrorsTotal == 0 && r.OutOfOrder == 0 && r.Expected > 0
	return r, nil
}

// plannedConns is how many realtime sockets a run will open.
func plannedConns(o Options) int {
	cpc := max(o.ChannelsPerConn, 1)
	switch o.Scenario {
	case "checkout":
		if !o.Subscribe {
			return 0
		}
	case "changes":
		cpc = min(cpc, o.N) // a socket never carries two channels on one row
		return ceilDiv(o.N*o.Subscribers, cpc)
	case "polling":
		if !o.Witness {
			return 0
		}
		return ceilDiv(o.N, witnessChannelsPerConn)
	}
	return ceilDiv(o.N, cpc)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// startSampler starts measuring the server; a server without the process
// collector series makes the run fail, since CPU is a required output.
func (e *env) startSampler(ctx context.Context) (*Sampler, error) {
	metricsURL := e.o.MetricsURL
	if metricsURL == "" {
		metricsURL = e.res.Target + "/metrics"
	}
	probe := &Probe{PID: e.o.ServerPID, MetricsURL: metricsURL, Client: e.http, DBPID: e.o.DBPID}
	if err := probe.CheckPID(ctx); err != nil {
		return nil, err
	}
	s, err := StartSampler(ctx, probe, e.o.SampleInterval)
	if err != nil {
		return nil, fmt.Errorf("reading server usage: %w", err)
	}
	return s, nil
}

// stopSampler records the window's usage into the result.
func (e *env) stopSampler(ctx context.Context, s *Sampler) {
	u, err := s.Stop(context.WithoutCancel(ctx))
	if err != nil {
		e.errs.add("server usage: %v", err)
	}
	e.res.Server = &u
}

// forEach runs fn(i) for i in [0, n) on the given number of workers, and
// stops handing out work at the first error or when ctx ends.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// waitUntil polls cond every 20 ms until it holds, ctx ends or the timeout
// passes; it reports whether cond held.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}
