package postgres

import (
	"context"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/dollr/dollr"
	"github.com/jackc/pgx/v5"
)

// jobChannel is the LISTEN/NOTIFY channel that tells every server sharing
// the database that a job was scheduled.
const jobChannel = "dollr_jobs"

func insertJobs(ctx context.Context, tx pgx.Tx, executionID int64, jobs []dollr.Job) error {
	if len(jobs) == 0 {
		return nil
	}
	for _, j := range jobs {
		if _, err := tx.Exec(ctx, "INSERT INTO jobs (kind, execution_id, payload, run_at) VALUES ($1, $2, $3, $4)",
			j.Kind, executionID, j.Payload, j.RunAt.UTC()); err != nil {
			return err
		}
	}
	// Delivered at commit, to other servers' listeners (and our own).
	_, err := tx.Exec(ctx, "SELECT pg_notify($1, '')", jobChannel)
	return err
}

func deleteJob(ctx context.Context, tx pgx.Tx, id int64) error {
	if id == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, "DELETE FROM jobs WHERE id = $1", id)
	return err
}

// ClaimJobs leases due jobs. FOR UPDATE SKIP LOCKED lets several servers
// claim at once without waiting on, or double-claiming, each other's rows.
func (d *DB) ClaimJobs(ctx context.Context, at time.Time, limit int, lease time.Duration) ([]dollr.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	at = at.UTC()
	rows, err := d.pool.Query(ctx, `UPDATE jobs SET attempts = attempts + 1, locked_until = $2
		WHERE id IN (
			SELECT id FROM jobs
			WHERE run_at <= $1 AND (locked_until IS NULL OR locked_until <= $1)
			ORDER BY run_at, id
			LIMIT $3
			FOR UPDATE SKIP LOCKED)
		RETURNING id, kind, execution_id, payload, run_at, attempts`, at, at.Add(lease), limit)
	if err != nil {
		return nil, internal("claim jobs", err)
	}
	defer rows.Close()
	var jobs []dollr.Job
	for rows.Next() {
		var j dollr.Job
		if err := rows.Scan(&j.ID, &j.Kind, &j.ExecutionID, &j.Payload, &j.RunAt, &j.Attempts); err != nil {
			return nil, internal("claim jobs", err)
		}
		j.RunAt = j.RunAt.UTC()
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, internal("claim jobs", err)
	}
	// RETURNING has no order of its own.
	sort.Slice(jobs, func(a, b int) bool {
		if !jobs[a].RunAt.Equal(jobs[b].RunAt) {
			return jobs[a].RunAt.Before(jobs[b].RunAt)
		}
		return jobs[a].ID < jobs[b].ID
	})
	return jobs, nil
}

// RetryJob releases a job to run at runAt and, like scheduling one, wakes
// the runners: the new time may be earlier than the one they sleep towards.
func (d *DB) RetryJob(ctx context.Context, id int64, runAt time.Time) error {
	err := d.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE jobs SET run_at = $2, locked_until = NULL WHERE id = $1", id, runAt.UTC())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return dollr.NotFound("job")
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, '')", jobChannel)
		return err
	})
	if err != nil {
		return internal("retry job", err)
	}
	d.signalJobs()
	return nil
}

func (d *DB) DeleteJob(ctx context.Context, id int64) error {
	_, err := d.pool.Exec(ctx, "DELETE FROM jobs WHERE id = $1", id)
	return internal("delete job", err)
}

// NextJobAt returns when the next job can be claimed: its run_at, or for a
// claimed job the end of its lease.
func (d *DB) NextJobAt(ctx context.Context) (time.Time, bool, error) {
	var at *time.Time
	// GREATEST ignores NULL, so an unclaimed job counts at its run_at.
	if err := d.pool.QueryRow(ctx, "SELECT min(greatest(run_at, locked_until)) FROM jobs").Scan(&at); err != nil {
		return time.Time{}, false, internal("next job", err)
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return at.UTC(), true, nil
}

func (d *DB) JobAdded() <-chan struct{} { return d.jobAdded }

// signalJobs wakes the in-process runner without blocking; signals coalesce.
func (d *DB) signalJobs() {
	select {
	case d.jobAdded <- struct{}{}:
	default:
	}
}

// listenJobs relays job notifications from other servers to JobAdded,
// reconnecting with back-off until Close.
func (d *DB) listenJobs() {
	defer d.wg.Done()
	backoff := newBackoff(100*time.Millisecond, d.opts.CaptureRetry)
	for d.ctx.Err() == nil {
		err := d.listenJobsOnce()
		if d.ctx.Err() != nil {
			return
		}
		d.log.Warn("job notifications interrupted; reconnecting", "err", err)
		select {
		case <-d.ctx.Done():
			return
		case <-time.After(backoff.next()):
		}
	}
}

func (d *DB) listenJobsOnce() error {
	// A connection of its own: a LISTENing session must not serve queries,
	// and must not take a pool slot for good.
	conn, err := pgx.ConnectConfig(d.ctx, d.listenCfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(d.ctx, "LISTEN "+jobChannel); err != nil {
		return err
	}
	// Jobs may have been added while we were not listening.
	d.signalJobs()
	for {
		if _, err := conn.WaitForNotification(d.ctx); err != nil {
			return err
		}
		d.signalJobs()
	}
}

// backoff grows a delay exponentially with jitter, up to max.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	// ±25% so that servers that lost the database together do not return in step.
	return b.cur*3/4 + time.Duration(rand.Int64N(int64(b.cur/2)+1))
}

func (b *backoff) reset() { b.cur = 0 }
