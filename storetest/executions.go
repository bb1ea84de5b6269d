package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

func testCreateExecution(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	c := newChain(t, s, m)
	e := c.execution()
	e.ProviderTransactionID = "ptx_1"
	e.ClientSecret = "pi_secret_1"
	e.RequiresAction = true
	e.GatewayMessage = "Approve on your phone"
	runAt := now().Add(time.Minute)
	stored, created, err := s.CreateExecution(ctx(t), e, []dollr.Job{{Kind: "momo.settle", Payload: `{"step":1}`, RunAt: runAt}})
	if err != nil || !created {
		t.Fatalf("CreateExecution = created %v, %v", created, err)
	}
	if stored.ID == 0 || stored.CreatedAt.IsZero() || stored.UpdatedAt.IsZero() {
		t.Fatalf("stored execution lacks ID or timestamps: %+v", stored)
	}
	want := *e
	want.ID, want.CreatedAt, want.UpdatedAt = stored.ID, stored.CreatedAt, stored.UpdatedAt
	checkExecution(t, "CreateExecution result", stored, &want)

	got, err := s.Execution(ctx(t), m.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("Execution: %v", err)
	}
	checkExecution(t, "Execution", got, stored)
	got, err = s.ExecutionByID(ctx(t), stored.ID)
	if err != nil {
		t.Fatalf("ExecutionByID: %v", err)
	}
	checkExecution(t, "ExecutionByID", got, stored)
	got, err = s.LatestExecutionForSource(ctx(t), m.ID, c.src.ID)
	if err != nil {
		t.Fatalf("LatestExecutionForSource: %v", err)
	}
	checkExecution(t, "LatestExecutionForSource", got, stored)

	src, err := s.Source(ctx(t), m.ID, c.src.ID)
	if err != nil {
		t.Fatalf("Source: %v", err)
	}
	if src.Status != dollr.SourceProcessing {
		t.Errorf("source status = %s after a PENDING execution, want %s", src.Status, dollr.SourceProcessing)
	}

	row, _, err := s.PublicStatus(ctx(t), c.sess.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("PublicStatus: %v", err)
	}
	checkPublicStatus(t, "PublicStatus", row, stored.PublicStatus())

	jobs, err := s.ClaimJobs(ctx(t), runAt, 10, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(jobs) != 1 {
		t.Fatalf("ClaimJobs returned %d jobs, want the 1 scheduled with the execution", len(jobs))
	}
	j := jobs[0]
	if j.ID == 0 || j.Kind != "momo.settle" || j.Payload != `{"step":1}` || j.ExecutionID != stored.ID || !j.RunAt.Equal(runAt) || j.Attempts != 1 {
		t.Errorf("job = %+v, want kind momo.settle for execution %d at %v, attempt 1", j, stored.ID, runAt)
	}

	_, err = s.Execution(ctx(t), other.ID, e.ReferenceID)
	wantCode(t, err, dollr.ENOTFOUND, "Execution(another merchant)")
	_, err = s.Execution(ctx(t), m.ID, newUUID())
	wantCode(t, err, dollr.ENOTFOUND, "Execution(unknown reference)")
	_, err = s.ExecutionByID(ctx(t), stored.ID+1000)
	wantCode(t, err, dollr.ENOTFOUND, "ExecutionByID(unknown)")
	_, err = s.LatestExecutionForSource(ctx(t), other.ID, c.src.ID)
	wantCode(t, err, dollr.ENOTFOUND, "LatestExecutionForSource(another merchant)")
	_, other2 := newSource(t, s, m)
	_, err = s.LatestExecutionForSource(ctx(t), m.ID, other2.ID)
	wantCode(t, err, dollr.ENOTFOUND, "LatestExecutionForSource(source without executions)")

	// After a failed attempt the customer tries again on a new session: the
	// newest execution is the one reported.
	failed := transition(t, s, stored, dollr.StatusFailed)
	sess2 := newSession(t, s, m, c.src)
	e2 := c.execution()
	e2.SessionID = sess2.ID
	second := create(t, s, e2)
	got, err = s.LatestExecutionForSource(ctx(t), m.ID, c.src.ID)
	if err != nil {
		t.Fatalf("LatestExecutionForSource: %v", err)
	}
	if got.ID != second.ID || got.ID == failed.ID {
		t.Errorf("LatestExecutionForSource = %d, want the newer %d", got.ID, second.ID)
	}

	// Creation times, newest first, bounded by n (the hosted checkout's
	// bound on new payments per source reads these).
	for _, tc := range []struct {
		merchant, source int64
		n                int
		want             []time.Time
	}{
		{m.ID, c.src.ID, 10, []time.Time{second.CreatedAt, stored.CreatedAt}},
		{m.ID, c.src.ID, 1, []time.Time{second.CreatedAt}},
		{m.ID, c.src.ID, 0, nil},
		{other.ID, c.src.ID, 10, nil},
		{m.ID, other2.ID, 10, nil},
	} {
		times, err := s.RecentExecutionTimes(ctx(t), tc.merchant, tc.source, tc.n)
		if err != nil {
			t.Fatalf("RecentExecutionTimes: %v", err)
		}
		if !slices.EqualFunc(times, tc.want, equalTime) {
			t.Errorf("RecentExecutionTimes(merchant %d, source %d, %d) = %v, want %v", tc.merchant, tc.source, tc.n, times, tc.want)
		}
	}
}

func testCreateExecutionSourceStatus(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	for _, st := range []dollr.ExecutionStatus{dollr.StatusPending, dollr.StatusProcessing, dollr.StatusCompleted, dollr.StatusFailed} {
		t.Run(string(st), func(t *testing.T) {
			c := newChain(t, s, m)
			e := c.execution()
			e.Status = st
			stored := create(t, s, e)
			if stored.Status != st {
				t.Fatalf("stored status %s, want %s", stored.Status, st)
			}
			src, err := s.Source(ctx(t), m.ID, c.src.ID)
			if err != nil {
				t.Fatalf("Source: %v", err)
			}
			if want := dollr.SourceStatusFor(st); src.Status != want {
				t.Errorf("source status = %s, want %s", src.Status, want)
			}
			if st == dollr.StatusCompleted {
				if src.PaidAt == nil || src.PaidAt.Before(stored.CreatedAt.Add(-time.Minute)) {
					t.Errorf("paid_at = %v for a source whose execution was created COMPLETED", src.PaidAt)
				}
			} else if src.PaidAt != nil {
				t.Errorf("paid_at = %v, want nil", src.PaidAt)
			}
		})
	}
}

func testCreateExecutionIdempotent(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	c, first := newExecution(t, s, m, dollr.Job{Kind: "k", RunAt: now()})
	// A retry with the same reference_id, even against another session and
	// with other jobs, stores nothing and returns the first execution.
	c2 := newChain(t, s, m)
	retry := c2.execution()
	retry.ReferenceID = first.ReferenceID
	stored, created, err := s.CreateExecution(ctx(t), retry, []dollr.Job{{Kind: "k2", RunAt: now()}})
	if err != nil {
		t.Fatalf("CreateExecution(retry): %v", err)
	}
	if created {
		t.Fatalf("CreateExecution(retry): created = true")
	}
	checkExecution(t, "retry result", stored, first)
	jobs, err := s.ClaimJobs(ctx(t), now().Add(time.Hour), 10, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(jobs) != 1 || jobs[0].Kind != "k" {
		t.Errorf("jobs after the retry = %+v, want only the first execution's job", jobs)
	}
	src2, err := s.Source(ctx(t), m.ID, c2.src.ID)
	if err != nil || src2.Status != dollr.SourceActive {
		t.Errorf("the retry's source = %v, %v; want it untouched (ACTIVE)", src2, err)
	}
	// The retry's session stays free.
	e := c2.execution()
	create(t, s, e)
	_ = c
}

func testCreateExecutionConcurrent(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	c := newChain(t, s, m)
	proto := c.execution()
	const callers = 100
	type result struct {
		e       *dollr.Execution
		created bool
		err     error
	}
	results := make([]result, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range callers {
		wg.Go(func() {
			e := *proto
			<-start
			stored, created, err := s.CreateExecution(ctx(t), &e, []dollr.Job{{Kind: "once", RunAt: now()}})
			results[i] = result{stored, created, err}
		})
	}
	close(start)
	wg.Wait()
	createdCount := 0
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("caller %d: %v", i, r.err)
		}
		if r.created {
			createdCount++
		}
		if r.e == nil || r.e.ID != results[0].e.ID {
			t.Fatalf("caller %d got execution %+v, caller 0 got %d", i, r.e, results[0].e.ID)
		}
	}
	if createdCount != 1 {
		t.Fatalf("%d callers created the execution, want exactly 1", createdCount)
	}
	jobs, err := s.ClaimJobs(ctx(t), now().Add(time.Hour), 1000, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(jobs) != 1 {
		t.Errorf("%d jobs stored, want the one job of the one created execution", len(jobs))
	}
}

func testCreateExecutionPerMerchant(t *testing.T, s dollr.Store) {
	a := newMerchant(t, s)
	b := newMerchant(t, s)
	_, ea := newExecution(t, s, a)
	cb := newChain(t, s, b)
	e := cb.execution()
	e.ReferenceID = ea.ReferenceID
	eb := create(t, s, e)
	if eb.ID == ea.ID || eb.MerchantID != b.ID {
		t.Fatalf("same reference_id under another merchant returned %+v, want a separate execution", eb)
	}
	got, err := s.Execution(ctx(t), a.ID, ea.ReferenceID)
	if err != nil || got.ID != ea.ID {
		t.Errorf("merchant a's execution = %v, %v; want %d", got, err, ea.ID)
	}
	got, err = s.Execution(ctx(t), b.ID, ea.ReferenceID)
	if err != nil || got.ID != eb.ID {
		t.Errorf("merchant b's execution = %v, %v; want %d", got, err, eb.ID)
	}
	row, _, err := s.PublicStatus(ctx(t), cb.sess.ID, ea.ReferenceID)
	if err != nil || row.ID != eb.ID {
		t.Errorf("PublicStatus of b's session = %v, %v; want %d", row, err, eb.ID)
	}
}

func testCreateExecutionSessionConflict(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	c, first := newExecution(t, s, m)
	e := c.execution() // same session, new reference_id
	stored, created, err := s.CreateExecution(ctx(t), e, []dollr.Job{{Kind: "never", RunAt: now()}})
	wantCode(t, err, dollr.ECONFLICT, "CreateExecution on a used session")
	wantFieldLoc(t, err, "body", "session_id")
	if stored != nil || created {
		t.Errorf("conflict returned %+v, created %v", stored, created)
	}
	_, err = s.Execution(ctx(t), m.ID, e.ReferenceID)
	wantCode(t, err, dollr.ENOTFOUND, "Execution(conflicting reference)")
	jobs, err := s.ClaimJobs(ctx(t), now().Add(time.Hour), 10, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(jobs) != 0 {
		t.Errorf("conflict stored jobs %+v", jobs)
	}
	row, _, err := s.PublicStatus(ctx(t), c.sess.ID, first.ReferenceID)
	if err != nil || row.ID != first.ID {
		t.Errorf("PublicStatus of the session = %v, %v; want the first execution", row, err)
	}
}

func testApplyTransition(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	c, e := newExecution(t, s, m, dollr.Job{Kind: "momo.process", RunAt: t0})
	jobs, err := s.ClaimJobs(ctx(t), t0, 10, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ClaimJobs = %v, %v; want the execution's job", jobs, err)
	}
	msg, ptx, action := "Waiting for approval", "ptx_42", true
	at := t0.Add(time.Second)
	next := t0.Add(5 * time.Second)
	got, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{
		ExecutionID: e.ID, From: dollr.StatusPending, To: dollr.StatusProcessing, At: at,
		GatewayMessage: &msg, ProviderTransactionID: &ptx, RequiresAction: &action,
		DoneJobID: jobs[0].ID,
		Next:      []dollr.Job{{Kind: "momo.settle", Payload: "p", RunAt: next}},
	})
	if err != nil || !applied {
		t.Fatalf("ApplyTransition = applied %v, %v", applied, err)
	}
	want := *e
	want.Status, want.GatewayMessage, want.ProviderTransactionID, want.RequiresAction, want.UpdatedAt = dollr.StatusProcessing, msg, ptx, true, at
	checkExecution(t, "ApplyTransition result", got, &want)
	read, err := s.ExecutionByID(ctx(t), e.ID)
	if err != nil {
		t.Fatalf("ExecutionByID: %v", err)
	}
	checkExecution(t, "ExecutionByID", read, &want)
	row, _, err := s.PublicStatus(ctx(t), c.sess.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("PublicStatus: %v", err)
	}
	checkPublicStatus(t, "PublicStatus", row, want.PublicStatus())
	src, err := s.Source(ctx(t), m.ID, c.src.ID)
	if err != nil || src.Status != dollr.SourceProcessing || src.PaidAt != nil {
		t.Fatalf("source = %+v, %v; want PROCESSING, unpaid", src, err)
	}

	// The done job is gone; the next one is scheduled for this execution.
	jobs, err = s.ClaimJobs(ctx(t), next.Add(time.Hour), 10, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(jobs) != 1 || jobs[0].Kind != "momo.settle" || jobs[0].Payload != "p" || jobs[0].ExecutionID != e.ID || !jobs[0].RunAt.Equal(next) {
		t.Fatalf("jobs after the transition = %+v, want only momo.settle for %d at %v", jobs, e.ID, next)
	}

	// Unset optional fields stay as they are; COMPLETED pays the source.
	paidAt := at.Add(time.Second)
	got, applied, err = s.ApplyTransition(ctx(t), dollr.Transition{
		ExecutionID: e.ID, From: dollr.StatusProcessing, To: dollr.StatusCompleted, At: paidAt, DoneJobID: jobs[0].ID,
	})
	if err != nil || !applied {
		t.Fatalf("ApplyTransition(COMPLETED) = applied %v, %v", applied, err)
	}
	want.Status, want.UpdatedAt = dollr.StatusCompleted, paidAt
	checkExecution(t, "ApplyTransition(COMPLETED)", got, &want)
	src, err = s.Source(ctx(t), m.ID, c.src.ID)
	if err != nil {
		t.Fatalf("Source: %v", err)
	}
	if src.Status != dollr.SourcePaid || src.PaidAt == nil || !src.PaidAt.Equal(paidAt) {
		t.Errorf("source = %s paid at %v, want PAID at %v", src.Status, src.PaidAt, paidAt)
	}
	if ok, _ := hasJobs(t, s); ok {
		t.Errorf("jobs left after the last transition")
	}
}

// hasJobs reports whether any job is stored, claimable or not.
func hasJobs(t *testing.T, s dollr.Store) (bool, time.Time) {
	t.Helper()
	at, ok, err := s.NextJobAt(ctx(t))
	if err != nil {
		t.Fatalf("NextJobAt: %v", err)
	}
	return ok, at
}

func testApplyTransitionStale(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	c, e := newExecution(t, s, m, dollr.Job{Kind: "a", RunAt: t0}, dollr.Job{Kind: "b", RunAt: t0.Add(time.Second)})
	e = transition(t, s, e, dollr.StatusProcessing)
	jobs, err := s.ClaimJobs(ctx(t), t0, 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ClaimJobs = %v, %v", jobs, err)
	}
	// A job that ran twice replays PENDING -> PROCESSING.
	staleMsg := "stale"
	got, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{
		ExecutionID: e.ID, From: dollr.StatusPending, To: dollr.StatusProcessing, At: now().Add(time.Hour),
		GatewayMessage: &staleMsg, DoneJobID: jobs[0].ID, Next: []dollr.Job{{Kind: "stale-next", RunAt: t0}},
	})
	if err != nil {
		t.Fatalf("stale ApplyTransition: %v", err)
	}
	if applied {
		t.Fatalf("stale ApplyTransition applied")
	}
	checkExecution(t, "stale result", got, e)
	read, err := s.ExecutionByID(ctx(t), e.ID)
	if err != nil {
		t.Fatalf("ExecutionByID: %v", err)
	}
	checkExecution(t, "after stale", read, e)
	row, _, err := s.PublicStatus(ctx(t), c.sess.ID, e.ReferenceID)
	if err != nil {
		t.Fatalf("PublicStatus: %v", err)
	}
	checkPublicStatus(t, "after stale", row, e.PublicStatus())
	rest, err := s.ClaimJobs(ctx(t), t0.Add(time.Hour), 10, time.Minute)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	if len(rest) != 1 || rest[0].Kind != "b" {
		t.Errorf("jobs after a stale transition = %+v, want only b (DoneJobID deleted, Next not scheduled)", rest)
	}
}

func testApplyTransitionIllegal(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	c, e := newExecution(t, s, m, dollr.Job{Kind: "a", RunAt: t0})
	e = transition(t, s, e, dollr.StatusProcessing)
	e = transition(t, s, e, dollr.StatusCompleted)
	jobs, err := s.ClaimJobs(ctx(t), t0, 1, time.Minute)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ClaimJobs = %v, %v", jobs, err)
	}
	for _, tr := range []struct{ from, to dollr.ExecutionStatus }{
		{dollr.StatusCompleted, dollr.StatusPending},
		{dollr.StatusCompleted, dollr.StatusFailed},
		{dollr.StatusProcessing, dollr.StatusPending},
		{dollr.StatusPending, dollr.StatusPending},
	} {
		_, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{
			ExecutionID: e.ID, From: tr.from, To: tr.to, At: now(), DoneJobID: jobs[0].ID,
			Next: []dollr.Job{{Kind: "illegal-next", RunAt: t0}},
		})
		wantCode(t, err, dollr.EINVALID, string(tr.from)+"->"+string(tr.to))
		if applied {
			t.Errorf("%s->%s applied", tr.from, tr.to)
		}
	}
	read, err := s.ExecutionByID(ctx(t), e.ID)
	if err != nil {
		t.Fatalf("ExecutionByID: %v", err)
	}
	checkExecution(t, "after illegal moves", read, e)
	src, err := s.Source(ctx(t), m.ID, c.src.ID)
	if err != nil || src.Status != dollr.SourcePaid {
		t.Errorf("source = %v, %v; want PAID", src, err)
	}
	// Nothing changed: the claimed job is still there (leased), no job added.
	at, ok, err := s.NextJobAt(ctx(t))
	if err != nil || !ok || !at.Equal(t0.Add(time.Minute)) {
		t.Errorf("NextJobAt = %v, %v, %v; want the claimed job's lease end %v", at, ok, err, t0.Add(time.Minute))
	}
	rest, err := s.ClaimJobs(ctx(t), t0.Add(time.Hour), 10, time.Minute)
	if err != nil || len(rest) != 1 || rest[0].ID != jobs[0].ID {
		t.Errorf("jobs after illegal moves = %+v, %v; want only job %d", rest, err, jobs[0].ID)
	}
}

