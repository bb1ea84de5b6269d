package realtime

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dollr/dollr"
)

func TestParseFilter(t *testing.T) {
	cases := []struct {
		name   string
		filter string
		want   []rawCondition
		err    string
	}{
		{name: "empty", filter: "", want: nil},
		{name: "blank", filter: "   ", want: nil},
		{name: "eq", filter: "subject=eq.hey", want: []rawCondition{{"subject", "eq", "hey", false}}},
		{name: "value keeps dots", filter: "v=eq.a.b.c", want: []rawCondition{{"v", "eq", "a.b.c", false}}},
		{name: "value keeps equals", filter: "v=eq.a=b", want: []rawCondition{{"v", "eq", "a=b", false}}},
		{name: "in", filter: "subject=in.(hidee,ho)", want: []rawCondition{{"subject", "in", "{hidee,ho}", false}}},
		{name: "not like", filter: "subject=not.like.hey%", want: []rawCondition{{"subject", "like", "hey%", true}}},
		{name: "and", filter: "id=gt.0,id=lt.100", want: []rawCondition{{"id", "gt", "0", false}, {"id", "lt", "100", false}}},
		{name: "and with spaces", filter: " id=gt.0 , name=eq.x ", want: []rawCondition{{"id", "gt", "0", false}, {"name", "eq", "x", false}}},
		{name: "comma inside in", filter: "a=in.(1,2),b=eq.3", want: []rawCondition{{"a", "in", "{1,2}", false}, {"b", "eq", "3", false}}},
		{name: "quoted comma", filter: `a=eq."x,y",b=eq.z`, want: []rawCondition{{"a", "eq", "x,y", false}, {"b", "eq", "z", false}}},
		{name: "quoted escapes", filter: `a=eq."say \"hi\" \\ there"`, want: []rawCondition{{"a", "eq", `say "hi" \ there`, false}}},
		{name: "broken quote kept verbatim", filter: `a=eq."x"y`, want: []rawCondition{{"a", "eq", `"x"y`, false}}},
		{name: "quote mid-value is literal", filter: `a=eq.x"y,z`, err: "Error parsing `filter` params: [\"z\"]"},
		{name: "all ops", filter: "a=neq.1,b=lte.2,c=gte.3,d=ilike.x,e=is.null,f=match.^a,g=imatch.b$,h=isdistinct.4",
			want: []rawCondition{{"a", "neq", "1", false}, {"b", "lte", "2", false}, {"c", "gte", "3", false}, {"d", "ilike", "x", false},
				{"e", "is", "null", false}, {"f", "match", "^a", false}, {"g", "imatch", "b$", false}, {"h", "isdistinct", "4", false}}},
		{name: "unsupported op", filter: "subject=foo.hey", err: "Error parsing `filter` params: [\"foo\", \"hey\"]"},
		{name: "undefined", filter: "undefined", err: "Error parsing `filter` params: [\"undefined\"]"},
		{name: "no dot", filter: "a=eq", err: "Error parsing `filter` params: [\"eq\"]"},
		{name: "empty segment", filter: "a=eq.1,,b=eq.2", err: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "trailing comma", filter: "a=eq.1,", err: "Error parsing `filter` params: filter must not contain empty segments (check for extra commas)"},
		{name: "in without parens", filter: "a=in.1,2", err: "Error parsing `filter` params: `in` filter value must be wrapped by parentheses"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFilter(tc.filter)
			if tc.err != "" || err != nil {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("condition %d = %#v, want %#v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseArrayLiteral(t *testing.T) {
	cases := []struct {
		in    string
		want  []string
		nulls int
		bad   bool
	}{
		{in: "{}", want: nil},
		{in: "{a,b}", want: []string{"a", "b"}},
		{in: "{ a , b c }", want: []string{"a", "b c"}},
		{in: `{"a,b","c\"d",e\,f}`, want: []string{"a,b", `c"d`, "e,f"}},
		{in: "{NULL,null,\"null\"}", want: []string{"null"}, nulls: 2},
		{in: "{a,,b}", bad: true},
		{in: "{a,{b}}", bad: true},
		{in: `{"a}`, bad: true},
		{in: `{"a"b}`, bad: true},
	}
	for _, tc := range cases {
		got, nulls, err := parseArrayLiteral(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%s: err = %v", tc.in, err)
			continue
		}
		if !tc.bad && (strings.Join(got, "|") != strings.Join(tc.want, "|") || nulls != tc.nulls) {
			t.Errorf("%s: got %q (%d nulls), want %q (%d)", tc.in, got, nulls, tc.want, tc.nulls)
		}
	}
}

// matchRow compiles filter against the items table and tests it on row.
func matchRow(t *testing.T, filter string, typ dollr.ChangeType, row map[string]any) (bool, error) {
	t.Helper()
	raws, err := parseFilter(filter)
	if err != nil {
		return false, err
	}
	tb := newTable(itemsTable)
	conds, err := compileConditions(tb, raws)
	if err != nil {
		return false, err
	}
	sb := &sub{table: tb, events: evAll, conds: conds}
	var rv rowView
	rv.reset(tb, row)
	return sb.matches(typ, &rv), nil
}

func TestFilterMatching(t *testing.T) {
	row := map[string]any{
		"id": int64(42), "ref": "6F1C2D1E-0000-4000-8000-000000000001", "name": "Alice Smith", "amount": json.Number("12.50"),
		"done": true, "at": "2026-08-21T12:00:00.123456+00:00", "meta": map[string]any{"b": int64(2), "a": []any{"x"}},
		"score": nil,
	}
	cases := []struct {
		filter string
		want   bool
	}{
		{"id=eq.42", true},
		{"id=eq.042", true},
		{"id=eq.41", false},
		{"id=neq.41", true},
		{"id=lt.100", true},
		{"id=lt.5", false}, // numeric, not text, order
		{"id=gte.42,id=lte.42", true},
		{"id=in.(1,2,42)", true},
		{"id=in.(1,2)", false},
		{"id=not.in.(1,2)", true},
		{"id=in.(1,NULL)", false},
		{"id=not.in.(1,NULL)", false}, // NOT (unknown) is unknown
		{"id=isdistinct.41", true},
		{"id=not.isdistinct.42", true},
		{"ref=eq.6f1c2d1e-0000-4000-8000-000000000001", true},
		{"ref=eq.{6f1c2d1e00004000-8000-000000000001}", true},
		{"ref=neq.6f1c2d1e-0000-4000-8000-000000000001", false},
		{"name=eq.Alice Smith", true},
		{`name=eq."Alice Smith"`, true},
		{"name=like.Alice%", true},
		{"name=like.alice%", false},
		{"name=ilike.alice%", true},
		{"name=like.Alic_ Smith", true},
		{"name=not.like.Bob%", true},
		{"name=match.^A.*h$", true},
		{"name=imatch.^alice", true},
		{"name=gt.Aardvark", true},
		{"amount=eq.12.5", true},
		{"amount=eq.12.500", true},
		{"amount=gt.9.99", true},
		{"amount=lt.100", true},
		{"amount=gt.12.51", false},
		{"done=eq.true", true},
		{"done=eq.t", true},
		{"done=is.true", true},
		{"done=is.false", false},
		{"done=not.is.false", true},
		{"score=is.null", true},
		{"score=not.is.null", false},
		{"score=eq.1", false},     // NULL = 1 is unknown
		{"score=not.eq.1", false}, // and so is its negation
		{"score=isdistinct.1", true},
		{"at=eq.2026-08-21 12:00:00.123456Z", true},
		{"at=eq.2026-08-21T14:00:00.123456+02:00", true},
		{"at=gt.2026-08-21", true},
		{"at=lt.2026-08-21T12:00:00.123457Z", true},
		{`meta=eq."{\"a\":[\"x\"],\"b\":2}"`, true},
		{`meta=eq.{"b":2}`, false},
		{"id=eq.42,name=eq.Bob", false},
	}
	for _, tc := range cases {
		got, err := matchRow(t, tc.filter, dollr.ChangeInsert, row)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterMatchingRowValueTypes(t *testing.T) {
	// Row values may arrive as strings (wal2json style) or JSON types; both cast.
	for _, row := range []map[string]any{
		{"id": "42", "amount": "12.50", "done": "t", "score": "1.5"},
		{"id": json.Number("42"), "amount": 12.5, "done": true, "score": json.Number("1.5")},
		{"id": 42, "amount": int64(12), "done": true, "score": float64(1.5)},
	} {
		ok, err := matchRow(t, "id=eq.42,done=is.true,score=gt.1,amount=gte.12", dollr.ChangeInsert, row)
		if err != nil || !ok {
			t.Errorf("row %v: ok=%v err=%v", row, ok, err)
		}
	}
}

func TestDeleteTestsOldIdentity(t *testing.T) {
	old := map[string]any{"id": int64(7)}
	if ok, _ := matchRow(t, "id=eq.7", dollr.ChangeDelete, old); !ok {
		t.Error("delete by key should match")
	}
	if ok, _ := matchRow(t, "name=eq.x", dollr.ChangeDelete, old); ok {
		t.Error("a condition on a column the old identity lacks must not pass")
	}
	if ok, _ := matchRow(t, "name=not.eq.x", dollr.ChangeDelete, old); ok {
		t.Error("nor its negation")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ filter, want string }{
		{"nope=eq.1", "ERROR P0001 (raise_exception) invalid column for filter nope"},
		{"id=eq.x", `ERROR 22P02 (invalid_text_representation) invalid input syntax for type bigint: "x"`},
		{"ref=eq.ref_123", `ERROR 22P02 (invalid_text_representation) invalid input syntax for type uuid: "ref_123"`},
		{"at=eq.yesterday", `ERROR 22007 (invalid_datetime_format) invalid input syntax for type timestamp with time zone: "yesterday"`},
		{"id=like.4%", "ERROR P0001 (raise_exception) operator like requires a text-compatible column type, got bigint"},
		{"id=match.4", "ERROR P0001 (raise_exception) operator match requires a text-compatible column type, got bigint"},
		{"name=match.(", "ERROR P0001 (raise_exception) invalid regular expression for match filter: error parsing regexp: missing closing ): `(`"},
		{"id=is.true", "ERROR P0001 (raise_exception) is true filter requires a boolean column, got bigint"},
		{"done=is.maybe", "ERROR P0001 (raise_exception) invalid value for is filter: must be null, true, false, or unknown"},
		{"id=in.(" + strings.Repeat("1,", 100) + "1)", "ERROR P0001 (raise_exception) too many values for `in` filter. Maximum 100"},
		{"id=in.(1,x)", `ERROR 22P02 (invalid_text_representation) invalid input syntax for type bigint: "x"`},
		{`name=like.abc\`, "ERROR 22025 (invalid_escape_sequence) LIKE pattern must not end with escape character"},
	}
	for _, tc := range cases {
		_, err := matchRow(t, tc.filter, dollr.ChangeInsert, map[string]any{})
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v\nwant %s", tc.filter, err, tc.want)
		}
	}
	if _, err := matchRow(t, "id=in.("+strings.TrimSuffix(strings.Repeat("1,", 100), ",")+")", dollr.ChangeInsert, map[string]any{}); err != nil {
		t.Errorf("100 values are allowed: %v", err)
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"reference_id=eq.6f1c2d1e-0000-4000-8000-000000000001", "a=in.(1,\"2,3\",NULL)",
		`a=not.like."x\"y",b=is.null`, "a=eq.1,,b", "((,\"", "id=gt.0,id=lt.100", "name=match.^(a|b)$"} {
		f.Add(s)
	}
	tb := newTable(itemsTable)
	f.Fuzz(func(t *testing.T, s string) {
		raws, err := parseFilter(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Error parsing `filter` params: ") {
				t.Fatalf("unexpected error form %q", err)
			}
			return
		}
		conds, err := compileConditions(tb, raws)
		if err != nil {
			return
		}
		sb := &sub{table: tb, events: evAll, conds: conds}
		sb.chooseKey()
		var rv rowView
		rv.reset(tb, itemRow(1))
		sb.matches(dollr.ChangeInsert, &rv)
	})
}
