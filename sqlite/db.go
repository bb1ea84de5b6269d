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
	"sync/atomic"
	"time"

	"github.com/dollr/dollr"
	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ dollr.Store = (*DB)(nil)

// DB is the SQLite implementation of dollr.Store.
type DB struct {
	path   string
	write  *sql.DB   // pool of exactly one connection, held as writer for the DB's life
	writer *sql.Conn // the writer; only used under writeMu
	read   *sql.DB   // readers; WAL lets them run beside the writer

	writeMu    sync.Mutex           // held for a whole write transaction, commit and publish included
	writeStmts map[string]*sql.Stmt // prepared on writer, under writeMu
	readStmts  sync.Map             // query -> *sql.Stmt on the read pool

	feed     *feed
	jobAdded chan struct{}

	checkpointer *sql.DB       // one connection that copies the WAL into the database file
	commits      atomic.Uint64 // write transactions committed, so idle checkpoints are skipped

	stopBackground context.CancelFunc
	background     sync.WaitGroup // the pruner, the checkpointer, the other-writer watch
	closeOnce      sync.Once
	closed         chan struct{}
}

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 10 * time.Second

// Open opens (creating if needed) the database file at path, applies the
// migrations and starts the change-log pruner and the checkpointer. path must
// name a file: an in-memory database cannot be shared by the writer and the
// read pool.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := ownerOnly(path); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	db := &DB{path: path, writeStmts: map[string]*sql.Stmt{}, jobAdded: make(chan struct{}, 1), closed: make(chan struct{})}
	if err := db.open(ctx); err != nil {
		db.closeDatabases()
		// SQLite's own messages ("disk I/O error", "unable to open database
		// file") name neither the file nor a likely cause.
		return nil, fmt.Errorf("%w (database %s: is its disk full, or its directory not writable?)", err, path)
	}
	head, err := db.Head(ctx)
	if err != nil {
		db.closeDatabases()
		return nil, err
	}
	db.feed = newFeed(head, windowSize)

	bctx, cancel := context.WithCancel(context.Background())
	db.stopBackground = cancel
	db.background.Add(3)
	go func() { defer db.background.Done(); db.pruneLoop(bctx) }()
	go func() { defer db.background.Done(); db.checkpointLoop(bctx) }()
	go func() { defer db.background.Done(); db.watchOtherWriters(bctx) }()
	return db, nil
}

// ownerOnly makes the database file (created empty if missing) and its WAL
// and shared-memory files readable by their owner only: the database holds
// the secrets that sign every token, and SQLite gives the -wal and -shm files
// the database file's mode. A data directory that already existed keeps its
// own mode, so it cannot be relied on.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(p, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// open opens the writer, migrates, then opens the readers and the checkpointer.
func (db *DB) open(ctx context.Context) error {
	// synchronous=NORMAL in WAL mode never corrupts the database and loses no
	// committed transaction when the process crashes; only a power cut can
	// roll back the last transactions. It saves an fsync per commit, which is
	// what lets one writer keep up with 1,000+ status changes a second.
	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"foreign_keys(1)",
		"synchronous(NORMAL)",
	}
	dsn := func(extra ...string) string {
		q := url.Values{"_pragma": append(append([]string(nil), pragmas...), extra...)}
		return db.path + "?" + q.Encode()
	}
	var err error
	// Checkpoints run in the background (checkpoint.go); SQLite's automatic
	// one would run inside COMMIT and delay the feed by an fsync. Its
	// threshold here is only a safety net should the background fall behind.
	db.write, err = sql.Open("sqlite", dsn("journal_mode(WAL)",
		fmt.Sprintf("wal_autocheckpoint(%d)", safetyCheckpointPages),
		fmt.Sprintf("journal_size_limit(%d)", walSizeLimit)))
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	db.write.SetConnMaxLifetime(0)
	db.write.SetConnMaxIdleTime(0)
	if db.writer, err = openWriter(ctx, db.write); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	if err := db.migrate(ctx); err != nil {
		return err
	}
	if db.read, err = sql.Open("sqlite", dsn("query_only(1)")); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db.read.SetMaxOpenConns(readConns)
	db.read.SetMaxIdleConns(readConns)
	if db.checkpointer, err = sql.Open("sqlite", dsn()); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	db.checkpointer.SetMaxOpenConns(1)
	return nil
}

