package postgres_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dollr/dollr/pgtest"
	"github.com/dollr/dollr/postgres"
)

// On a young database (tables never analyzed, as after migrating) PostgreSQL
// can cache a generic plan for a prepared lookup that walks an index on its
// merchant_id prefix and filters the rest: every later call then reads all
// of the merchant's rows. pgx prepares every statement, so the lookups the
// hot paths use must have no such index to pick.
func TestLookupPlansOnYoungTables(t *testing.T) {
	url := pgtest.NewDatabase(t)
	openURL(t, url, postgres.Options{}) // migrates
	ctx := ctxT(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name, sql, args, index string
	}{
		{"status API: execution by reference", postgres.ExecutionByReferenceSQL, "(1, 'ref')", "executions_reference_key"},
		{"latest execution for a source", postgres.LatestExecutionForSourceSQL, "(1, 1)", "executions_source"},
		{"recent execution times", postgres.RecentExecutionTimesSQL, "(1, 1, 5)", "executions_source"},
		{"source status update", postgres.MoveSourceSQL, "('PAID', now(), NULL, 1)", "sources_pkey"},
		{"source by id", postgres.SourceByIDSQL, "(1)", "sources_pkey"},
		{"party by id", postgres.PartyByIDSQL, "(1, 1)", "parties_pkey"},
	} {
		name := fmt.Sprintf("lookup%d", i)
		if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+c.sql); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE "+name+c.args, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		plan := strings.Join(lines, "\n")
		if !strings.Contains(plan, "using "+c.index+" ") {
			t.Errorf("%s: generic plan does not look rows up by %s:\n%s", c.name, c.index, plan)
		}
	}
}
