package main

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
)

func TestMigrateAndSlotCommands(t *testing.T) {
	c := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := c.URL("postgres")
	t.Setenv("DATABASE_URL", "")
	if code := run(ctx, []string{"migrate"}, io.Discard); code != 2 {
		t.Fatalf("migrate without a URL exited %d, want 2", code)
	}
	for range 2 { // the second run finds nothing to do
		if code := run(ctx, []string{"migrate", "--database-url", url}, io.Discard); code != 0 {
			t.Fatalf("migrate exited %d", code)
		}
	}
	db, err := postgres.Open(ctx, url, postgres.Options{}) // creates the slot
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if info, err := postgres.SlotStatus(ctx, url, ""); err != nil || !info.Exists || info.Active {
		t.Fatalf("slot after Open = %+v, %v; want an idle slot", info, err)
	}
	if code := run(ctx, []string{"slot", "status", "--database-url", url}, io.Discard); code != 0 {
		t.Fatalf("slot status exited %d", code)
	}
	if code := run(ctx, []string{"slot", "drop", "--database-url", url}, io.Discard); code != 0 {
		t.Fatalf("slot drop exited %d", code)
	}
	if info, err := postgres.SlotStatus(ctx, url, ""); err != nil || info.Exists {
		t.Fatalf("slot after drop = %+v, %v; want none", info, err)
	}
	if code := run(ctx, []string{"slot", "drop", "--database-url", url}, io.Discard); code != 0 {
		t.Fatalf("slot drop of a missing slot exited %d, want 0", code)
	}
	if code := run(ctx, []string{"slot", "vanish"}, io.Discard); code != 2 {
		t.Fatalf("unknown slot subcommand exited %d, want 2", code)
	}
}
