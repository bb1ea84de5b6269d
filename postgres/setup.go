package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/dollr/dollr"
	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSetup marks errors that name a server setting or privilege to change.
var ErrSetup = errors.New("postgres: server setup")

// checkServer verifies what change capture needs before anything is created,
// and says exactly what to change otherwise.
func checkServer(ctx context.Context, pool *pgxpool.Pool) error {
	var (
		walLevel          string
		slots, senders    int
		user              string
		super, replicator bool
		version           int
	)
	err := pool.QueryRow(ctx, `SELECT current_setting('wal_level'),
		current_setting('max_replication_slots')::int,
		current_setting('max_wal_senders')::int,
		current_user, r.rolsuper, r.rolreplication,
		current_setting('server_version_num')::int
		FROM pg_roles r WHERE r.rolname = current_user`).
		Scan(&walLevel, &slots, &senders, &user, &super, &replicator, &version)
	if err != nil {
		return fmt.Errorf("postgres: checking server settings: %w", err)
	}
	if version < 140000 {
		return fmt.Errorf("%w: PostgreSQL %d.%d is too old; dollr needs 14 or newer", ErrSetup, version/10000, version%10000/100)
	}
	if walLevel != "logical" {
		return fmt.Errorf("%w: wal_level is %q, change capture needs \"logical\": run ALTER SYSTEM SET wal_level = logical "+
			"(or set wal_level = logical in postgresql.conf) and restart PostgreSQL", ErrSetup, walLevel)
	}
	if slots < 1 {
		return fmt.Errorf("%w: max_replication_slots is 0: set max_replication_slots to at least 1 (default 10) and restart PostgreSQL", ErrSetup)
	}
	if senders < 1 {
		return fmt.Errorf("%w: max_wal_senders is 0: set max_wal_senders to at least 1 (default 10) and restart PostgreSQL", ErrSetup)
	}
	if !super && !replicator {
		return fmt.Errorf("%w: role %q may not use replication, which change capture needs: run ALTER ROLE %s WITH REPLICATION "+
			"as a superuser (or connect as a superuser)", ErrSetup, user, quoteIdent(user))
	}
	return nil
}

// checkReplicationConnection opens a replication connection once, so that
// one the server refuses fails at start, not in the feed.
func checkReplicationConnection(ctx context.Context, cfg *pgconn.Config) error {
	conn, err := connectReplication(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w: cannot open a logical replication connection (%v): it needs a free WAL sender "+
			"(max_wal_senders) and pg_hba.conf must admit role %q to this database (logical replication matches the "+
			"database's own lines, not \"replication\" lines)", ErrSetup, err, cfg.User)
	}
	defer conn.Close(context.Background())
	if _, err := pglogrepl.IdentifySystem(ctx, conn); err != nil {
		return fmt.Errorf("postgres: IDENTIFY_SYSTEM: %w", err)
	}
	return nil
}

// connectReplication opens a logical replication connection. Values are
// rendered in ISO style and UTC, the forms the decoder parses.
func connectReplication(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	c := cfg.Copy()
	c.RuntimeParams["replication"] = "database"
	c.RuntimeParams["datestyle"] = "ISO, YMD"
	c.RuntimeParams["timezone"] = "UTC"
	c.RuntimeParams["intervalstyle"] = "postgres"
	c.RuntimeParams["extra_float_digits"] = "3"
	c.RuntimeParams["application_name"] = "dollr-capture"
	return pgconn.ConnectConfig(ctx, c)
}

// ensureCapture creates the publication and the persistent slot when
// missing, under the migration lock so that servers starting together do
// not race.
func (d *DB) ensureCapture(ctx context.Context) error {
	return withMigrateLock(ctx, d.pool, func(conn *pgxpool.Conn) error {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", d.pub).Scan(&exists); err != nil {
			return fmt.Errorf("postgres: publication: %w", err)
		}
		if !exists {
			// Only the public status table, and no TRUNCATE: realtime
			// clients know nothing of it.
			_, err := conn.Exec(ctx, fmt.Sprintf("CREATE PUBLICATION %s FOR TABLE %s.%s WITH (publish = 'insert, update, delete')",
				quoteIdent(d.pub), dollr.PublicSchema, dollr.PublicStatusTable))
			if err != nil {
				if pgCode(err) == codeInsufficientPrivil {
					return fmt.Errorf("%w: creating publication %s: %v: the role must own table %s or be a superuser",
						ErrSetup, d.pub, err, dollr.PublicStatusTable)
				}
				return fmt.Errorf("postgres: create publication: %w", err)
			}
		}
		return ensureSlot(ctx, conn, d.slot)
	})
}

// ensureSlot creates a persistent pgoutput slot if none has the name.
func ensureSlot(ctx context.Context, conn *pgxpool.Conn, slot string) error {
	var plugin, db *string
	err := conn.QueryRow(ctx, "SELECT plugin, database FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&plugin, &db)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: replication slot: %w", err)
	}
	if err == nil {
		var cur string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&cur); err != nil {
			return err
		}
		if plugin == nil || *plugin != "pgoutput" || db == nil || *db != cur {
			return fmt.Errorf("%w: replication slot %q exists but is not a pgoutput slot of database %q: "+
				"choose another slot name or drop it with SELECT pg_drop_replication_slot('%s')", ErrSetup, slot, cur, slot)
		}
		return nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot); err != nil {
		switch pgCode(err) {
		case codeDuplicateObject:
			return nil
		case codeConfigLimit:
			return fmt.Errorf("%w: creating replication slot %s: %v: raise max_replication_slots (restart needed) "+
				"or drop slots nobody reads (SELECT slot_name FROM pg_replication_slots WHERE NOT active)", ErrSetup, slot, err)
		}
		return fmt.Errorf("postgres: create replication slot %s: %w", slot, err)
	}
	return nil
}

func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }
