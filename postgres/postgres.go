// Package postgres is the PostgreSQL dollr.Store. Change capture reads the
// database's own write-ahead log through a logical replication slot
// (pgoutput), so a change by any writer — the API, a sandbox job, an UPDATE in
// psql — reaches the change feed.
//
// Open migrates the schema (under an advisory lock, so several servers may
// start at once), checks that the server allows logical replication, and
// creates the publication and the persistent replication slot if missing.
// The slot makes PostgreSQL keep WAL until the feed acknowledges it: an
// installation that is abandoned must drop it (SlotDrop, `dollr slot drop`).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultPublication is the publication change capture reads.
const DefaultPublication = "dollr_public_status"

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Slot names the logical replication slot. Slot names are unique per
	// PostgreSQL cluster, so the default, "dollr_" followed by the database
	// name, keeps two installations in one cluster apart.
	Slot string
	// Publication names the publication the slot streams (DefaultPublication).
	Publication string
	// MaxConns caps the connection pool (default 10, or pool_max_conns in
	// the URL). Capture and job notifications use one more connection each.
	MaxConns int32
	// StatusInterval is how often the feed reports its position to the server
	// while idle (default 10s, well under wal_sender_timeout's default 60s).
	StatusInterval time.Duration
	// CaptureRetry caps the back-off between attempts to (re)start capture:
	// after PostgreSQL restarts, or while another server holds the slot
	// (default 5s).
	CaptureRetry time.Duration
	// Logger receives capture's reconnects and warnings (default: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the dollr_capture_* metrics; nil registers none.
	Registerer prometheus.Registerer
}

// DB is a dollr.Store on PostgreSQL.
type DB struct {
	pool      *pgxpool.Pool
	connCfg   *pgconn.Config  // for replication connections
	listenCfg *pgx.ConnConfig // for the job notification listener
	slot      string
	pub       string
	opts      Options
	log       *slog.Logger
	jobAdded  chan struct{}
	types     *typeCache
	notes     noteCommitter

	captureMetrics *captureMetrics

	ctx    context.Context // ends at Close; background work stops with it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ dollr.Store = (*DB)(nil)

// Open connects to databaseURL (a postgres:// URL or key=value string),
// migrates the schema, checks the server's replication settings and creates
// the publication and slot if missing.
func Open(ctx context.Context, databaseURL string, opts Options) (*DB, error) {
	if opts.Publication == "" {
		opts.Publication = DefaultPublication
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = 10 * time.Second
	}
	if opts.CaptureRetry <= 0 {
		opts.CaptureRetry = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if !validName(opts.Publication) || (opts.Slot != "" && !validName(opts.Slot)) {
		return nil, fmt.Errorf("postgres: slot and publication names must match %s", nameRE)
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: database URL: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	} else if !strings.Contains(databaseURL, "pool_max_conns") {
		// pgxpool's default (4 on a 2-core machine) is small for a server.
		cfg.MaxConns = 10
	}
	// Times are written and read as UTC so rendering never depends on the
	// server's TimeZone.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	// Every connection (pool, capture, job listener) notices a vanished
	// database host within deadPeerTimeout (dial.go).
	cfg.ConnConfig.DialFunc = newDialer(cfg.ConnConfig.ConnectTimeout).DialContext
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	d := &DB{
		pool:      pool,
		connCfg:   cfg.ConnConfig.Config.Copy(),
		listenCfg: cfg.ConnConfig.Copy(),
		pub:       opts.Publication,
		slot:      opts.Slot,
		opts:      opts,
		log:       opts.Logger.With("component", "postgres"),
		jobAdded:  make(chan struct{}, 1),
		ctx:       bg,
		cancel:    cancel,
	}
	d.notes.d = d
	d.types = newTypeCache(pool)
	if d.captureMetrics, err = newCaptureMetrics(opts.Registerer); err != nil {
		cancel()
		pool.Close()
		return nil, err
	}
	if err := d.setup(ctx); err != nil {
		cancel()
		pool.Close()
		return nil, err
	}
	d.wg.Add(1)
	go d.listenJobs()
	return d, nil
}

func (d *DB) setup(ctx context.Context) error {
	if err := checkServer(ctx, d.pool); err != nil {
		return err
	}
	if d.slot == "" {
		var db string
		if err := d.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		d.slot = DefaultSlot(db)
	}
	if _, err := Migrate(ctx, d.pool); err != nil {
		return err
	}
	if err := d.ensureCapture(ctx); err != nil {
		return err
	}
	return checkReplicationConnection(ctx, d.connCfg)
}

// Slot returns the name of the replication slot the feed reads.
func (d *DB) Slot() string { return d.slot }

// Pool returns the connection pool, for callers that need plain SQL.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Close stops background work and closes the pool. It does not drop the
// replication slot: the next start resumes from it.
func (d *DB) Close() error {
	d.cancel()
	d.wg.Wait()
	d.pool.Close()
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

func validName(s string) bool { return nameRE.MatchString(s) }

// DefaultSlot returns the slot name Open uses for a database when
// Options.Slot is empty.
func DefaultSlot(database string) string {
	var b strings.Builder
	b.WriteString("dollr_")
	for _, r := range strings.ToLower(database) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// SQLSTATE codes the store maps.
const (
	codeUniqueViolation    = "23505"
	codeForeignKey         = "23503"
	codeInvalidText        = "22P02"
	codeObjectInUse        = "55006"
	codeDeadlock           = "40P01"
	codeSlotInvalidated    = "55000" // object_not_in_prerequisite_state: "can no longer get changes from replication slot"
	codeUndefinedObject    = "42704"
	codeDuplicateObject    = "42710"
	codeInsufficientPrivil = "42501"
	codeConfigLimit        = "53400"
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func pgConstraint(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.ConstraintName
	}
	return ""
}

// internal wraps a database error that the caller cannot act on.
func internal(op string, err error) error {
	if err == nil {
		return nil
	}
	var de *dollr.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	code := dollr.EINTERNAL
	if Unreachable(err) {
		code = dollr.EUNAVAILABLE
	}
	return &dollr.Error{Code: code, Message: "postgres: " + op + ": " + err.Error()}
}

// Unreachable reports whether err means PostgreSQL could not be reached or
// dropped the connection (it is down, restarting, or killed the backend),
// rather than refusing the statement: the same call may succeed later.
func Unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", "57P02", "57P03", "53300": // admin or crash shutdown, cannot connect now, too many connections
			return true
		}
		return strings.HasPrefix(pe.Code, "08") // connection exception
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err)
}

// inTx runs fn in a transaction and commits it, rolling back on error.
func (d *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// now is the store's clock, at the precision PostgreSQL keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
