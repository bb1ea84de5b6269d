package sqlite

import (
	"context"
	"database/sql"
	"sort"
	"time"

	"github.com/dollr/dollr"
)

// insertJobs schedules jobs for an execution inside tx.
func (tx *tx) insertJobs(ctx context.Context, executionID int64, jobs []dollr.Job) error {
	for _, j := range jobs {
		_, err := tx.exec(ctx, `INSERT INTO jobs (kind, execution_id, payload, run_at, created_at) VALUES (?, ?, ?, ?, ?)`,
			j.Kind, executionID, j.Payload, micros(j.RunAt), micros(tx.now))
		if err != nil {
			return internal(err)
		}
		tx.jobsQueued = true
	}
	return nil
}

// ClaimJobs leases up to limit due jobs whose lease has lapsed, earliest RunAt first.
func (db *DB) ClaimJobs(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]dollr.Job, error) {
	if limit <= 0 {
		return nil, nil
	}
	var jobs []dollr.Job
	err := db.update(ctx, func(tx *tx) error {
		t := micros(now)
		rows, err := tx.query(ctx, `UPDATE jobs SET leased_until = ?, attempts = attempts + 1
			WHERE id IN (SELECT id FROM jobs WHERE run_at <= ? AND (leased_until IS NULL OR leased_until <= ?)
				ORDER BY run_at, id LIMIT ?)
			RETURNING id, kind, execution_id, payload, run_at, attempts`,
			micros(now.Add(lease)), t, t, limit)
		if err != nil {
			return internal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var j dollr.Job
			var runAt int64
			if err := rows.Scan(&j.ID, &j.Kind, &j.ExecutionID, &j.Payload, &runAt, &j.Attempts); err != nil {
				return internal(err)
			}
			j.RunAt = fromMicros(runAt)
			jobs = append(jobs, j)
		}
		return internal(rows.Err())
	})
	if err != nil {
		return nil, err
	}
	// RETURNING gives no order; hand jobs out in the order they were picked.
	sort.Slice(jobs, func(a, b int) bool {
		if !jobs[a].RunAt.Equal(jobs[b].RunAt) {
			return jobs[a].RunAt.Before(jobs[b].RunAt)
		}
		return jobs[a].ID < jobs[b].ID
	})
	return jobs, nil
}

// RetryJob releases a claimed job to run again at runAt.
func (db *DB) RetryJob(ctx context.Context, id int64, runAt time.Time) error {
	return db.update(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE jobs SET run_at = ?, leased_until = NULL WHERE id = ?`, micros(runAt), id)
		if err != nil {
			return internal(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return internal(err)
		} else if n == 0 {
			return dollr.NotFound("job")
		}
		tx.jobsQueued = true
		return nil
	})
}

// DeleteJob removes a job; a job already gone is not an error.
func (db *DB) DeleteJob(ctx context.Context, id int64) error {
	return db.update(ctx, func(tx *tx) error {
		_, err := tx.exec(ctx, `DELETE FROM jobs WHERE id = ?`, id)
		return internal(err)
	})
}

// NextJobAt returns the earliest time ClaimJobs could return a job: its RunAt,
// or for a claimed job the end of its lease.
func (db *DB) NextJobAt(ctx context.Context) (time.Time, bool, error) {
	var at sql.NullInt64
	err := db.queryRow(ctx, `SELECT min(max(run_at, coalesce(leased_until, run_at))) FROM jobs`).Scan(&at)
	if err != nil {
		return time.Time{}, false, internal(err)
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return fromMicros(at.Int64), true, nil
}

// JobAdded is signalled after every commit that scheduled a job.
func (db *DB) JobAdded() <-chan struct{} { return db.jobAdded }
