package sandbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/sandbox"
)

const waitFor = 20 * time.Second

// TestMain shares one PostgreSQL cluster among the package's tests; each
// PostgreSQL subtest gets a fresh database in it.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fixture struct {
	store    dollr.Store
	merchant *dollr.Merchant
	source   *dollr.Source
	party    *dollr.Party
}

func newFixture(t *testing.T, st dollr.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	m := &dollr.Merchant{Name: "m", ClientID: uuid.NewString(), ClientSecretHash: "00"}
	if err := st.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	return &fixture{store: st, merchant: m}
}

// execute stores a collection from a new source/session/account the way the
// API does, with the network's plan, and returns the stored execution.
func (f *fixture) execute(t *testing.T, n *sandbox.Network, method, number string) *dollr.Execution {
	t.Helper()
	ctx := context.Background()
	party := &dollr.Party{MerchantID: f.merchant.ID, Phone: "231770000099"}
	src := &dollr.Source{MerchantID: f.merchant.ID, Type: dollr.SourceInvoice, Status: dollr.SourceActive, Currency: "USD",
		TotalAmount: 1250, Items: []dollr.Item{{Name: "x", Currency: "USD", Amount: 1250}}, Mode: dollr.ModeDirect}
	if err := f.store.CreateCheckoutSource(ctx, party, src); err != nil {
		t.Fatal(err)
	}
	sess := &dollr.Session{MerchantID: f.merchant.ID, SourceID: src.ID, SourceType: src.Type, ExpiresAt: time.Now().Add(time.Hour)}
	if err := f.store.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	acct := &dollr.PaymentAccount{MerchantID: f.merchant.ID, PartyID: party.ID, AccountName: "a", Provider: "PAWAPAY",
		Method: method, AccountNumber: number, OperationType: dollr.OperationCollection, IsActive: true}
	if err := f.store.CreatePaymentAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	ref := uuid.NewString()
	now := time.Now()
	plan, err := n.Plan(acct, f.merchant.ID, ref, now)
	if err != nil {
		t.Fatal(err)
	}
	e := &dollr.Execution{MerchantID: f.merchant.ID, ReferenceID: ref, SessionID: sess.ID, SourceID: src.ID, SourceType: src.Type,
		PaymentAccountID: acct.ID, PaymentMethod: method, Status: plan.Status, PayerAmount: 1250, PayerCurrency: "USD",
		PayeeAmount: 1250 - sandbox.Fee(1250), PayeeCurrency: "USD", OperationType: dollr.OperationCollection,
		ProviderTransactionID: plan.ProviderTransactionID, GatewayMessage: plan.GatewayMessage, ClientSecret: plan.ClientSecret,
		RequiresAction: plan.RequiresAction, RequestHash: "h", CreatedAt: now, UpdatedAt: now}
	stored, created, err := f.store.CreateExecution(ctx, e, plan.Jobs)
	if err != nil || !created {
		t.Fatalf("CreateExecution: %v created=%v", err, created)
	}
	return stored
}

