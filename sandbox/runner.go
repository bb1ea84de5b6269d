package sandbox

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
)

// Runner executes due sandbox jobs durably: a job is leased with
// Store.ClaimJobs, and its transition, its deletion and the next step commit
// in one transaction (Store.ApplyTransition). A runner that dies holding a
// lease leaves the job to be claimed again when the lease lapses; a step that
// already happened is stale and changes nothing, so re-running is safe.
type Runner struct {
	Store  dollr.Store
	Now    func() time.Time // time.Now if nil
	Logger *slog.Logger     // slog.Default() if nil
	// Lease is how long a claimed job is reserved (default 30s).
	Lease time.Duration
	// MaxIdle bounds how long the runner sleeps without checking the store, so
	// jobs scheduled by another process are picked up (default 1s).
	MaxIdle time.Duration
	// Batch is how many jobs one claim takes (default 64).
	Batch int
	// Registerer receives dollr_sandbox_overdue_seconds; nil registers none.
	Registerer prometheus.Registerer

	// nextDue is when the earliest job not yet run was due (Unix ns; 0: no
	// job), as last read from the store. While steps run on time it is in
	// the future; a store that stops answering leaves it to fall behind.
	nextDue atomic.Int64

	// stranded are jobs that failed and whose retry could not be recorded
	// either (the database went away, say): still leased to this runner,
	// they are handed back as soon as the store answers, rather than
	// waiting out the lease. Only Run's goroutine touches them.
	stranded []strandedJob
	// failing counts Run's consecutive failed rounds, to log an outage once
	// (then every failingLogEvery) instead of every round.
	failing int
}

type strandedJob struct {
	job       dollr.Job
	runAt     time.Time // when it should run again
	leaseEnds time.Time // after this, any runner may claim it anyway
}

// failingLogEvery is how often a lasting store outage is logged again.
const failingLogEvery = 30

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Runner) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// Run processes jobs until ctx ends, then returns ctx.Err().
func (r *Runner) Run(ctx context.Context) error {
	lease, maxIdle, batch := r.Lease, r.MaxIdle, r.Batch
	if lease <= 0 {
		lease = 30 * time.Second
	}
	if maxIdle <= 0 {
		maxIdle = time.Second
	}
	if batch <= 0 {
		batch = 64
	}
	if r.Registerer != nil {
		if err := r.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dollr_sandbox_overdue_seconds",
			Help: "How late the earliest pending payment step is (0 while steps run on time): payments stuck in PENDING or PROCESSING.",
		}, r.overdue)); err != nil {
			return err
		}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	defer func() {
		// Stopping: stranded jobs too are handed back if the store answers.
		for _, sj := range r.stranded {
			r.release(ctx, []dollr.Job{sj.job})
		}
		r.stranded = nil
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		case <-r.Store.JobAdded():
		}
		wait, err := r.runDue(ctx, lease, maxIdle, batch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if r.failing%failingLogEvery == 0 {
				r.logger().Error("sandbox runner", "err", err, "failed_rounds", r.failing+1)
			}
			r.failing++
			wait = maxIdle
		} else if r.failing > 0 {
			r.logger().Info("sandbox runner recovered", "failed_rounds", r.failing)
			r.failing = 0
		}
		if len(r.stranded) > 0 {
			wait = min(wait, maxIdle)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// runDue runs every job that is due now and returns how long to sleep.
func (r *Runner) runDue(ctx context.Context, lease, maxIdle time.Duration, batch int) (time.Duration, error) {
	r.handBackStranded(ctx)
	for {
		claimed := r.now()
		jobs, err := r.Store.ClaimJobs(ctx, claimed, batch, lease)
		if err != nil {
			return 0, err
		}
		for i, j := range jobs {
			if ctx.Err() != nil {
				r.release(ctx, jobs[i:])
				return 0, ctx.Err()
			}
			if err := r.RunJob(ctx, j); err != nil {
				if ctx.Err() != nil {
					r.release(ctx, jobs[i:])
					return 0, ctx.Err()
				}
				r.logger().Warn("sandbox job failed; retrying", "job", j.ID, "execution", j.ExecutionID, "attempts", j.Attempts, "err", err)
				backoff := min(time.Duration(j.Attempts)*time.Second, 30*time.Second)
				runAt := r.now().Add(backoff)
				if err := r.Store.RetryJob(ctx, j.ID, runAt); err != nil {
					r.logger().Warn("sandbox job retry not recorded; handing it back once the store answers", "job", j.ID, "err", err)
					r.stranded = append(r.stranded, strandedJob{job: j, runAt: runAt, leaseEnds: claimed.Add(lease)})
				}
			}
		}
		if len(jobs) < batch {
			break
		}
	}
	at, ok, err := r.Store.NextJobAt(ctx)
	if err != nil {
		return maxIdle, err
	}
	if !ok {
		r.nextDue.Store(0)
		return maxIdle, nil
	}
	r.nextDue.Store(at.UnixNano())
	d := at.Sub(r.now())
	if d <= 0 {
		// Due but not claimable: leased by another worker. Check back soon.
		d = min(250*time.Millisecond, maxIdle)
	}
	return min(d, maxIdle), nil
}

// overdue is how many seconds ago the earliest pending step fell due, 0 if
// none has.
func (r *Runner) overdue() float64 {
	due := r.nextDue.Load()
	if due == 0 {
		return 0
	}
	return max(0, r.now().Sub(time.Unix(0, due)).Seconds())
}

// handBackStranded records the retry of each stranded job, now that the store
// may answer again; a job whose lease has lapsed is anyone's to claim already.
func (r *Runner) handBackStranded(ctx context.Context) {
	kept := r.stranded[:0]
	for _, sj := range r.stranded {
		if !r.now().Before(sj.leaseEnds) {
			continue
		}
		err := r.Store.RetryJob(ctx, sj.job.ID, sj.runAt)
		switch {
		case err == nil:
			r.logger().Info("sandbox job handed back", "job", sj.job.ID, "execution", sj.job.ExecutionID, "run_at", sj.runAt)
		case dollr.IsNotFound(err): // its step committed after all
		default:
			kept = append(kept, sj)
		}
	}
	clear(r.stranded[len(kept):])
	r.stranded = kept
}

// release hands back jobs claimed but not run when the runner stops, so a
// graceful restart runs them at once instead of after their lease lapses. A job
// whose step did commit is gone already (not found), which is fine.
func (r *Runner) release(ctx context.Context, jobs []dollr.Job) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, j := range jobs {
		if err := r.Store.RetryJob(ctx, j.ID, j.RunAt); err != nil && !dollr.IsNotFound(err) {
			r.logger().Warn("sandbox: job stays leased until its lease lapses", "job", j.ID, "execution", j.ExecutionID, "err", err)
		}
	}
}

