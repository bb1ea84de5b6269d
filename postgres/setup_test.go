package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
)

// Open refuses a server it cannot capture from and says what to change.
func TestOpenExplainsSetup(t *testing.T) {
	c := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Exec(ctx, "postgres", "CREATE ROLE plain LOGIN"); err != nil {
		t.Fatal(err)
	}
	plainURL := strings.Replace(c.URL("postgres"), "postgres@", "plain@", 1)
	_, err := postgres.Open(ctx, plainURL, postgres.Options{})
	if !errors.Is(err, postgres.ErrSetup) || !strings.Contains(err.Error(), `ALTER ROLE "plain" WITH REPLICATION`) {
		t.Fatalf("Open as a role without REPLICATION = %v, want an ErrSetup naming ALTER ROLE plain WITH REPLICATION", err)
	}

	if err := c.Exec(ctx, "postgres", "ALTER SYSTEM SET wal_level = replica"); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.Open(ctx, c.URL("postgres"), postgres.Options{})
	if !errors.Is(err, postgres.ErrSetup) || !strings.Contains(err.Error(), `wal_level is "replica"`) ||
		!strings.Contains(err.Error(), "ALTER SYSTEM SET wal_level = logical") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Open with wal_level=replica = %v, want an ErrSetup saying to set wal_level = logical and restart", err)
	}
}

// Servers starting together migrate once and all come up.
func TestOpenConcurrently(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const servers = 4
	dbs := make([]*postgres.DB, servers)
	errs := make([]error, servers)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			dbs[i], errs[i] = postgres.Open(ctxT(t), url, postgres.Options{})
		})
	}
	wg.Wait()
	for i := range servers {
		if errs[i] != nil {
			t.Fatalf("server %d: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	var n, slots int
	if err := dbs[0].Pool().QueryRow(ctxT(t), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := dbs[0].Pool().QueryRow(ctxT(t), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", dbs[0].Slot()).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if n != postgres.MigrationCount() || slots != 1 {
		t.Fatalf("%d migrations recorded and %d slots, want %d and 1", n, slots, postgres.MigrationCount())
	}
	// The migrated schema has the public status table with exactly the
	// contract's column types.
	rows, err := dbs[0].Pool().Query(ctxT(t), `SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, dollr.PublicStatusTable)
	if err != nil {
		t.Fatal(err)
	}
	var cols []dollr.Column
	for rows.Next() {
		var c dollr.Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if len(cols) != len(dollr.PublicStatusColumns) {
		t.Fatalf("columns %v, want %v", cols, dollr.PublicStatusColumns)
	}
	for i := range cols {
		if cols[i] != dollr.PublicStatusColumns[i] {
			t.Errorf("column %d = %v, want %v", i, cols[i], dollr.PublicStatusColumns[i])
		}
	}
}

// SlotDrop refuses a slot in use, drops an idle one, and the next capture
// recreates it.
func TestSlotDrop(t *testing.T) {
	db, url := open(t)
	m := newMerchant(t, db)
	f := follow(t, db, 0)
	f.Live(t, db, m)
	if dropped, err := postgres.SlotDrop(ctxT(t), url, ""); err == nil || dropped || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("SlotDrop of a slot in use = %v, %v; want an in-use error", dropped, err)
	}
	f.Stop(t)
	// The server ends the walsender shortly after the client leaves.
	deadline := time.Now().Add(waitLimit)
	for {
		dropped, err := postgres.SlotDrop(ctxT(t), url, "")
		if err == nil && dropped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SlotDrop of an idle slot = %v, %v", dropped, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if dropped, err := postgres.SlotDrop(ctxT(t), url, db.Slot()); err != nil || dropped {
		t.Fatalf("SlotDrop of a missing slot = %v, %v; want false, nil", dropped, err)
	}
	again := follow(t, db, 0)
	again.Live(t, db, m)
}

// A slot PostgreSQL invalidated for holding too much WAL
// (max_slot_wal_keep_size) is replaced, and capture goes on.
func TestInvalidatedSlotIsReplaced(t *testing.T) {
	c := pgtest.Start(t)
	url, _, err := c.CreateDatabase(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctxT(t), "postgres", "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'"); err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctxT(t), "postgres", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	db := openURL(t, url, postgres.Options{CaptureRetry: 200 * time.Millisecond})
	m := newMerchant(t, db)
	conn := connect(t, url)
	// Nobody follows: the slot falls behind while WAL is written.
	if _, err := conn.Exec(ctxT(t), "CREATE TABLE filler (x text)"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitLimit)
	for {
		if _, err := conn.Exec(ctxT(t), `INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 5000);
			SELECT pg_switch_wal(); CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		info, err := postgres.SlotStatus(ctxT(t), url, db.Slot())
		if err != nil {
			t.Fatal(err)
		}
		if info.WALStatus == "lost" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never invalidated: %+v", info)
		}
	}
	f := follow(t, db, 0)
	f.Live(t, db, m)
	if info, err := postgres.SlotStatus(ctxT(t), url, db.Slot()); err != nil || info.WALStatus == "lost" {
		t.Fatalf("slot after recovery = %+v, %v", info, err)
	}
}
