// Package backends runs a test once per store backend, SQLite and
// PostgreSQL, so the packages built on dollr.Store (api, sandbox, cmd/dollr)
// check the same behaviour on both without writing it twice:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) { backends.Each(t, testX) }
//
//	func testX(t *testing.T, b backends.Backend) { store := b.Open(t) ... }
//
// The PostgreSQL subtests use a fresh database of the package's shared
// pgtest cluster (hence pgtest.Main in TestMain); without PostgreSQL binaries
// they skip, unless CI is set, when they fail.
package backends

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
	"github.com/dollr/dollr/sqlite"
)

// Backend is one store implementation.
type Backend struct {
	Name string // "sqlite" or "postgres"; also the subtest's name
}

// The backends.
var (
	SQLite   = Backend{Name: "sqlite"}
	Postgres = Backend{Name: "postgres"}
)

// All lists every backend, SQLite first.
func All() []Backend { return []Backend{SQLite, Postgres} }

// Each runs fn as one subtest per backend, one after the other.
func Each(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range All() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// NewDatabase creates an empty database for tb, removed when tb ends.
func (b Backend) NewDatabase(tb testing.TB) Database {
	tb.Helper()
	switch b {
	case SQLite:
		return Database{Backend: b, URL: filepath.Join(tb.TempDir(), "dollr.db")}
	case Postgres:
		return Database{Backend: b, URL: pgtest.NewDatabase(tb)}
	}
	tb.Fatalf("backends: unknown backend %q", b.Name)
	return Database{}
}

// Open opens a store on a new, empty database; see Database.Open.
func (b Backend) Open(tb testing.TB) dollr.Store {
	tb.Helper()
	return b.NewDatabase(tb).Open(tb)
}

// Database is one database of a backend. Each Open is another store on it,
// as another `dollr serve` process sharing the database would have.
type Database struct {
	Backend Backend
	// URL locates the database: the SQLite file's path, or a PostgreSQL URL.
	URL string
}

// Open opens another store on d, migrated, and closes it when tb ends.
// Closing it earlier (to simulate a crash or a restart) is allowed. A
// PostgreSQL store's log is shown only if tb fails.
func (d Database) Open(tb testing.TB) dollr.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		st  dollr.Store
		err error
	)
	switch d.Backend {
	case SQLite:
		st, err = sqlite.Open(ctx, d.URL)
	case Postgres:
		log := &logBuffer{}
		// Registered before Close, so it runs after it and sees every line.
		tb.Cleanup(func() {
			if tb.Failed() && log.Len() > 0 {
				tb.Logf("postgres store log:\n%s", log)
			}
		})
		st, err = postgres.Open(ctx, d.URL, postgres.Options{
			Logger: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
			// A store waiting for another one's replication slot takes
			// it over soon after it is free.
			CaptureRetry: 500 * time.Millisecond,
		})
	default:
		tb.Fatalf("backends: unknown backend %q", d.Backend.Name)
	}
	if err != nil {
		tb.Fatalf("open %s store: %v", d.Backend.Name, err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close %s store: %v", d.Backend.Name, err)
		}
	})
	return st
}

// logBuffer collects a store's log lines from its goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
