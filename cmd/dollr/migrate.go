package main

import (
	"context"
	"fmt"
	"os"

	"github.com/dollr/dollr/postgres"
)

func init() {
	register("migrate", command{
		Summary: "apply the PostgreSQL schema migrations: migrate --database-url URL",
		Run:     runMigrate,
	})
}

func runMigrate(ctx context.Context, args []string) int {
	fs := newFlagSet("migrate", "dollr migrate --database-url URL", `
Applies the schema migrations a PostgreSQL database lacks and prints their
names. 'dollr serve --database-url' applies them at start too; several servers
(or this command) running at once take turns under an advisory lock.
The SQLite store needs no separate step.`)
	url := databaseURLFlag(fs, "PostgreSQL URL, postgres://user:pass@host:5432/db (env DATABASE_URL)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *url == "" {
		fmt.Fprintln(os.Stderr, "dollr migrate: --database-url (or DATABASE_URL) is required")
		return 2
	}
	applied, err := postgres.MigrateDatabase(ctx, *url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dollr migrate: %v\n", err)
		return 1
	}
	if len(applied) == 0 {
		fmt.Println("schema is up to date")
	}
	for _, name := range applied {
		fmt.Println("applied", name)
	}
	return 0
}
