package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrateLock is the pg_advisory_lock key held while migrating and creating
// the publication and slot, so servers starting together take turns.
const migrateLock = 0x646f6c6c72 // "dollr"

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations, ordered by the number that
// starts each file name (0001_schema.sql).
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %s: name must start with a number and _", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("postgres: migrations %s and %s share number %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// Migrate applies the migrations the database lacks, each in its own
// transaction, holding an advisory lock so that concurrent callers (several
// servers starting at once) apply each migration exactly once. It returns
// the names of the migrations it applied.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	err = withMigrateLock(ctx, pool, func(conn *pgxpool.Conn) error {
		applied, err = migrateLocked(ctx, conn)
		return err
	})
	return applied, err
}

// MigrateDatabase connects to databaseURL and applies Migrate. It needs
// none of change capture's settings.
func MigrateDatabase(ctx context.Context, databaseURL string) ([]string, error) {
	pool, err := pgxpool.New(ctx, databaseURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	defer pool.Close()
	return Migrate(ctx, pool)
}

// withMigrateLock runs fn on one connection holding the migration lock.
func withMigrateLock(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgxpool.Conn) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrateLock)); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrateLock)); err != nil {
			// A session lock that cannot be released must not go back to the pool.
			conn.Conn().Close(context.Background())
		}
	}()
	return fn(conn)
}

func migrateLocked(ctx context.Context, conn *pgxpool.Conn) ([]string, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    int PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	done := map[int]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("postgres: migrate: %w", err)
		}
		done[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	var applied []string
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, fmt.Errorf("postgres: migrate %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			tx.Rollback(ctx)
			return nil, fmt.Errorf("postgres: migrate %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			tx.Rollback(ctx)
			return nil, fmt.Errorf("postgres: migrate %s: %w", m.name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return nil, fmt.Errorf("postgres: migrate %s: %w", m.name, err)
		}
		applied = append(applied, m.name)
	}
	return applied, nil
}
