package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// offlineTypes is a type cache that knows only the built-in types.
func offlineTypes() *typeCache {
	return &typeCache{known: map[uint32]pgType{}, lookup: func(context.Context, uint32) (string, byte, uint32, uint32, error) {
		return "", 0, 0, 0, errors.New("offline")
	}}
}

func TestDecodeValue(t *testing.T) {
	types := offlineTypes()
	tests := []struct {
		name string
		oid  uint32
		text string
		want any
	}{
		{"int2", 21, "-7", int64(-7)},
		{"int4", 23, "2147483647", int64(2147483647)},
		{"int8", 20, "9223372036854775807", int64(9223372036854775807)},
		{"numeric keeps scale", 1700, "12.50", json.Number("12.50")},
		{"numeric NaN", 1700, "NaN", "NaN"},
		{"numeric infinity", 1700, "-Infinity", "-Infinity"},
		{"float8", 701, "1.5", json.Number("1.5")},
		{"float8 small", 701, "1.5e-07", json.Number("0.00000015")},
		{"float8 large", 701, "1.25e+21", json.Number("1250000000000000000000")},
		{"float8 exponent keeps scale", 701, "1.50e1", json.Number("15.0")},
		{"json exponent", 114, `[1e2, 2.5E-1]`, []any{json.Number("100"), json.Number("0.25")}},
		{"float8 infinity", 701, "Infinity", "Infinity"},
		{"bool true", 16, "t", true},
		{"bool false", 16, "f", false},
		{"text", 25, "hello, world", "hello, world"},
		{"uuid", 2950, "7d444840-9dc0-11d1-b245-5ffdce74fad2", "7d444840-9dc0-11d1-b245-5ffdce74fad2"},
		{"timestamptz micro", 1184, "2026-03-04 05:06:07.123456+00", "2026-03-04T05:06:07.123456+00:00"},
		{"timestamptz trims zeros", 1184, "2026-03-04 05:06:07.1+00", "2026-03-04T05:06:07.1+00:00"},
		{"timestamptz whole second", 1184, "2026-03-04 05:06:07+00", "2026-03-04T05:06:07+00:00"},
		{"timestamptz other zone", 1184, "2026-03-04 05:06:07+05:30", "2026-03-03T23:36:07+00:00"},
		{"timestamptz infinity", 1184, "infinity", "infinity"},
		{"timestamp", 1114, "2026-03-04 05:06:07.5", "2026-03-04T05:06:07.5"},
		{"date", 1082, "2026-03-04", "2026-03-04"},
		{"jsonb object", 3802, `{"a": 1, "b": [true, null, "x"]}`, map[string]any{"a": json.Number("1"), "b": []any{true, nil, "x"}}},
		{"json scalar", 114, `"s"`, "s"},
		{"text array", 1009, `{a,"b c","",NULL,"NULL","q\"uote","back\\slash"}`, []any{"a", "b c", "", nil, "NULL", `q"uote`, `back\slash`}},
		{"int8 array", 1016, `{1,-2,NULL}`, []any{int64(1), int64(-2), nil}},
		{"empty array", 1016, `{}`, []any{}},
		{"2-d array", 1007, `{{1,2},{3,4}}`, []any{[]any{int64(1), int64(2)}, []any{int64(3), int64(4)}}},
		{"array with bounds", 1007, `[0:1]={5,6}`, []any{int64(5), int64(6)}},
		{"numeric array", 1231, `{1.50,NaN}`, []any{json.Number("1.50"), "NaN"}},
		{"bool array", 1000, `{t,f}`, []any{true, false}},
		{"jsonb array", 3807, `{"{\"k\": 2}","[]"}`, []any{map[string]any{"k": json.Number("2")}, []any{}}},
		{"timestamptz array", 1185, `{"2026-03-04 05:06:07+00"}`, []any{"2026-03-04T05:06:07+00:00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, err := types.get(context.Background(), tt.oid)
			if err != nil {
				t.Fatal(err)
			}
			got, err := types.decodeValue(context.Background(), typ, tt.text)
			if err != nil {
				t.Fatalf("decode %q: %v", tt.text, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("decode %q = %#v, want %#v", tt.text, got, tt.want)
			}
		})
	}
}

func TestDecodeValueErrors(t *testing.T) {
	types := offlineTypes()
	for _, tt := range []struct {
		oid  uint32
		text string
	}{
		{20, "12x"},
		{16, "yes"},
		{3802, `{"a":`},
		{3802, `1 2`},
		{1009, `{a,b`},
		{1009, `{"a}`},
		{1009, `{a,,b}`},
		{1009, `a,b}`},
		{1009, `{a}x`},
		{1009, `[1:2]{a}`},
		{1016, `{1,x}`},
	} {
		typ, err := types.get(context.Background(), tt.oid)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := types.decodeValue(context.Background(), typ, tt.text); err == nil {
			t.Errorf("decode %s %q = %#v, want an error", typ.name, tt.text, v)
		}
	}
}

func TestUnknownTypeNeedsLookup(t *testing.T) {
	if _, err := offlineTypes().get(context.Background(), 99999); err == nil {
		t.Fatal("an unknown OID resolved without a lookup")
	}
	types := &typeCache{known: map[uint32]pgType{}, lookup: func(_ context.Context, oid uint32) (string, byte, uint32, uint32, error) {
		switch oid {
		case 90001: // a domain over numeric
			return "money_amount", 'd', 0, 1700, nil
		case 90002: // an enum
			return "mood", 'e', 0, 0, nil
		case 90003: // array of that enum
			return "_mood", 'b', 90002, 0, nil
		}
		return "", 0, 0, 0, errors.New("no such type")
	}}
	for oid, want := range map[uint32]pgType{
		90001: {name: "money_amount", render: renderNumber},
		90002: {name: "mood", render: renderString},
		90003: {name: "_mood", render: renderArray, elem: 90002},
	} {
		got, err := types.get(context.Background(), oid)
		if err != nil || got != want {
			t.Errorf("type %d = %+v, %v; want %+v", oid, got, err, want)
		}
	}
}

// FuzzDecodeArray checks that no array literal makes the decoder panic.
func FuzzDecodeArray(f *testing.F) {
	for _, s := range []string{`{}`, `{a,"b\"c",NULL}`, `{{1,2},{3}}`, `[1:2]={1,2}`, `{"`, `{{{{{{{{1}}}}}}}}`, `{\}`} {
		f.Add(s)
	}
	types := offlineTypes()
	typ, _ := types.get(context.Background(), 1009) // _text
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = types.decodeValue(context.Background(), typ, s)
	})
}

