package sandbox_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/backends"
	"github.com/dollr/dollr/sandbox"
)

// recordingStore is a real store that records what one runner did with it:
// the jobs it claimed and the transitions it applied.
type recordingStore struct {
	dollr.Store
	mu      sync.Mutex
	claimed []dollr.Job
	applied []dollr.Transition
	stale   []dollr.Transition
}

func (s *recordingStore) ClaimJobs(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]dollr.Job, error) {
	jobs, err := s.Store.ClaimJobs(ctx, now, limit, lease)
	s.mu.Lock()
	s.claimed = append(s.claimed, jobs...)
	s.mu.Unlock()
	return jobs, err
}

func (s *recordingStore) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	e, applied, err := s.Store.ApplyTransition(ctx, t)
	if err == nil {
		s.mu.Lock()
		if applied {
			s.applied = append(s.applied, t)
		} else {
			s.stale = append(s.stale, t)
		}
		s.mu.Unlock()
	}
	return e, applied, err
}

func (s *recordingStore) record() (claimed []dollr.Job, applied, stale []dollr.Transition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.claimed), slices.Clone(s.applied), slices.Clone(s.stale)
}

// feedStatuses returns, per reference_id, the statuses the change feed
// carried for each execution, from the feed's start. It commits a probe
// payment and reads until the probe arrives: the feed is in commit order, so
// everything committed before has been delivered by then.
func feedStatuses(t *testing.T, f *fixture) map[string][]string {
	t.Helper()
	probe := f.execute(t, &sandbox.Network{}, "MTN_MOMO_LBR", "231770000003") // FAILED at once: no jobs
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	statuses := map[string][]string{}
	sawProbe := false
	err := f.store.Follow(ctx, 0, func(batch []dollr.Change) error {
		for _, c := range batch {
			if c.Record == nil {
				continue
			}
			ref, _ := c.Record["reference_id"].(string)
			status, _ := c.Record["status"].(string)
			if ref == probe.ReferenceID {
				sawProbe = true
				cancel()
				continue
			}
			statuses[ref] = append(statuses[ref], status)
		}
		return nil
	})
	if !sawProbe {
		t.Fatalf("the change feed never delivered the probe: %v", err)
	}
	return statuses
}

// TestTwoRunnersShareJobs runs two servers' runners, each on its own store
// over one database: every payment takes each step exactly once (no job is
// claimed twice, no transition is applied twice or lost) and completes.
func TestTwoRunnersShareJobs(t *testing.T) { backends.Each(t, testTwoRunnersShareJobs) }

func testTwoRunnersShareJobs(t *testing.T, b backends.Backend) {
	db := b.NewDatabase(t)
	one := &recordingStore{Store: db.Open(t)}
	two := &recordingStore{Store: db.Open(t)}
	f := newFixture(t, one.Store)
	// A lease far longer than the test: a job claimed twice is a bug here,
	// not a lapsed lease.
	stopOne := startRunner(t, one, time.Minute)
	stopTwo := startRunner(t, two, time.Minute)

	const payments = 30
	n := &sandbox.Network{Delay: 300 * time.Millisecond}
	var executions []*dollr.Execution
	for range payments {
		executions = append(executions, f.execute(t, n, "MTN_MOMO_LBR", "231770000010"))
	}
	for _, e := range executions {
		waitStatus(t, one.Store, e, dollr.StatusCompleted)
	}
	// A runner records a step after its commit, which waitStatus may see
	// first; stopped runners have recorded everything.
	stopOne()
	stopTwo()

	claimedOne, appliedOne, staleOne := one.record()
	claimedTwo, appliedTwo, staleTwo := two.record()
	t.Logf("runner one claimed %d jobs, runner two %d", len(claimedOne), len(claimedTwo))
	seen := map[int64]bool{}
	for _, j := range append(claimedOne, claimedTwo...) {
		if seen[j.ID] {
			t.Errorf("job %d (execution %d) claimed twice", j.ID, j.ExecutionID)
		}
		seen[j.ID] = true
	}
	if len(seen) != 2*payments {
		t.Errorf("%d jobs claimed, want %d (accept and complete per payment)", len(seen), 2*payments)
	}
	if stale := append(staleOne, staleTwo...); len(stale) > 0 {
		t.Errorf("%d stale transitions, e.g. %+v: a step ran twice", len(stale), stale[0])
	}
	type step struct {
		execution int64
		to        dollr.ExecutionStatus
	}
	steps := map[step]int{}
	for _, tr := range append(appliedOne, appliedTwo...) {
		steps[step{tr.ExecutionID, tr.To}]++
	}
	for _, e := range executions {
		for _, to := range []dollr.ExecutionStatus{dollr.StatusProcessing, dollr.StatusCompleted} {
			if n := steps[step{e.ID, to}]; n != 1 {
				t.Errorf("execution %d: %s applied %d times, want once", e.ID, to, n)
			}
		}
	}
	// The feed agrees: each payment went PENDING → PROCESSING → COMPLETED,
	// each status once.
	statuses := feedStatuses(t, f)
	for _, e := range executions {
		if got := statuses[e.ReferenceID]; !slices.Equal(got, []string{"PENDING", "PROCESSING", "COMPLETED"}) {
			t.Errorf("execution %d: feed statuses %v", e.ID, got)
		}
	}
	if at, ok, err := one.NextJobAt(context.Background()); err != nil || ok {
		t.Errorf("jobs left after every payment completed: next at %v (%v)", at, err)
	}
}

