package sandbox

import (
	"context"
	"log/slog"
	"time"

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
}

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
	timer := time.NewTimer(0)
	defer timer.Stop()
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
			r.logger().Error("sandbox runner", "err", err)
			wait = maxIdle
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
	for {
		jobs, err := r.Store.ClaimJobs(ctx, r.now(), batch, lease)
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
				if err := r.Store.RetryJob(ctx, j.ID, r.now().Add(backoff)); err != nil {
					r.logger().Error("sandbox job retry", "job", j.ID, "err", err)
				}
			}
		}
		if len(jobs) < batch {
			break
		}
	}
	at, ok, err := r.Store.NextJobAt(ctx)
	if err != nil || !ok {
		return maxIdle, err
	}
	d := at.Sub(r.now())
	if d <= 0 {
		// Due but not claimable: leased by another worker. Check back soon.
		d = min(250*time.Millisecond, maxIdle)
	}
	return min(d, maxIdle), nil
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