// FuzzDecodeValue feeds arbitrary text to every built-in renderer.
func FuzzDecodeValue(f *testing.F) {
	f.Add(uint32(1184), "2026-03-04 05:06:07+00")
	f.Add(uint32(3802), `{"a":[1,2]}`)
	f.Add(uint32(1700), "1e5")
	f.Add(uint32(1016), "{1,2}")
	types := offlineTypes()
	f.Fuzz(func(t *testing.T, oid uint32, s string) {
		typ, err := types.get(context.Background(), oid)
		if err != nil {
			return
		}
		_, _ = types.decodeValue(context.Background(), typ, s)
	})
}

// FuzzApply feeds arbitrary pgoutput messages to the stream decoder: it
// must return errors, never panic.
func FuzzApply(f *testing.F) {
	// A Relation message for (id int8 key, v text) and an Insert into it.
	rel := []byte{'R', 0, 0, 0, 1, 'p', 'u', 'b', 'l', 'i', 'c', 0, 't', 0, 'd', 0, 2,
		1, 'i', 'd', 0, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xff,
		0, 'v', 0, 0, 0, 0, 25, 0xff, 0xff, 0xff, 0xff}
	ins := []byte{'I', 0, 0, 0, 1, 'N', 0, 2, 't', 0, 0, 0, 1, '7', 'n'}
	f.Add(rel, ins)
	f.Add([]byte{'B'}, []byte{'C', 0})
	f.Add(rel, []byte{'U', 0, 0, 0, 1, 'K', 0, 2, 't', 0, 0, 0, 1, '7', 'n', 'N', 0, 2, 't', 0, 0, 0, 1, '8', 'u'})
	f.Add(rel, []byte{'D', 0, 0, 0, 1, 'K', 0, 1})
	f.Fuzz(func(t *testing.T, first, second []byte) {
		s := &stream{capture: &capture{types: offlineTypes()}, rels: map[uint32]*relation{}}
		for _, msg := range [][]byte{first, second} {
			_, _, _ = s.apply(context.Background(), msg)
		}
	})
}
