package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

func claim(t *testing.T, s dollr.Store, at time.Time, limit int, lease time.Duration) []dollr.Job {
	t.Helper()
	jobs, err := s.ClaimJobs(ctx(t), at, limit, lease)
	if err != nil {
		t.Fatalf("ClaimJobs: %v", err)
	}
	return jobs
}

func testClaimJobsRunAt(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	_, e := newExecution(t, s, m, dollr.Job{Kind: "later", RunAt: t0.Add(time.Hour)})
	if jobs := claim(t, s, t0, 10, time.Minute); len(jobs) != 0 {
		t.Fatalf("claimed %+v before its RunAt", jobs)
	}
	if jobs := claim(t, s, t0.Add(time.Hour-time.Microsecond), 10, time.Minute); len(jobs) != 0 {
		t.Fatalf("claimed %+v a microsecond before its RunAt", jobs)
	}
	jobs := claim(t, s, t0.Add(time.Hour), 10, time.Minute)
	if len(jobs) != 1 || jobs[0].Kind != "later" || jobs[0].ExecutionID != e.ID || jobs[0].Attempts != 1 {
		t.Fatalf("claim at RunAt = %+v, want the job, attempt 1", jobs)
	}
}

func testClaimJobsLease(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	newExecution(t, s, m, dollr.Job{Kind: "k", RunAt: t0})
	first := claim(t, s, t0, 10, time.Minute)
	if len(first) != 1 || first[0].Attempts != 1 {
		t.Fatalf("first claim = %+v, want one job, attempt 1", first)
	}
	if jobs := claim(t, s, t0.Add(30*time.Second), 10, time.Minute); len(jobs) != 0 {
		t.Fatalf("claimed %+v while leased", jobs)
	}
	// The worker died: once the lease lapses the job is claimed again.
	again := claim(t, s, t0.Add(2*time.Minute), 10, time.Minute)
	if len(again) != 1 || again[0].ID != first[0].ID || again[0].Attempts != 2 {
		t.Fatalf("claim after the lease = %+v, want job %d, attempt 2", again, first[0].ID)
	}
	if !again[0].RunAt.Equal(t0) {
		t.Errorf("RunAt = %v, want %v unchanged by claiming", again[0].RunAt, t0)
	}
	if jobs := claim(t, s, t0.Add(2*time.Minute+30*time.Second), 10, time.Minute); len(jobs) != 0 {
		t.Fatalf("claimed %+v under the second lease", jobs)
	}
}

func testClaimJobsOrderAndLimit(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	_, e := newExecution(t, s, m,
		dollr.Job{Kind: "third", RunAt: t0.Add(3 * time.Second)},
		dollr.Job{Kind: "first", RunAt: t0.Add(1 * time.Second)},
		dollr.Job{Kind: "second", RunAt: t0.Add(2 * time.Second)},
	)
	jobs := claim(t, s, t0.Add(time.Minute), 2, time.Minute)
	if len(jobs) != 2 || jobs[0].Kind != "first" || jobs[1].Kind != "second" {
		t.Fatalf("claim limit 2 = %+v, want first and second (earliest RunAt first)", jobs)
	}
	jobs = claim(t, s, t0.Add(time.Minute), 2, time.Minute)
	if len(jobs) != 1 || jobs[0].Kind != "third" || jobs[0].ExecutionID != e.ID {
		t.Fatalf("second claim = %+v, want third", jobs)
	}
}

