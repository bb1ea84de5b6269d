package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/dirlock"
	"github.com/dollr/dollr/postgres"
	"github.com/dollr/dollr/sqlite"
)

// sqliteFile is the database file inside the data directory.
const sqliteFile = "dollr.db"

// storeConfig chooses the system of record.
type storeConfig struct {
	DataDir     string // SQLite lives here, and credentials.json in either case
	DatabaseURL string // when set, PostgreSQL is the system of record
	// Existing refuses to create anything: the data directory is not made
	// and the SQLite database must already exist (errNoStore otherwise).
	// For commands that manage a server's store, such as merchants create.
	Existing bool
	// Wait is how long to keep trying while PostgreSQL cannot be reached
	// (it may be starting alongside dollr); 0 fails at once.
	Wait time.Duration
	// Metrics receives the store's own metrics (PostgreSQL: capture's).
	Metrics prometheus.Registerer
}

// errNoStore is openStore's error for an Existing SQLite store that is not there.
var errNoStore = errors.New("no store")

// openStore opens the system of record: PostgreSQL when a database URL is
// given (migrations applied, publication and replication slot created), else
// SQLite in dataDir (created 0700 if missing, unless c.Existing). The SQLite
// file is shared safely by a running server and a second process such as
// `dollr merchants create` (WAL mode).
func openStore(ctx context.Context, c storeConfig, log *slog.Logger) (dollr.Store, error) {
	if !c.Existing {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	if c.DatabaseURL != "" {
		return openPostgres(ctx, c, log)
	}
	path := filepath.Join(c.DataDir, sqliteFile)
	if c.Existing {
		if _, err := existingSQLite(c.DataDir); err != nil {
			return nil, err
		}
	}
	// Held while the store is open, so that `dollr restore` cannot replace
	// the file under this process.
	lock, err := dirlock.Shared(c.DataDir)
	if errors.Is(err, dirlock.ErrBusy) {
		return nil, fmt.Errorf("%s: a restore is running on it ('dollr restore' holds %s); start again once it is done", c.DataDir, dirlock.FileName)
	} else if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		lock.Release()
		return nil, err
	}
	return lockedStore{db, lock}, nil
}

// existingSQLite is the path of dataDir's SQLite store, or errNoStore if a
// server never made one there.
func existingSQLite(dataDir string) (string, error) {
	path := filepath.Join(dataDir, sqliteFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w at %s: is --data-dir the directory 'dollr serve' runs on (its first start creates the store)? With PostgreSQL, pass --database-url", errNoStore, path)
	} else if err != nil {
		return "", err
	}
	return path, nil
}

// lockedStore is the SQLite store with the data directory's shared lock,
// released when the store closes.
type lockedStore struct {
	*sqlite.DB
	lock *dirlock.Lock
}

func (s lockedStore) Close() error {
	err := s.DB.Close()
	s.lock.Release()
	return err
}

// describe names the store c opens, for logs: the SQLite file's path, or
// PostgreSQL's user@host:port/database, never a password.
func (c storeConfig) describe() (kind, where string) {
	if c.DatabaseURL == "" {
		path := filepath.Join(c.DataDir, sqliteFile)
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		return "sqlite", path
	}
	if pc, err := pgconn.ParseConfig(c.DatabaseURL); err == nil {
		where := fmt.Sprintf("%s:%d/%s", pc.Host, pc.Port, pc.Database)
		if strings.HasPrefix(pc.Host, "/") { // a Unix socket directory
			where = fmt.Sprintf("%s/.s.PGSQL.%d/%s", pc.Host, pc.Port, pc.Database)
		}
		if pc.User != "" {
			where = pc.User + "@" + where
		}
		return "postgres", where
	}
	return "postgres", redactDatabaseURL(c.DatabaseURL)
}

// databaseURLUsage documents --database-url for every command that opens the store.
const databaseURLUsage = "PostgreSQL URL (env DATABASE_URL); when set, PostgreSQL replaces the embedded SQLite store (docs/postgres.md)"

// databaseURLFlag defines --database-url, defaulting to $DATABASE_URL; its
// --help default is shown with the password redacted.
func databaseURLFlag(fs *flag.FlagSet, usage string) *string {
	p := fs.String("database-url", os.Getenv("DATABASE_URL"), usage)
	f := fs.Lookup("database-url")
	f.DefValue = redactDatabaseURL(f.DefValue)
	return p
}

// dsnPassword matches a password in a keyword/value connection string
// ("host=h password=secret dbname=d"), quoted or not.
var dsnPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactDatabaseURL hides the password of a PostgreSQL URL or keyword/value
// connection string: postgres://user:xxxxx@host/db.
func redactDatabaseURL(s string) string {
	if s == "" {
		return s
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if q := u.Query(); q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	if strings.Contains(s, "://") {
		// A URL url.Parse refuses may still carry user:password@.
		if i, j := strings.Index(s, "://"), strings.LastIndex(s, "@"); j > i {
			userinfo := s[i+3 : j]
			if k := strings.Index(userinfo, ":"); k >= 0 {
				return s[:i+3] + userinfo[:k] + ":xxxxx" + s[j:]
			}
		}
		return s
	}
	return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
}

// openPostgres opens PostgreSQL, retrying with back-off for up to c.Wait while
// the server cannot be reached, with a log line per attempt.
func openPostgres(ctx context.Context, c storeConfig, log *slog.Logger) (*postgres.DB, error) {
	_, where := c.describe()
	deadline := time.Now().Add(c.Wait)
	delay := 500 * time.Millisecond
	for {
		db, err := postgres.Open(ctx, c.DatabaseURL, postgres.Options{Logger: log, Registerer: c.Metrics})
		if err == nil || !postgres.Unreachable(err) {
			return db, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("cannot reach PostgreSQL at %s (is it running, and is --database-url right?): %w", where, err)
		}
		log.Warn("waiting for PostgreSQL", "database", where, "err", err, "gives_up_in", left.Round(time.Second).String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(delay, left)):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