func testApplyTransitionFailed(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	c, e := newExecution(t, s, m)
	msg := "Insufficient funds"
	got, applied, err := s.ApplyTransition(ctx(t), dollr.Transition{
		ExecutionID: e.ID, From: dollr.StatusPending, To: dollr.StatusFailed, At: now(), GatewayMessage: &msg,
	})
	if err != nil || !applied {
		t.Fatalf("ApplyTransition(FAILED) = %v, %v", applied, err)
	}
	if got.Status != dollr.StatusFailed || got.GatewayMessage != msg {
		t.Errorf("execution = %+v", got)
	}
	src, err := s.Source(ctx(t), m.ID, c.src.ID)
	if err != nil || src.Status != dollr.SourceActive || src.PaidAt != nil {
		t.Errorf("source after FAILED = %+v, %v; want ACTIVE again so the customer can retry", src, err)
	}
}

func testApplyTransitionNotFound(t *testing.T, s dollr.Store) {
	_, _, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: 424242, From: dollr.StatusPending, To: dollr.StatusProcessing, At: now()})
	wantCode(t, err, dollr.ENOTFOUND, "ApplyTransition(unknown execution)")
}

// testCreateExecutionOneSourceOnePayment: sessions of one source race to pay
// it; exactly one execution may start while the source is not ACTIVE, and a
// FAILED one frees the source for the next attempt.
func testCreateExecutionOneSourceOnePayment(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	c := newChain(t, s, m)
	const racers = 8
	chains := make([]*chain, racers)
	for i := range chains {
		cc := *c
		cc.sess = newSession(t, s, m, c.src)
		chains[i] = &cc
	}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		winners   []*dollr.Execution
		conflicts int
	)
	for _, cc := range chains {
		wg.Go(func() {
			stored, created, err := s.CreateExecution(context.Background(), cc.execution(), nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && created:
				winners = append(winners, stored)
			case dollr.ErrorCode(err) == dollr.ECONFLICT:
				conflicts++
			default:
				t.Errorf("CreateExecution = %v, %v, %v", stored, created, err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || conflicts != racers-1 {
		t.Fatalf("%d executions started on one source (%d conflicts), want exactly 1", len(winners), conflicts)
	}
	// Another session while the first is in flight: refused on session_id.
	late := *c
	late.sess = newSession(t, s, m, c.src)
	_, _, err := s.CreateExecution(ctx(t), late.execution(), nil)
	wantCode(t, err, dollr.ECONFLICT, "CreateExecution on a PROCESSING source")
	wantFieldLoc(t, err, "body", "session_id")
	// A failed payment returns the source to ACTIVE: a new session may try again.
	transition(t, s, winners[0], dollr.StatusFailed)
	create(t, s, late.execution())
}

func testNoteGatewayMessage(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	other := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	_, e := newExecution(t, s, m)
	e = transition(t, s, e, dollr.StatusProcessing)
	at := now().Add(time.Second)
	got, err := s.NoteGatewayMessage(ctx(t), m.ID, e.ReferenceID, "USSD prompt sent", at)
	if err != nil {
		t.Fatalf("NoteGatewayMessage: %v", err)
	}
	if got.Status != dollr.StatusProcessing || got.GatewayMessage != "USSD prompt sent" || !got.UpdatedAt.Equal(at) {
		t.Fatalf("NoteGatewayMessage returned %+v", got)
	}
	read, err := s.Execution(ctx(t), m.ID, e.ReferenceID)
	if err != nil || read.GatewayMessage != "USSD prompt sent" || read.Status != dollr.StatusProcessing {
		t.Fatalf("Execution after the note = %+v, %v", read, err)
	}
	cs := f.WaitFor(t, "the note's UPDATE", func(cs []dollr.Change) bool {
		for _, c := range of(cs, e.ID) {
			if c.Type == dollr.ChangeUpdate && c.Record["gateway_message"] == "USSD prompt sent" {
				return true
			}
		}
		return false
	})
	rowChanges := of(cs, e.ID)
	checkChange(t, rowChanges[len(rowChanges)-1], dollr.ChangeUpdate, got.PublicStatus())

	_, err = s.NoteGatewayMessage(ctx(t), other.ID, e.ReferenceID, "x", at)
	wantCode(t, err, dollr.ENOTFOUND, "NoteGatewayMessage(another merchant)")
	_, err = s.NoteGatewayMessage(ctx(t), m.ID, newUUID(), "x", at)
	wantCode(t, err, dollr.ENOTFOUND, "NoteGatewayMessage(unknown)")
	transition(t, s, got, dollr.StatusCompleted)
	_, err = s.NoteGatewayMessage(ctx(t), m.ID, e.ReferenceID, "late", at)
	wantCode(t, err, dollr.EINVALID, "NoteGatewayMessage(COMPLETED)")
}

// testNoteGatewayMessageConcurrent sends messages from many goroutines at
// once, the load a store may group-commit: every call gets its own answer,
// one execution's messages apply and reach the feed in the order they were
// sent, and refusals stay per call.
func testNoteGatewayMessageConcurrent(t *testing.T, s dollr.Store) {
	const (
		payments = 6
		notes    = 8
	)
	m := newMerchant(t, s)
	f := follow(t, s, 0)
	f.Live(t, s, m)
	var inFlight []*dollr.Execution
	for range payments + 1 {
		_, e := newExecution(t, s, m)
		inFlight = append(inFlight, transition(t, s, e, dollr.StatusProcessing))
	}
	_, done := newExecution(t, s, m)
	done = transition(t, s, done, dollr.StatusCompleted)
	shared := inFlight[payments] // written by several goroutines at once

	errs := make(chan error, payments*notes+4*notes+2*notes)
	var wg sync.WaitGroup
	for i := range payments {
		wg.Go(func() { // one writer per payment: its notes must land in order
			e := inFlight[i]
			for n := 1; n <= notes; n++ {
				msg := fmt.Sprintf("payment %d note %d", i, n)
				at := now()
				got, err := s.NoteGatewayMessage(ctx(t), m.ID, e.ReferenceID, msg, at)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", msg, err)
					continue
				}
				if got.ID != e.ID || got.GatewayMessage != msg || !got.UpdatedAt.Equal(at) {
					errs <- fmt.Errorf("%s: returned %+v", msg, got)
				}
			}
		})
	}
	for w := range 4 {
		wg.Go(func() {
			for n := range notes {
				msg := fmt.Sprintf("writer %d note %d", w, n)
				got, err := s.NoteGatewayMessage(ctx(t), m.ID, shared.ReferenceID, msg, now())
				if err != nil || got.GatewayMessage != msg {
					errs <- fmt.Errorf("shared %s: %+v, %v", msg, got, err)
				}
			}
		})
	}
	wg.Go(func() {
		for range notes {
			_, err := s.NoteGatewayMessage(ctx(t), m.ID, done.ReferenceID, "late", now())
			if de, ok := err.(*dollr.Error); !ok || de.Code != dollr.EINVALID {
				errs <- fmt.Errorf("note on a COMPLETED payment: %v, want EINVALID", err)
			}
			_, err = s.NoteGatewayMessage(ctx(t), m.ID, newUUID(), "unknown", now())
			if de, ok := err.(*dollr.Error); !ok || de.Code != dollr.ENOTFOUND {
				errs <- fmt.Errorf("note on an unknown payment: %v, want ENOTFOUND", err)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	// Each payment's row as it ended; the feed is in commit order, so once its
	// final state arrived every earlier note of it has too.
	final := make(map[int64]string)
	for _, e := range inFlight {
		read, err := s.Execution(ctx(t), m.ID, e.ReferenceID)
		if err != nil {
			t.Fatalf("Execution: %v", err)
		}
		final[e.ID] = read.GatewayMessage
	}
	if want := fmt.Sprintf("payment 0 note %d", notes); final[inFlight[0].ID] != want {
		t.Fatalf("payment 0 ends with %q, want %q", final[inFlight[0].ID], want)
	}
	cs := f.WaitFor(t, "every payment's last note", func(cs []dollr.Change) bool {
		for id, msg := range final {
			rows := of(cs, id)
			if len(rows) == 0 || rows[len(rows)-1].Record["gateway_message"] != msg {
				return false
			}
		}
		return true
	})
	checkOrder(t, cs)
	for i, e := range inFlight[:payments] {
		var got []string
		for _, c := range of(cs, e.ID) {
			if msg, _ := c.Record["gateway_message"].(string); strings.HasPrefix(msg, "payment ") {
				got = append(got, msg)
			}
		}
		want := make([]string, notes)
		for n := range notes {
			want[n] = fmt.Sprintf("payment %d note %d", i, n+1)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("payment %d: the feed carried its notes as %q, want %q", i, got, want)
		}
	}
	if got := len(of(cs, shared.ID)); got < 4*notes+2 {
		t.Fatalf("the shared payment has %d changes, want its INSERT, PROCESSING and %d notes", got, 4*notes)
	}
	if ps := of(cs, done.ID); ps[len(ps)-1].Record["status"] != string(dollr.StatusCompleted) || ps[len(ps)-1].Record["gateway_message"] == "late" {
		t.Fatalf("the COMPLETED payment changed: %v", ps[len(ps)-1].Record)
	}
}