// openWriter opens the writer connection, which switches a new file to WAL.
// SQLite answers a concurrent opener of the same new file SQLITE_BUSY at
// once during that switch, without waiting in its busy handler, so the open
// is retried for as long as busy_timeout would have waited.
func openWriter(ctx context.Context, pool *sql.DB) (*sql.Conn, error) {
	deadline := time.Now().Add(busyTimeout)
	for {
		conn, err := pool.Conn(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// isBusy reports whether err is SQLITE_BUSY or one of its extended codes.
func isBusy(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// readConns bounds the read pool: enough for concurrent API reads and
// followers catching up, few enough to keep per-connection page caches small.
const readConns = 8

// Close stops the pruner, ends every Follow and closes the database.
func (db *DB) Close() error {
	var err error
	db.closeOnce.Do(func() {
		close(db.closed)
		db.stopBackground()
		db.background.Wait()
		err = db.closeDatabases()
	})
	return err
}

func (db *DB) closeDatabases() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	var errs []error
	for _, st := range db.writeStmts {
		errs = append(errs, st.Close())
	}
	db.readStmts.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	if db.checkpointer != nil {
		errs = append(errs, db.checkpointer.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.writer != nil {
		errs = append(errs, db.writer.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// ErrClosed is returned by Follow when the database is closed under it.
var ErrClosed = errors.New("sqlite: database closed")

// tx is a write transaction on the writer connection. Changes and jobs are
// collected so they can be announced after the commit, never before.
type tx struct {
	db         *DB
	now        time.Time // the transaction's clock reading, also its commit time
	changes    []dollr.Change
	jobsQueued bool
}

// update runs fn in a write transaction and commits it unless fn fails.
// BEGIN IMMEDIATE takes the write lock at once, so a transaction never has to
// upgrade a read lock and never fails with SQLITE_BUSY halfway (another
// process holding the lock is waited for, up to busy_timeout).
func (db *DB) update(ctx context.Context, fn func(tx *tx) error) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	tx := &tx{db: db, now: now()}
	// BEGIN and COMMIT ignore cancellation: the driver can report a cancelled
	// statement that did take effect, and a BEGIN left open that way wedged
	// every later write, a COMMIT reported failed had committed. A request
	// that hangs up is still stopped by fn's statements, which do see ctx.
	if _, err := tx.exec(context.WithoutCancel(ctx), "BEGIN IMMEDIATE"); err != nil {
		db.rollback()
		return internal(err)
	}
	if err := fn(tx); err != nil {
		db.rollback()
		return err
	}
	if _, err := tx.exec(context.WithoutCancel(ctx), "COMMIT"); err != nil {
		db.rollback()
		return internal(err)
	}
	db.commits.Add(1)
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

// rollback ends a failed transaction, even when its context has ended.
func (db *DB) rollback() {
	_, _ = db.writer.ExecContext(context.Background(), "ROLLBACK")
}

// stmt returns q prepared on the writer. Statements are prepared once: parsing
// SQL costs more than running these small statements.
func (tx *tx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st := tx.db.writeStmts[q]; st != nil {
		return st, nil
	}
	st, err := tx.db.writer.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	tx.db.writeStmts[q] = st
	return st, nil
}

func (tx *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := tx.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (tx *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := tx.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (tx *tx) queryRow(ctx context.Context, q string, args ...any) scanner {
	st, err := tx.stmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// execScript runs SQL that may hold several statements, unprepared.
func (tx *tx) execScript(ctx context.Context, q string) error {
	_, err := tx.db.writer.ExecContext(ctx, q)
	return err
}

// readStmt returns q prepared on the read pool.
func (db *DB) readStmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := db.readStmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.read.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.readStmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (db *DB) queryRow(ctx context.Context, q string, args ...any) scanner {
	st, err := db.readStmt(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

func (db *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := db.readStmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

type scanner interface{ Scan(...any) error }

// errRow is a row whose statement failed to prepare.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

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
	code := dollr.EINTERNAL
	if unavailable(err) {
		code = dollr.EUNAVAILABLE
	}
	return &dollr.Error{Code: code, Message: "sqlite: " + err.Error()}
}

// unavailable reports whether err is a condition that passes without the
// request changing: the disk is full or failing, or another process held the
// database locked past busyTimeout. The API answers 503 with Retry-After.
func unavailable(err error) bool {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_BUSY:
		return true
	}
	return false
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
