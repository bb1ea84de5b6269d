package realtime

import (
	"github.com/dollr/dollr"
)

// Table is one table the server serves postgres_changes for.
type Table struct {
	Schema  string
	Name    string
	Columns []dollr.Column // in attnum order, with pg_type.typname types
	// Key names the primary-key columns. A DELETE's old_record is cut down to
	// them, as the real server does for tables with row security.
	Key []string
}

type column struct {
	name string
	typ  string
	kind kind
}

// table is a Table prepared for matching and encoding.
type table struct {
	schema, name string
	id           string // "schema.name"
	cols         []column
	colIndex     map[string]int
	key          []string
	src          []dollr.Column
	colsJSON     []byte // the "columns" array, encoded once
}

func newTable(t Table) *table {
	tb := &table{schema: t.Schema, name: t.Name, id: t.Schema + "." + t.Name,
		colIndex: make(map[string]int, len(t.Columns)), key: t.Key, src: t.Columns}
	for i, c := range t.Columns {
		tb.cols = append(tb.cols, column{name: c.Name, typ: c.Type, kind: columnKind(c.Type)})
		tb.colIndex[c.Name] = i
	}
	tb.colsJSON = appendColumns(nil, t.Columns)
	return tb
}

// likeMatch matches a name against a subscription's schema or table, where
// "*" means any (the real server runs SQL LIKE with '*' → '%').
func likeMatch(pattern, name string) bool {
	return pattern == "*" || pattern == name
}