// startRunner runs a runner until the test ends (or stop is called).
func startRunner(t *testing.T, st dollr.Store, lease time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r := &sandbox.Runner{Store: st, Logger: quiet, Lease: lease, MaxIdle: 100 * time.Millisecond}
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// waitStatus polls the store until the execution has status want, and
// records every status seen so tests can check the path taken.
func waitStatus(t *testing.T, st dollr.Store, e *dollr.Execution, want dollr.ExecutionStatus) (*dollr.Execution, []dollr.ExecutionStatus) {
	t.Helper()
	seen := []dollr.ExecutionStatus{e.Status}
	deadline := time.Now().Add(waitFor)
	for {
		got, err := st.Execution(context.Background(), e.MerchantID, e.ReferenceID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != seen[len(seen)-1] {
			seen = append(seen, got.Status)
		}
		if got.Status == want {
			return got, seen
		}
		if got.Status.Terminal() {
			t.Fatalf("execution ended %s (%q), want %s; path %v", got.Status, got.GatewayMessage, want, seen)
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution still %s after %s, want %s", got.Status, waitFor, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunnerOutcomes(t *testing.T) { backends.Each(t, testRunnerOutcomes) }

func testRunnerOutcomes(t *testing.T, b backends.Backend) {
	st := b.Open(t)
	f := newFixture(t, st)
	n := &sandbox.Network{Delay: 150 * time.Millisecond, LongDelay: 300 * time.Millisecond}
	startRunner(t, st, 30*time.Second)
	cases := []struct {
		method, number string
		initial, final dollr.ExecutionStatus
		msg            string
	}{
		{"MTN_MOMO_LBR", "231770000010", dollr.StatusPending, dollr.StatusCompleted, sandbox.MsgCompleted},
		{"MTN_MOMO_LBR", "231770000001", dollr.StatusPending, dollr.StatusFailed, sandbox.MsgInsufficient},
		{"MTN_MOMO_RWA", "250788000002", dollr.StatusPending, dollr.StatusCompleted, sandbox.MsgCompleted},
		{"MTN_MOMO_LBR", "231770000003", dollr.StatusFailed, dollr.StatusFailed, sandbox.MsgInvalidAccount},
		{"ORANGE_MONEY_LBR", "231770000004", dollr.StatusPending, dollr.StatusFailed, sandbox.MsgTimedOut},
		{dollr.MethodCreditCard, "pm_card_visa", dollr.StatusPending, dollr.StatusCompleted, sandbox.MsgCompleted},
		{dollr.MethodCreditCard, "pm_card_chargeDeclined", dollr.StatusFailed, dollr.StatusFailed, sandbox.MsgCardDeclined},
		{dollr.MethodCreditCard, "pm_card_threeDSecure2Required", dollr.StatusProcessing, dollr.StatusFailed, sandbox.Msg3DSTimedOut},
	}
	for _, c := range cases {
		t.Run(c.number, func(t *testing.T) {
			t.Parallel()
			e := f.execute(t, n, c.method, c.number)
			if e.Status != c.initial {
				t.Fatalf("initial status %s, want %s", e.Status, c.initial)
			}
			got, seen := waitStatus(t, st, e, c.final)
			if got.GatewayMessage != c.msg {
				t.Fatalf("gateway message %q, want %q", got.GatewayMessage, c.msg)
			}
			// Never backwards, never skipping PROCESSING when starting PENDING.
			for i := 1; i < len(seen); i++ {
				if !dollr.CanTransition(seen[i-1], seen[i]) {
					t.Fatalf("illegal path %v", seen)
				}
			}
			if c.initial == dollr.StatusPending && c.final.Terminal() && len(seen) == 2 {
				// The PROCESSING step may have passed between polls; the store's
				// row history is the authority, checked in TestRunnerPathThroughProcessing.
				t.Logf("path %v (PROCESSING passed between polls)", seen)
			}
			if got.RequiresAction {
				t.Fatal("requires_action still true at the end")
			}
			src, err := st.Source(context.Background(), f.merchant.ID, got.SourceID)
			if err != nil {
				t.Fatal(err)
			}
			if want := dollr.SourceStatusFor(c.final); src.Status != want {
				t.Fatalf("source %s, want %s", src.Status, want)
			}
		})
	}
}

// TestRunnerPathThroughProcessing checks, through the change feed, that a
// normal payment goes PENDING → PROCESSING → COMPLETED.
func TestRunnerPathThroughProcessing(t *testing.T) { backends.Each(t, testRunnerPathThroughProcessing) }

func testRunnerPathThroughProcessing(t *testing.T, b backends.Backend) {
	st := b.Open(t)
	f := newFixture(t, st)
	startRunner(t, st, 30*time.Second)
	e := f.execute(t, &sandbox.Network{Delay: 50 * time.Millisecond}, "MTN_MOMO_LBR", "231770000010")
	waitStatus(t, st, e, dollr.StatusCompleted)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var statuses []string
	st.Follow(ctx, 0, func(batch []dollr.Change) error {
		for _, c := range batch {
			if c.Record != nil && c.Record["reference_id"] == e.ReferenceID {
				statuses = append(statuses, c.Record["status"].(string))
			}
		}
		if len(statuses) >= 3 {
			cancel()
		}
		return nil
	})
	if want := []string{"PENDING", "PROCESSING", "COMPLETED"}; len(statuses) != 3 || statuses[0] != want[0] || statuses[1] != want[1] || statuses[2] != want[2] {
		t.Fatalf("feed statuses %v, want %v", statuses, want)
	}
}

func TestAuthenticate3DS(t *testing.T) { backends.Each(t, testAuthenticate3DS) }

func testAuthenticate3DS(t *testing.T, b backends.Backend) {
	st := b.Open(t)
	f := newFixture(t, st)
	n := &sandbox.Network{Delay: time.Millisecond, LongDelay: time.Hour}
	ctx := context.Background()
	for _, succeed := range []bool{true, false} {
		e := f.execute(t, n, dollr.MethodCreditCard, "pm_card_threeDSecure2Required")
		if e.Status != dollr.StatusProcessing || !e.RequiresAction || e.ClientSecret == "" {
			t.Fatalf("3DS execution = %+v", e)
		}
		got, err := sandbox.Authenticate(ctx, st, e.ClientSecret, succeed, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want, msg := dollr.StatusCompleted, sandbox.Msg3DSSucceeded
		if !succeed {
			want, msg = dollr.StatusFailed, sandbox.Msg3DSFailed
		}
		if got.Status != want || got.RequiresAction || got.GatewayMessage != msg {
			t.Fatalf("after 3DS = %s %v %q", got.Status, got.RequiresAction, got.GatewayMessage)
		}
		// Answering again changes nothing.
		again, err := sandbox.Authenticate(ctx, st, e.ClientSecret, !succeed, time.Now())
		if err != nil || again.Status != want {
			t.Fatalf("second answer = %v, %v", again, err)
		}
	}
	// Wrong or foreign secrets are not found.
	e := f.execute(t, n, dollr.MethodCreditCard, "pm_card_threeDSecure2Required")
	other := newFixture(t, st)
	otherE := other.execute(t, n, dollr.MethodCreditCard, "pm_card_threeDSecure2Required")
	// The last base32 character carries only two bits, so it is 'a' one time
	// in four: replace it with a character that surely differs.
	lastChanged := e.ClientSecret[:len(e.ClientSecret)-1] + "a"
	if lastChanged == e.ClientSecret {
		lastChanged = e.ClientSecret[:len(e.ClientSecret)-1] + "b"
	}
	otherPI, _, _ := strings.Cut(otherE.ClientSecret, "_secret_")
	_, secretPart, _ := strings.Cut(e.ClientSecret, "_secret_")
	for _, s := range []string{"", "pi_x_secret_y", e.ClientSecret + "a", lastChanged,
		otherE.ClientSecret[:len(otherE.ClientSecret)-3] + e.ClientSecret[len(e.ClientSecret)-3:],
		otherPI + "_secret_" + secretPart} {
		if s == otherE.ClientSecret {
			continue // the mix happened to rebuild the other payment's real secret
		}
		if _, err := sandbox.Authenticate(ctx, st, s, true, time.Now()); !dollr.IsNotFound(err) {
			t.Errorf("Authenticate(%q) = %v, want not found", s, err)
		}
	}
}

// TestRunnerSurvivesRestart stops the server mid-PROCESSING (runner stopped,
// store closed) and opens the same database again: the payment still completes.
func TestRunnerSurvivesRestart(t *testing.T) { backends.Each(t, testRunnerSurvivesRestart) }

func testRunnerSurvivesRestart(t *testing.T, b backends.Backend) {
	db := b.NewDatabase(t)
	st1 := db.Open(t)
	f := newFixture(t, st1)
	stop := startRunner(t, st1, 30*time.Second)
	// The delay leaves ample time to stop between PROCESSING and COMPLETED.
	e := f.execute(t, &sandbox.Network{Delay: 3 * time.Second}, "MTN_MOMO_LBR", "231770000010")
	waitStatus(t, st1, e, dollr.StatusProcessing)
	stop()
	if err := st1.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := db.Open(t)
	got, err := st2.Execution(context.Background(), e.MerchantID, e.ReferenceID)
	if err != nil || got.Status != dollr.StatusProcessing {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	startRunner(t, st2, 30*time.Second)
	waitStatus(t, st2, got, dollr.StatusCompleted)
}

// TestRunnerReclaimsAfterCrash: a worker claims the due job and dies holding
// the lease; after the lease lapses another process runs it.
func TestRunnerReclaimsAfterCrash(t *testing.T) { backends.Each(t, testRunnerReclaimsAfterCrash) }

func testRunnerReclaimsAfterCrash(t *testing.T, b backends.Backend) {
	db := b.NewDatabase(t)
	st1 := db.Open(t)
	f := newFixture(t, st1)
	e := f.execute(t, &sandbox.Network{}, "MTN_MOMO_LBR", "231770000010")
	jobs, err := st1.ClaimJobs(context.Background(), time.Now(), 10, 300*time.Millisecond)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	st1.Close() // the "crashed" worker never finishes its job

	st2 := db.Open(t)
	startRunner(t, st2, 30*time.Second)
	waitStatus(t, st2, e, dollr.StatusCompleted)
}

// TestRunJobTwiceIsStale: running a step a second time (a duplicate claim)
// changes nothing and never moves the payment backwards.
func TestRunJobTwiceIsStale(t *testing.T) { backends.Each(t, testRunJobTwiceIsStale) }

func testRunJobTwiceIsStale(t *testing.T, b backends.Backend) {
	st := b.Open(t)
	f := newFixture(t, st)
	e := f.execute(t, &sandbox.Network{Delay: time.Hour}, "MTN_MOMO_LBR", "231770000010")
	ctx := context.Background()
	jobs, err := st.ClaimJobs(ctx, time.Now().Add(time.Second), 10, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("claim: %v %v", jobs, err)
	}
	r := &sandbox.Runner{Store: st, Logger: quiet}
	if err := r.RunJob(ctx, jobs[0]); err != nil {
		t.Fatal(err)
	}
	first, _ := st.Execution(ctx, e.MerchantID, e.ReferenceID)
	if first.Status != dollr.StatusProcessing {
		t.Fatalf("after step: %s", first.Status)
	}
	if err := r.RunJob(ctx, jobs[0]); err != nil {
		t.Fatal(err)
	}
	second, _ := st.Execution(ctx, e.MerchantID, e.ReferenceID)
	if second.Status != dollr.StatusProcessing || !second.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("stale step changed the payment: %s at %v", second.Status, second.UpdatedAt)
	}
	// The next step (the completion, an hour out) is still pending: the stale
	// run deleted only its own job. This needs job ids that are never reused.
	at, ok, err := st.NextJobAt(ctx)
	if err != nil || !ok || time.Until(at) < 50*time.Minute {
		t.Fatalf("NextJobAt = %v %v %v", at, ok, err)
	}
}

// TestRunnerDropsBadJobs: a job with an unknown kind or a garbage payload
// is removed instead of retried forever, and the payment is left alone.
func TestRunnerDropsBadJobs(t *testing.T) { backends.Each(t, testRunnerDropsBadJobs) }

func testRunnerDropsBadJobs(t *testing.T, b backends.Backend) {
	st := b.Open(t)
	f := newFixture(t, st)
	ctx := context.Background()
	e := f.execute(t, &sandbox.Network{}, "MTN_MOMO_LBR", "231770000003") // FAILED at once, no jobs
	// Schedule the bad jobs through a stale transition's sibling: a legal
	// transition on a second, fresh execution carries them.
	e2 := f.execute(t, &sandbox.Network{Delay: time.Hour, LongDelay: time.Hour}, dollr.MethodCreditCard, "pm_card_threeDSecure2Required")
	now := time.Now()
	if _, applied, err := st.ApplyTransition(ctx, dollr.Transition{
		ExecutionID: e2.ID, From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: now,
		Next: []dollr.Job{{Kind: "other", RunAt: now}, {Kind: sandbox.JobKind, Payload: "{", RunAt: now}},
	}); err != nil || !applied {
		t.Fatalf("ApplyTransition: %v %v", applied, err)
	}
	startRunner(t, st, 30*time.Second)
	deadline := time.Now().Add(waitFor)
	for {
		at, ok, err := st.NextJobAt(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Only the 3DS timeout (an hour out) may remain.
		if !ok || time.Until(at) > 30*time.Minute {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bad jobs still pending at %v", at)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, x := range []*dollr.Execution{e, e2} {
		got, _ := st.Execution(ctx, x.MerchantID, x.ReferenceID)
		if !got.Status.Terminal() {
			t.Fatalf("execution %d: %s", x.ID, got.Status)
		}
	}
}

// blockingStore holds ApplyTransition until its context ends, like a step
// caught mid-flight by a shutdown.
type blockingStore struct {
	dollr.Store
	entered chan struct{}
}

func (s *blockingStore) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return nil, false, ctx.Err()
}

// TestRunnerReleasesOnStop: jobs claimed but not run when the runner stops are
// handed back, so the next start runs them at once, not after the lease.
func TestRunnerReleasesOnStop(t *testing.T) { backends.Each(t, testRunnerReleasesOnStop) }

func testRunnerReleasesOnStop(t *testing.T, b backends.Backend) {
	st := b.NewDatabase(t).Open(t)
	f := newFixture(t, st)
	var es []*dollr.Execution
	for range 3 {
		es = append(es, f.execute(t, &sandbox.Network{}, "MTN_MOMO_LBR", "231770000010"))
	}
	blocking := &blockingStore{Store: st, entered: make(chan struct{}, 1)}
	stop := startRunner(t, blocking, time.Hour)
	select {
	case <-blocking.entered:
	case <-time.After(waitFor):
		t.Fatal("the runner never ran a job")
	}
	stop()
	jobs, err := st.ClaimJobs(context.Background(), time.Now(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(es) {
		t.Fatalf("%d of %d jobs claimable after the runner stopped; the rest stay leased for an hour", len(jobs), len(es))
	}
}

// flakyStore fails the first ApplyTransition and the first RetryJob, as a
// database connection that drops between them would.
type flakyStore struct {
	dollr.Store
	applyFailed, retryFailed atomic.Bool
}

func (s *flakyStore) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	if s.applyFailed.CompareAndSwap(false, true) {
		return nil, false, errors.New("terminating connection due to administrator command")
	}
	return s.Store.ApplyTransition(ctx, t)
}

func (s *flakyStore) RetryJob(ctx context.Context, id int64, runAt time.Time) error {
	if s.retryFailed.CompareAndSwap(false, true) {
		return errors.New("terminating connection due to administrator command")
	}
	return s.Store.RetryJob(ctx, id, runAt)
}

// TestRunnerHandsBackStrandedJob: a job whose step and whose retry both
// failed (the database went away between them) runs again as soon as the
// store answers, not after its lease (an hour here).
func TestRunnerHandsBackStrandedJob(t *testing.T) { backends.Each(t, testRunnerHandsBackStrandedJob) }

func testRunnerHandsBackStrandedJob(t *testing.T, b backends.Backend) {
	st := b.NewDatabase(t).Open(t)
	f := newFixture(t, st)
	e := f.execute(t, &sandbox.Network{Delay: 10 * time.Millisecond}, "MTN_MOMO_LBR", "231770000010")
	flaky := &flakyStore{Store: st}
	startRunner(t, flaky, time.Hour)
	waitStatus(t, st, e, dollr.StatusCompleted)
	if !flaky.applyFailed.Load() || !flaky.retryFailed.Load() {
		t.Fatal("the failures were not injected")
	}
}

// outageStore goes down right after the runner first learns when the next
// step is due, and stays down until up is set.
type outageStore struct {
	dollr.Store
	down, up atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *outageStore) failing() bool { return s.down.Load() && !s.up.Load() }

func (s *outageStore) ClaimJobs(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]dollr.Job, error) {
	if s.failing() {
		return nil, errDown
	}
	return s.Store.ClaimJobs(ctx, now, limit, lease)
}

func (s *outageStore) NextJobAt(ctx context.Context) (time.Time, bool, error) {
	if s.failing() {
		return time.Time{}, false, errDown
	}
	at, ok, err := s.Store.NextJobAt(ctx)
	if ok {
		s.down.Store(true)
	}
	return at, ok, err
}

// TestRunnerOverdueMetric: while the store does not answer, the earliest
// pending step's lateness grows in dollr_sandbox_overdue_seconds, and it is
// back to 0 once the runner catches up.
func TestRunnerOverdueMetric(t *testing.T) {
	st := backends.SQLite.NewDatabase(t).Open(t)
	f := newFixture(t, st)
	e := f.execute(t, &sandbox.Network{Delay: time.Hour, LongDelay: time.Hour}, "MTN_MOMO_LBR", "231770000010")
	outage := &outageStore{Store: st}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&sandbox.Runner{Store: outage, Logger: quiet, MaxIdle: 50 * time.Millisecond, Registerer: reg}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	overdue := func() float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == "dollr_sandbox_overdue_seconds" {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1 // not registered yet: the runner is starting
	}
	deadline := time.Now().Add(waitFor)
	for overdue() < 0.1 {
		if time.Now().After(deadline) {
			t.Fatalf("overdue still %v with the store down", overdue())
		}
		time.Sleep(10 * time.Millisecond)
	}
	outage.up.Store(true)
	waitStatus(t, st, e, dollr.StatusProcessing)
	for overdue() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("overdue still %v after the runner caught up", overdue())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