func testClaimJobsConcurrent(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	const executions, perExecution = 8, 5
	for range executions {
		jobs := make([]dollr.Job, perExecution)
		for j := range jobs {
			jobs[j] = dollr.Job{Kind: "work", RunAt: t0}
		}
		newExecution(t, s, m, jobs...)
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				jobs, err := s.ClaimJobs(ctx(t), t0, 3, time.Hour)
				if err != nil {
					t.Errorf("ClaimJobs: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != executions*perExecution {
		t.Errorf("claimed %d distinct jobs, want %d", len(seen), executions*perExecution)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
}

func testRetryJob(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	newExecution(t, s, m, dollr.Job{Kind: "k", RunAt: t0})
	jobs := claim(t, s, t0, 10, time.Minute)
	if len(jobs) != 1 {
		t.Fatalf("claim = %+v", jobs)
	}
	retryAt := t0.Add(5 * time.Minute)
	if err := s.RetryJob(ctx(t), jobs[0].ID, retryAt); err != nil {
		t.Fatalf("RetryJob: %v", err)
	}
	at, ok, err := s.NextJobAt(ctx(t))
	if err != nil || !ok || !at.Equal(retryAt) {
		t.Errorf("NextJobAt = %v, %v, %v; want %v", at, ok, err, retryAt)
	}
	// The lease has lapsed by then, but the job waits for its new RunAt.
	if got := claim(t, s, t0.Add(3*time.Minute), 10, time.Minute); len(got) != 0 {
		t.Fatalf("claimed %+v before the retry time", got)
	}
	got := claim(t, s, retryAt, 10, time.Minute)
	if len(got) != 1 || got[0].ID != jobs[0].ID || got[0].Attempts != 2 || !got[0].RunAt.Equal(retryAt) {
		t.Fatalf("claim at the retry time = %+v, want job %d, attempt 2, RunAt %v", got, jobs[0].ID, retryAt)
	}
	// A released job may run again before its lease would have lapsed.
	if err := s.RetryJob(ctx(t), jobs[0].ID, retryAt); err != nil {
		t.Fatalf("RetryJob: %v", err)
	}
	if got := claim(t, s, retryAt, 10, time.Minute); len(got) != 1 || got[0].Attempts != 3 {
		t.Fatalf("claim after an immediate retry = %+v, want attempt 3", got)
	}
	wantCode(t, s.RetryJob(ctx(t), jobs[0].ID+1000, retryAt), dollr.ENOTFOUND, "RetryJob(unknown)")
}

func testDeleteJob(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	newExecution(t, s, m, dollr.Job{Kind: "a", RunAt: t0}, dollr.Job{Kind: "b", RunAt: t0.Add(time.Second)})
	jobs := claim(t, s, t0, 1, time.Minute)
	if len(jobs) != 1 || jobs[0].Kind != "a" {
		t.Fatalf("claim = %+v", jobs)
	}
	if err := s.DeleteJob(ctx(t), jobs[0].ID); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	if err := s.DeleteJob(ctx(t), jobs[0].ID); err != nil {
		t.Fatalf("DeleteJob(already deleted) = %v, want nil", err)
	}
	rest := claim(t, s, t0.Add(time.Hour), 10, time.Minute)
	if len(rest) != 1 || rest[0].Kind != "b" {
		t.Fatalf("jobs after DeleteJob = %+v, want only b", rest)
	}
}

func testNextJobAt(t *testing.T, s dollr.Store) {
	if _, ok, err := s.NextJobAt(ctx(t)); err != nil || ok {
		t.Fatalf("NextJobAt on an empty store = %v, %v; want ok=false", ok, err)
	}
	m := newMerchant(t, s)
	t0 := now()
	newExecution(t, s, m, dollr.Job{Kind: "b", RunAt: t0.Add(2 * time.Hour)}, dollr.Job{Kind: "a", RunAt: t0.Add(time.Hour)})
	at, ok, err := s.NextJobAt(ctx(t))
	if err != nil || !ok || !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("NextJobAt = %v, %v, %v; want %v", at, ok, err, t0.Add(time.Hour))
	}
	// A claimed job counts from the end of its lease.
	jobs := claim(t, s, t0.Add(time.Hour), 1, 3*time.Hour)
	if len(jobs) != 1 || jobs[0].Kind != "a" {
		t.Fatalf("claim = %+v", jobs)
	}
	at, ok, err = s.NextJobAt(ctx(t))
	if err != nil || !ok || !at.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("NextJobAt with a leased job = %v, %v, %v; want b's RunAt %v", at, ok, err, t0.Add(2*time.Hour))
	}
	jobs = claim(t, s, t0.Add(2*time.Hour), 1, time.Minute)
	if len(jobs) != 1 || jobs[0].Kind != "b" {
		t.Fatalf("claim = %+v", jobs)
	}
	at, ok, err = s.NextJobAt(ctx(t))
	if want := t0.Add(2*time.Hour + time.Minute); err != nil || !ok || !at.Equal(want) {
		t.Fatalf("NextJobAt with both jobs leased = %v, %v, %v; want b's lease end %v", at, ok, err, want)
	}
}

func testJobAdded(t *testing.T, s dollr.Store) {
	ch := s.JobAdded()
	drain := func() {
		for {
			select {
			case <-ch:
			default:
				return
			}
		}
	}
	wait := func(what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(waitLimit):
			t.Fatalf("JobAdded not signalled after %s", what)
		}
		// Signalled after commit: the job is visible.
		if ok, _ := hasJobs(t, s); !ok {
			t.Fatalf("JobAdded signalled after %s before the job was visible", what)
		}
	}
	m := newMerchant(t, s)
	drain()
	_, e := newExecution(t, s, m, dollr.Job{Kind: "k", RunAt: now()})
	wait("CreateExecution with a job")

	jobs := claim(t, s, now(), 10, time.Hour)
	if err := s.DeleteJob(ctx(t), jobs[0].ID); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	drain()
	_, _, err := s.ApplyTransition(ctx(t), dollr.Transition{ExecutionID: e.ID, From: e.Status, To: dollr.StatusProcessing, At: now(),
		Next: []dollr.Job{{Kind: "next", RunAt: now()}}})
	if err != nil {
		t.Fatalf("ApplyTransition: %v", err)
	}
	wait("ApplyTransition with Next")

	// Never blocks: many commits with nobody receiving.
	for range 5 {
		newExecution(t, s, m, dollr.Job{Kind: "k", RunAt: now()})
	}
}

// testJobIDsNeverReused pins what the sandbox runner relies on: a job that ran
// twice (its lease lapsed mid-run) completes its transition with DoneJobID, and
// that must never delete a newer job that happens to get the same id.
func testJobIDsNeverReused(t *testing.T, s dollr.Store) {
	m := newMerchant(t, s)
	t0 := now()
	newExecution(t, s, m, dollr.Job{Kind: "first", RunAt: t0})
	first := claim(t, s, t0, 10, time.Minute)
	if len(first) != 1 {
		t.Fatalf("claim = %+v, want one job", first)
	}
	if err := s.DeleteJob(ctx(t), first[0].ID); err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	newExecution(t, s, m, dollr.Job{Kind: "second", RunAt: t0})
	second := claim(t, s, t0, 10, time.Minute)
	if len(second) != 1 {
		t.Fatalf("claim = %+v, want one job", second)
	}
	if second[0].ID <= first[0].ID {
		t.Fatalf("new job id %d after deleting job %d: ids must only grow", second[0].ID, first[0].ID)
	}
}
