// Package sqlite is dollr's embedded store: one SQLite file (modernc.org/sqlite,
// pure Go) holding every record, the durable jobs and the change feed's outbox.
//
// All writes go through one connection, one transaction at a time, with
// BEGIN IMMEDIATE. SQLite serializes writers anyway; doing it in-process means
// writers queue on a mutex instead of spinning on SQLITE_BUSY, and the order in
// which transactions commit is the order of that one writer. That order is the
// change feed's order: each committed change is handed to followers right
// after its commit (see feed.go). Reads use a separate pool and, thanks to WAL,
// never wait for the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ dollr.Store = (*DB)(nil)

// DB is the SQLite implementation of dollr.Store.
type DB struct {
	path  string
	write *sql.DB // exactly one connection: the writer
	read  *sql.DB // readers; WAL lets them run beside the writer

	writeMu sync.Mutex // held for a whole write transaction, commit and publish included

	feed     *feed
	jobAdded chan struct{}

	stopPrune context.CancelFunc
	pruned    chan struct{} // closed when the prune loop has returned
	closeOnce sync.Once
	closed    chan struct{}
}

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path, applies the
// migrations and starts the change-log pruner. path must name a file: an
// in-memory database cannot be shared by the writer and the read pool.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	}
	// synchronous=NORMAL in WAL mode never corrupts the database and loses no
	// committed transaction when the process crashes; only a power cut can
	// roll back the last transactions. It saves an fsync per commit, which is
	// what lets one writer keep up with 1,000+ status changes a second.
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(NORMAL)")

	w := url.Values{}
	for k, v := range common {
		w[k] = append([]string(nil), v...)
	}
	w.Add("_pragma", "journal_mode(WAL)")
	w.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", path+"?"+w.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	db := &DB{path: path, write: write, jobAdded: make(chan struct{}, 1), closed: make(chan struct{})}
	if err := db.migrate(ctx); err != nil {
		write.Close()
		return nil, err
	}

	r := common
	r.Add("_pragma", "query_only(1)")
	db.read, err = sql.Open("sqlite", path+"?"+r.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db.read.SetMaxOpenConns(8)
	db.read.SetMaxIdleConns(8)

	head, err := db.Head(ctx)
	if err != nil {
		db.write.Close()
		db.read.Close()
		return nil, err
	}
	db.feed = newFeed(head)

	pctx, cancel := context.WithCancel(context.Background())
	db.stopPrune, db.pruned = cancel, make(chan struct{})
	go db.pruneLoop(pctx)
	return db, nil
}

// Close stops the pruner, ends every Follow and closes the database.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		close(db.closed)
		db.stopPrune()
		<-db.pruned
		err = errors.Join(db.read.Close(), db.write.Close())
	})
	return err
}

// ErrClosed is returned by Follow when the database is closed under it.
var ErrClosed = errors.New("sqlite: database closed")

// tx is a write transaction. Changes and jobs are collected so they can be
// announced after the commit, never before.
type tx struct {
	*sql.Tx
	db         *DB
	now        time.Time // the transaction's clock reading, also its commit time
	changes    []dollr.Change
	jobsQueued bool
}

// update runs fn in a write transaction and commits it unless fn fails.
func (db *DB) update(ctx context.Context, fn func(tx *tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	sqlTx, err := db.write.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see _txlock)
	if err != nil {
		return internal(err)
	}
	tx := &tx{Tx: sqlTx, db: db, now: now()}
	if err := fn(tx); err != nil {
		_ = sqlTx.Rollback()
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return internal(err)
	}
	// Still under writeMu: changes reach the feed in commit order.
	if len(tx.changes) > 0 {
		db.feed.publish(tx.changes)
	}
	if tx.jobsQueued {
		select {
		case db.jobAdded <- struct{}{}:
		default:
		}
	}
	return nil
}

// now returns the current time at the precision the store keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// micros and fromMicros convert times to and from the stored representation.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func microsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromMicrosPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// internal wraps a database failure as EINTERNAL, keeping dollr errors as they are.
func internal(err error) error {
	var de *dollr.Error
	if err == nil || errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &dollr.Error{Code: dollr.EINTERNAL, Message: "sqlite: " + err.Error()}
}

// uniqueViolation reports whether err is a UNIQUE (or primary key) failure
// naming column, such as "executions.session_id".
func uniqueViolation(err error, column string) bool {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT:
		return strings.Contains(se.Error(), column)
	}
	return false
}

// notFound maps sql.ErrNoRows to Dollr's "<what> not found".
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return dollr.NotFound(what)
	}
	return internal(err)
}