// RunJob applies a claimed job's first step, scheduling the rest in the same
// transaction. An error means the job should be retried.
func (r *Runner) RunJob(ctx context.Context, j dollr.Job) error {
	log := r.logger()
	if j.Kind != JobKind {
		log.Error("sandbox: dropping job of unknown kind", "job", j.ID, "kind", j.Kind)
		return r.Store.DeleteJob(ctx, j.ID)
	}
	steps, err := decodePayload(j.Payload)
	if err != nil {
		log.Error("sandbox: dropping job", "job", j.ID, "err", err)
		return r.Store.DeleteJob(ctx, j.ID)
	}
	s := steps[0]
	t := dollr.Transition{
		ExecutionID: j.ExecutionID, From: s.From, To: s.To, At: r.now(),
		RequiresAction: s.RequiresAction, DoneJobID: j.ID,
	}
	if s.GatewayMessage != "" {
		msg := s.GatewayMessage
		t.GatewayMessage = &msg
	}
	if len(steps) > 1 {
		next, err := stepsJob(steps[1:])
		if err != nil {
			return err
		}
		t.Next = []dollr.Job{next}
	}
	e, applied, err := r.Store.ApplyTransition(ctx, t)
	if dollr.ErrorCode(err) == dollr.EINVALID || dollr.IsNotFound(err) {
		// Not retryable: the payment is gone or the step is illegal.
		log.Error("sandbox: dropping job", "job", j.ID, "execution", j.ExecutionID, "err", err)
		return r.Store.DeleteJob(ctx, j.ID)
	} else if err != nil {
		return err
	}
	if applied {
		log.Debug("sandbox step", "execution", e.ID, "reference_id", e.ReferenceID, "from", s.From, "to", s.To)
	} else {
		log.Debug("sandbox step stale", "execution", j.ExecutionID, "from", s.From, "to", s.To, "now", e.Status)
	}
	return nil
}