// stallingStore makes its runner hang in the completing step until the
// runner is killed, as if its process froze holding the job's lease.
type stallingStore struct {
	dollr.Store
	stalled chan dollr.Transition // receives the step it hangs in
}

func (s *stallingStore) ApplyTransition(ctx context.Context, t dollr.Transition) (*dollr.Execution, bool, error) {
	if t.To == dollr.StatusCompleted {
		s.stalled <- t
		<-ctx.Done()
		return nil, false, ctx.Err()
	}
	return s.Store.ApplyTransition(ctx, t)
}

// TestRunnerKilledHoldingJob: a server's runner claims a payment's
// completing step and is killed in the middle of it (its context cancelled,
// its store closed) while the payment is PROCESSING. Another server sharing
// the database claims the step once the lease lapses and completes the
// payment, exactly once.
func TestRunnerKilledHoldingJob(t *testing.T) { backends.Each(t, testRunnerKilledHoldingJob) }

func testRunnerKilledHoldingJob(t *testing.T, b backends.Backend) {
	db := b.NewDatabase(t)
	first := db.Open(t)
	f := newFixture(t, first)
	stalling := &stallingStore{Store: first, stalled: make(chan dollr.Transition, 1)}
	const lease = time.Second
	kill := startRunner(t, stalling, lease)
	e := f.execute(t, &sandbox.Network{Delay: 300 * time.Millisecond}, "MTN_MOMO_LBR", "231770000010")
	var held dollr.Transition
	select {
	case held = <-stalling.stalled:
	case <-time.After(waitFor):
		t.Fatal("the first runner never started the completing step")
	}
	if held.ExecutionID != e.ID || held.From != dollr.StatusProcessing {
		t.Fatalf("first runner stalled in %+v", held)
	}
	kill()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := &recordingStore{Store: db.Open(t)}
	if got, err := second.Execution(context.Background(), e.MerchantID, e.ReferenceID); err != nil || got.Status != dollr.StatusProcessing {
		t.Fatalf("after the kill: %+v, %v; want PROCESSING", got, err)
	}
	stopSecond := startRunner(t, second, time.Minute)
	waitStatus(t, second, e, dollr.StatusCompleted)
	stopSecond() // so the step it committed is recorded too

	claimed, applied, stale := second.record()
	if len(claimed) != 1 || claimed[0].ID != held.DoneJobID || claimed[0].Attempts != 2 {
		t.Fatalf("second runner claimed %+v, want job %d on its second attempt", claimed, held.DoneJobID)
	}
	if len(applied) != 1 || applied[0].To != dollr.StatusCompleted || len(stale) != 0 {
		t.Fatalf("second runner applied %+v (stale %+v), want the completion once", applied, stale)
	}
	f.store = second.Store // the first store is closed; the feed is read through the second
	if got := feedStatuses(t, f)[e.ReferenceID]; !slices.Equal(got, []string{"PENDING", "PROCESSING", "COMPLETED"}) {
		t.Fatalf("feed statuses %v", got)
	}
}
