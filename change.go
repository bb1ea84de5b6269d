package dollr

import (
	"context"
	"time"
)

// ChangeType is the kind of row change, as in postgres_changes.
type ChangeType string

const (
	ChangeInsert ChangeType = "INSERT"
	ChangeUpdate ChangeType = "UPDATE"
	ChangeDelete ChangeType = "DELETE"
)

// Column is a column name with its PostgreSQL type name (pg_type.typname:
// int8, text, uuid, numeric, bool, timestamptz, jsonb, _text, ...).
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Change is one committed row change, the value every change feed emits and
// the realtime server consumes. It is table-agnostic.
//
// Record and OldRecord hold JSON-typed values as PostgreSQL's to_jsonb renders
// them: nil for NULL, bool, int64 for integer types, json.Number for numeric
// and floats, string for text/uuid/timestamps (see FormatTimestamptz),
// map[string]any / []any for json, jsonb and arrays.
type Change struct {
	// Seq is the change's position in commit order: strictly increasing across
	// commits (the SQLite outbox sequence, or the PostgreSQL commit LSN). Changes
	// of one transaction share the commit's position and keep their order.
	Seq        uint64
	Schema     string
	Table      string
	Type       ChangeType
	CommitTime time.Time
	Columns    []Column
	Record     map[string]any // INSERT, UPDATE; nil on DELETE
	OldRecord  map[string]any // UPDATE, DELETE: the replica identity (primary key); nil on INSERT
}

// ChangeFeed delivers committed changes in commit order. A rolled-back
// transaction emits nothing.
type ChangeFeed interface {
	// Follow calls handle with batches of changes whose Seq is greater than
	// after, in commit order, until ctx ends or handle returns an error. A
	// backend that cannot replay from an arbitrary position (PostgreSQL
	// replication resumes from its slot) may start later than after, but never
	// skips a change committed after Follow was called. Follow returns ctx.Err()
	// when ctx ends.
	Follow(ctx context.Context, after uint64, handle func([]Change) error) error
	// Head returns the Seq of the newest committed change (0 if none).
	Head(ctx context.Context) (uint64, error)
}
