package wire

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/storetest"
)

func roundTrip(t *testing.T, batch []dollr.Change) []dollr.Change {
	t.Helper()
	data, err := Encode(batch)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return got
}

// publicStatusChange is an UPDATE of the public status table as the stores
// produce it.
func publicStatusChange(seq uint64) dollr.Change {
	row := dollr.PublicStatus{ID: 7, ReferenceID: "5f0c7b8e-1d2a-4c3b-9e8f-0a1b2c3d4e5f", SessionID: 8, SourceType: dollr.SourceInvoice,
		SourceID: 9, Status: dollr.StatusProcessing, PayerAmount: 1250, PayerCurrency: "USD", PaymentMethod: "MTN_MOMO_LBR",
		CreatedAt: time.Unix(1700000000, 123456000), UpdatedAt: time.Unix(1700000001, 0)}
	return dollr.Change{Seq: seq, Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable, Type: dollr.ChangeUpdate,
		CommitTime: time.Unix(1700000002, 987654321).UTC(), Columns: dollr.PublicStatusColumns,
		Record: row.Record(), OldRecord: map[string]any{"id": int64(7)}}
}

// TestValueTypesRoundTrip covers the value types PostgreSQL's decoder
// produces for columns the public status table does not have.
func TestValueTypesRoundTrip(t *testing.T) {
	c := dollr.Change{
		Seq: 1<<40 + 5, Schema: "public", Table: "t", Type: dollr.ChangeUpdate,
		CommitTime: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
		Columns: []dollr.Column{{Name: "i2", Type: "int2"}, {Name: "i8", Type: "int8"}, {Name: "big", Type: "int8"},
			{Name: "o", Type: "oid"}, {Name: "n", Type: "numeric"}, {Name: "f", Type: "float8"}, {Name: "nan", Type: "float8"},
			{Name: "b", Type: "bool"}, {Name: "s", Type: "text"}, {Name: "null", Type: "text"}, {Name: "j", Type: "jsonb"},
			{Name: "ai", Type: "_int8"}, {Name: "at", Type: "_text"}, {Name: "nulla", Type: "_int4"}},
		Record: map[string]any{
			"i2": int64(-3), "i8": int64(9007199254740993), "big": int64(-9223372036854775808), "o": int64(4294967295),
			"n": json.Number("12.50"), "f": json.Number("0.00000015"), "nan": "NaN", "b": true, "s": "a \"q\" é",
			"null": nil, "j": map[string]any{"k": []any{json.Number("1"), "x", nil, map[string]any{"z": false}}},
			"ai": []any{int64(1), nil, []any{int64(2), int64(3)}}, "at": []any{"a", nil}, "nulla": nil,
		},
		OldRecord: map[string]any{"i8": int64(9007199254740993)},
	}
	del := dollr.Change{Seq: 1<<40 + 5, Schema: "public", Table: "t", Type: dollr.ChangeDelete, CommitTime: c.CommitTime,
		Columns: c.Columns, OldRecord: map[string]any{"i8": int64(1)}}
	batch := []dollr.Change{c, del}
	if got := roundTrip(t, batch); !storetest.EqualChanges(got, batch) {
		t.Fatalf("changed on the wire:\n sent %#v\n  got %#v", batch, got)
	}
}

// FuzzDecodeBatch: any message body decodes or fails, never panics, and
// what decodes survives a second trip unchanged.
func FuzzDecodeBatch(f *testing.F) {
	for _, b := range [][]dollr.Change{{publicStatusChange(1), publicStatusChange(1)}, {publicStatusChange(1 << 62)}} {
		data, err := Encode(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"changes":[{"seq":3,"type":"INSERT","table":"t","columns":[{"name":"a","type":"_int8"}],"record":{"a":[[1],[2,null]]}}]}`))
	f.Add([]byte(`{"changes":[{"seq":3,"type":"DELETE","table":"t","record":null,"old_record":{"id":"1"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		batch, err := Decode(data)
		if err != nil {
			return
		}
		again, err := Encode(batch)
		if err != nil {
			t.Fatalf("decoded batch does not encode: %v", err)
		}
		back, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v\n%s", err, again)
		}
		if !storetest.EqualChanges(back, batch) {
			t.Fatalf("second trip changed the batch:\n%#v\n%#v", batch, back)
		}
	})
}
