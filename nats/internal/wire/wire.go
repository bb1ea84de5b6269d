// Package wire is the JSON form of a batch of dollr.Change on the NATS
// stream. It is kept apart from package nats so that its fuzz target runs in
// a small test binary.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dollr/dollr"
)

// A message is one batch (one transaction's changes) as JSON:
//
//	{"changes":[{"seq":1,"schema":"public","table":"t","type":"UPDATE",
//	  "commit_time":"2026-01-02T03:04:05.123456Z","columns":[{"name":"id","type":"int8"}],
//	  "record":{"id":7},"old_record":{"id":7}}]}
//
// Record values are written as their JSON form. Decoding gives back what the
// stores produce (see dollr.Change): json.Number for every number, then int64
// for the values of integer columns (int2, int4, int8, oid, and their arrays),
// so a change decoded on another server equals the one captured. Values the
// stores never produce lose their Go type: a time.Time arrives as an
// RFC 3339 string, a float64 as json.Number.

// wireBatch is a message's JSON body.
type wireBatch struct {
	Changes []wireChange `json:"changes"`
}

type wireChange struct {
	Seq        uint64           `json:"seq"`
	Schema     string           `json:"schema"`
	Table      string           `json:"table"`
	Type       dollr.ChangeType `json:"type"`
	CommitTime time.Time        `json:"commit_time"`
	Columns    []dollr.Column   `json:"columns"`
	Record     map[string]any   `json:"record"`
	OldRecord  map[string]any   `json:"old_record"`
}

// Encode renders a non-empty batch as a message body.
func Encode(batch []dollr.Change) ([]byte, error) {
	each, err := EncodeEach(batch)
	if err != nil {
		return nil, err
	}
	return Join(each), nil
}

// EncodeEach renders each change of a batch on its own; Join makes a message
// body of any run of them, so a batch too large for one message can be cut
// into several without encoding it twice.
func EncodeEach(batch []dollr.Change) ([][]byte, error) {
	out := make([][]byte, len(batch))
	for i, c := range batch {
		data, err := json.Marshal(wireChange{Seq: c.Seq, Schema: c.Schema, Table: c.Table, Type: c.Type, CommitTime: c.CommitTime,
			Columns: c.Columns, Record: c.Record, OldRecord: c.OldRecord})
		if err != nil {
			return nil, fmt.Errorf("change %d (seq %d): %w", i, c.Seq, err)
		}
		out[i] = data
	}
	return out, nil
}

const (
	bodyPrefix = `{"changes":[`
	bodySuffix = `]}`
)

// Size is the length of Join(changes).
func Size(changes [][]byte) int {
	n := len(bodyPrefix) + len(bodySuffix)
	for i, c := range changes {
		if i > 0 {
			n++
		}
		n += len(c)
	}
	return n
}

// Join makes a message body of changes rendered by EncodeEach.
func Join(changes [][]byte) []byte {
	out := make([]byte, 0, Size(changes))
	out = append(out, bodyPrefix...)
	for i, c := range changes {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, c...)
	}
	return append(out, bodySuffix...)
}

// Decode parses a message body. Anything but a well-formed, non-empty
// batch in commit order is an error, never a panic: the body comes off the
// network.
func Decode(data []byte) ([]dollr.Change, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var w wireBatch
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	if d.More() {
		return nil, errors.New("batch: trailing data")
	}
	if len(w.Changes) == 0 {
		return nil, errors.New("batch: no changes")
	}
	out := make([]dollr.Change, len(w.Changes))
	for i, c := range w.Changes {
		switch {
		case c.Seq == 0:
			return nil, fmt.Errorf("change %d: no seq", i)
		case i > 0 && c.Seq < out[i-1].Seq:
			return nil, fmt.Errorf("change %d: seq %d after %d", i, c.Seq, out[i-1].Seq)
		case c.Type != dollr.ChangeInsert && c.Type != dollr.ChangeUpdate && c.Type != dollr.ChangeDelete:
			return nil, fmt.Errorf("change %d: type %q", i, c.Type)
		case c.Table == "":
			return nil, fmt.Errorf("change %d: no table", i)
		}
		for _, col := range c.Columns {
			for _, rec := range []map[string]any{c.Record, c.OldRecord} {
				if v, ok := rec[col.Name]; ok {
					iv, err := integers(col.Type, v)
					if err != nil {
						return nil, fmt.Errorf("change %d: column %s: %w", i, col.Name, err)
					}
					rec[col.Name] = iv
				}
			}
		}
		out[i] = dollr.Change{Seq: c.Seq, Schema: c.Schema, Table: c.Table, Type: c.Type, CommitTime: c.CommitTime,
			Columns: c.Columns, Record: c.Record, OldRecord: c.OldRecord}
	}
	return out, nil
}

// integers turns the json.Numbers of an integer column's value (or of an
// integer array's elements, at any depth) into int64, as the stores render them.
func integers(typ string, v any) (any, error) {
	switch typ {
	case "int2", "int4", "int8", "oid":
	case "_int2", "_int4", "_int8", "_oid":
		a, ok := v.([]any)
		if !ok {
			return v, nil // NULL, or not an array: left as sent
		}
		for i := range a {
			x, err := integers(typ, a[i])
			if err != nil {
				return nil, err
			}
			if n, ok := x.(json.Number); ok {
				if x, err = n.Int64(); err != nil {
					return nil, err
				}
			}
			a[i] = x
		}
		return a, nil
	default:
		return v, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return v, nil
	}
	return n.Int64()
}
