package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dollr/dollr"
)

func TestParseBodyErrors(t *testing.T) {
	cases := []struct {
		body string
		loc  []any
		typ  string
	}{
		{"", []any{"body"}, "missing"},
		{"   ", []any{"body"}, "missing"},
		{"{", []any{"body", int64(1)}, "json_invalid"},
		{`{"a":}`, []any{"body", int64(5)}, "json_invalid"},
		{`{"a" 1}`, []any{"body", int64(5)}, "json_invalid"},
		{`{"a":1}x`, []any{"body", int64(7)}, "json_invalid"},
		{"[]", []any{"body"}, "model_attributes_type"},
		{`"s"`, []any{"body"}, "model_attributes_type"},
		{"null", []any{"body"}, "model_attributes_type"},
		{"12", []any{"body"}, "model_attributes_type"},
	}
	for _, c := range cases {
		_, err := parseBody([]byte(c.body))
		var de *dollr.Error
		if !errors.As(err, &de) || len(de.Fields) != 1 {
			t.Fatalf("parseBody(%q) = %v", c.body, err)
		}
		f := de.Fields[0]
		if f.Type != c.typ || len(f.Loc) != len(c.loc) {
			t.Fatalf("parseBody(%q) = %+v, want %v %s", c.body, f, c.loc, c.typ)
		}
		for i := range c.loc {
			if f.Loc[i] != c.loc[i] {
				t.Fatalf("parseBody(%q) loc = %#v, want %#v", c.body, f.Loc, c.loc)
			}
		}
	}
}

func TestFieldAccessors(t *testing.T) {
	b, err := parseBody([]byte(`{"s":"x","n":5,"f":5.0,"fs":"7","frac":1.5,"big":1e300,"bool":true,"null":null,
		"u":"550E8400-E29B-41D4-A716-446655440000","u1":"c232ab00-9414-11ec-b3c8-9f6bdeced846",
		"amt":12.5,"amt3":1.005,"amt0":0,"neg":-1,"t":"2030-01-02T03:04:05+02:00","d":"2030-01-02","bad":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := b.String("s", true); !ok || s != "x" {
		t.Error("String")
	}
	if n, ok := b.Int("n", true); !ok || n != 5 {
		t.Error("Int")
	}
	if n, ok := b.Int("f", true); !ok || n != 5 {
		t.Error("Int from 5.0")
	}
	if n, ok := b.Int("fs", true); !ok || n != 7 {
		t.Error("Int from string")
	}
	if u, ok := b.UUID4("u", true); !ok || u != "550e8400-e29b-41d4-a716-446655440000" {
		t.Errorf("UUID4 = %q", u)
	}
	if a, ok := b.Amount("amt", true); !ok || a != 1250 {
		t.Error("Amount")
	}
	if tm, ok := b.Time("t"); !ok || tm.Hour() != 1 || tm.Location().String() != "UTC" {
		t.Errorf("Time = %v", tm)
	}
	if tm, ok := b.Time("d"); !ok || tm.Day() != 2 {
		t.Errorf("date = %v", tm)
	}
	if _, ok := b.String("null", false); ok {
		t.Error("null optional string reported present")
	}
	if err := b.err(); err != nil {
		t.Fatalf("unexpected errors: %v", err)
	}
	b.Int("frac", true)
	b.Int("big", true)
	b.Int("bool", true)
	b.String("n", true)
	b.String("null", true)
	b.UUID4("u1", true)
	b.Amount("amt3", true)
	b.Amount("amt0", true)
	b.Amount("neg", true)
	b.Amount("s", true)
	b.Time("bad")
	b.Enum("s", true, "A", "B", "C")
	b.String("absent", true)
	want := []string{"int_from_float", "int_parsing_size", "int_type", "string_type", "string_type", "uuid_version",
		"decimal_max_places", "greater_than_equal", "greater_than_equal", "float_type", "datetime_parsing", "enum", "missing"}
	got := *b.errs
	if len(got) != len(want) {
		t.Fatalf("errors %+v", got)
	}
	for i := range want {
		if got[i].Type != want[i] {
			t.Errorf("error %d = %+v, want type %s", i, got[i], want[i])
		}
	}
	if got[11].Msg != "Input should be 'A', 'B' or 'C'" {
		t.Errorf("enum msg %q", got[11].Msg)
	}
}

func TestRecoverMiddleware(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := s.withRequestID(s.withLogging(s.withRecover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	}))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"detail":"Internal Server Error"}` {
		t.Fatalf("panic answered %d %q", rec.Code, rec.Body.String())
	}
}

func TestWriteErrorMapping(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cases := []struct {
		err    error
		status int
		body   string
	}{
		{dollr.NotFound("Execution"), 404, `{"detail":"Execution not found"}`},
		{dollr.Errorf(dollr.EUNAUTHORIZED, "nope"), 401, `{"detail":"nope"}`},
		{dollr.Invalid("x", "m", "body", "f"), 422, `{"detail":[{"loc":["body","f"],"msg":"m","type":"x"}]}`},
		{&dollr.Error{Code: dollr.ECONFLICT, Message: "used"}, 422, `{"detail":[{"loc":["body"],"msg":"Value error, used","type":"value_error"}]}`},
		// The stores word some errors without pydantic's prefix or capital.
		{&dollr.Error{Code: dollr.ECONFLICT, Message: "session has already been used", Fields: []dollr.FieldError{
			{Loc: []any{"body", "session_id"}, Msg: "session has already been used", Type: "value_error"},
			{Loc: []any{"body", "currency"}, Msg: "Value error, kept", Type: "value_error"},
			{Loc: []any{"body", "x"}, Msg: "other type", Type: "not_found"}}}, 422,
			`{"detail":[{"loc":["body","session_id"],"msg":"Value error, session has already been used","type":"value_error"},` +
				`{"loc":["body","currency"],"msg":"Value error, kept","type":"value_error"},{"loc":["body","x"],"msg":"other type","type":"not_found"}]}`},
		{dollr.NotFound("execution"), 404, `{"detail":"Execution not found"}`},
		{errBodyEncoding, 400, `{"detail":"There was an error parsing the body"}`},
		{dollr.Errorf(dollr.EINTERNAL, "secret details"), 500, `{"detail":"Internal Server Error"}`},
		{io.ErrUnexpectedEOF, 500, `{"detail":"Internal Server Error"}`},
		{errBodyTooLarge, 413, `{"detail":"Request body too large"}`},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		s.writeError(rec, httptest.NewRequest("GET", "/", nil), c.err)
		if rec.Code != c.status || strings.TrimSpace(rec.Body.String()) != c.body {
			t.Errorf("writeError(%v) = %d %s, want %d %s", c.err, rec.Code, rec.Body.String(), c.status, c.body)
		}
	}
}

// FuzzDecoders runs every accessor over arbitrary bodies: errors, never panics,
// and every error is a well-formed 422 item.
func FuzzDecoders(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":"x","n":1,"items":[{"name":"a","currency":"USD","amount":1}]}`, `{"n":1e999}`,
		`{"n":-0.0,"u":"550e8400-e29b-41d4-a716-446655440000"}`, `{"items":[1,[],{"amount":"1"}]}`, `{"a":"\u0000"}`, "{\"a\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := parseBody(raw)
		if err != nil {
			if _, ok := err.(*dollr.Error); !ok {
				t.Fatalf("non-domain error %T", err)
			}
			return
		}
		for _, name := range []string{"a", "n", "u", "items", "t"} {
			b.String(name, true)
			b.Int(name, false)
			b.Amount(name, false)
			b.UUID4(name, false)
			b.Currency(name, false)
			b.Time(name)
			b.Enum(name, false, "X")
			if l, ok := b.List(name, false, 0, 5); ok {
				for i, v := range l {
					if o, ok := b.Object(name, i, v); ok {
						o.Amount("amount", true)
						o.String("name", true)
					}
				}
			}
		}
		if err := b.err(); err != nil {
			out, jerr := json.Marshal(err.(*dollr.Error).Fields)
			if jerr != nil || !json.Valid(out) {
				t.Fatalf("unmarshalable errors: %v", jerr)
			}
		}
	})
}

func TestStringLengthInCharacters(t *testing.T) {
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{strings.Repeat("x", 2000), true},
		{strings.Repeat("x", 2001), false},
		{strings.Repeat("é", 2000), true},
		{strings.Repeat("é", 2001), false},
		{strings.Repeat("😀", 600), true},
		{strings.Repeat("😀", 2000), true},
		{strings.Repeat("😀", 2001), false},
	} {
		raw, _ := json.Marshal(map[string]string{"s": c.s})
		b, err := parseBody(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := b.String("s", true)
		if ok != c.ok || (!ok && (*b.errs)[0].Type != "string_too_long") {
			t.Errorf("%d characters, %d bytes: ok=%v %+v, want ok=%v", len([]rune(c.s)), len(c.s), ok, *b.errs, c.ok)
		}
	}
}

func TestDecodeBody(t *testing.T) {
	obj := []byte(`{"a":"x"}`)
	for _, ct := range []string{"", "application/json", "APPLICATION/JSON; charset=latin-1", "application/problem+json", "  application/json  "} {
		if _, err := decodeBody(ct, obj); err != nil {
			t.Errorf("Content-Type %q: %v", ct, err)
		}
	}
	for _, ct := range []string{"text/plain", "text/json", "application/x-www-form-urlencoded", "application/json-seq", "application/+jsonx",
		"application/json/json", "application", "json", ";application/json", "application /json"} {
		_, err := decodeBody(ct, obj)
		var de *dollr.Error
		if !errors.As(err, &de) || len(de.Fields) != 1 || de.Fields[0].Type != "model_attributes_type" || len(de.Fields[0].Loc) != 1 || de.Fields[0].Msg != msgObject {
			t.Errorf("Content-Type %q: %v, want model_attributes_type on body", ct, err)
		}
	}
	for _, ct := range []string{"", "text/plain"} {
		var de *dollr.Error
		if _, err := decodeBody(ct, nil); !errors.As(err, &de) || de.Fields[0].Type != "missing" {
			t.Errorf("empty body as %q: %v, want missing", ct, err)
		}
	}
	for _, b := range []string{"\xff", `{"a":"` + "\xc3\x28" + `"}`, "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"x\"}\x80"} {
		if _, err := decodeBody("application/json", []byte(b)); err != errBodyEncoding {
			t.Errorf("body %q: %v, want errBodyEncoding", b, err)
		}
	}
	if b, err := decodeBody("application/json", []byte("\xef\xbb\xbf{\"a\":\"é\"}")); err != nil || b.m["a"] == nil {
		t.Errorf("BOM: %v", err)
	}
	// Python's JSONDecodeError.pos counts characters.
	for _, c := range []struct {
		body string
		pos  int64
	}{{`{"a":"é",}`, 9}, {`{"😀😀":1,}`, 8}, {`{"a":"é"`, 8}, {`["é"]x`, 5}, {"\xef\xbb\xbf\xef\xbb\xbf{}", 0}} {
		_, err := decodeBody("", []byte(c.body))
		var de *dollr.Error
		if !errors.As(err, &de) || de.Fields[0].Type != "json_invalid" || de.Fields[0].Loc[1] != c.pos {
			t.Errorf("body %q: %v, want json_invalid at %d", c.body, err, c.pos)
		}
	}
}

func TestParseDateTime(t *testing.T) {
	utc := func(y, mo, d, h, mi, s, us int) time.Time {
		return time.Date(y, time.Month(mo), d, h, mi, s, us*1000, time.UTC)
	}
	ok := []struct {
		in   string
		want time.Time
	}{
		{"2030-01-02T03:04:05Z", utc(2030, 1, 2, 3, 4, 5, 0)},
		{"2030-01-02T03:04", utc(2030, 1, 2, 3, 4, 0, 0)},
		{"2030-01-02t03:04:05z", utc(2030, 1, 2, 3, 4, 5, 0)},
		{"2030-01-02 03:04:05", utc(2030, 1, 2, 3, 4, 5, 0)},
		{"2030-01-02_03:04Z", utc(2030, 1, 2, 3, 4, 0, 0)},
		{"2030-01-02T03:04:05.5", utc(2030, 1, 2, 3, 4, 5, 500000)},
		{"2030-01-02T03:04:05,123456789+00:00", utc(2030, 1, 2, 3, 4, 5, 123456)},
		{"2030-01-02T03:04:05+02:00", utc(2030, 1, 2, 1, 4, 5, 0)},
		{"2030-01-02T03:04+0200", utc(2030, 1, 2, 1, 4, 0, 0)},
		{"2030-01-02T03:04-23:59", utc(2030, 1, 3, 3, 3, 0, 0)},
		{"2030-01-02T03:04\u221201:00", utc(2030, 1, 2, 4, 4, 0, 0)},
		{"2028-02-29T00:00", utc(2028, 2, 29, 0, 0, 0, 0)},
		{"2030-01-02", utc(2030, 1, 2, 0, 0, 0, 0)},
		{"0001-01-01", utc(1, 1, 1, 0, 0, 0, 0)},
		{"1893492000", utc(2030, 1, 1, 10, 0, 0, 0)},
		{"+1893492000", utc(2030, 1, 1, 10, 0, 0, 0)},
		{"1893492000000", utc(2030, 1, 1, 10, 0, 0, 0)},
		{"1893492000.5", utc(2030, 1, 1, 10, 0, 0, 500000)},
		{"1893492000.5e0", utc(2030, 1, 1, 10, 0, 0, 500000)},
		{"20000000000", utc(2603, 10, 11, 11, 33, 20, 0)},
		{"20000000001", utc(1970, 8, 20, 11, 33, 20, 1000)},
		{"-1", utc(1969, 12, 31, 23, 59, 59, 0)},
		{"0", utc(1970, 1, 1, 0, 0, 0, 0)},
		{"2030", utc(1970, 1, 1, 0, 33, 50, 0)}, // digits are a timestamp, as in pydantic
	}
	for _, c := range ok {
		got, good := parseDateTime(c.in)
		if !good || !got.Equal(c.want) {
			t.Errorf("parseDateTime(%q) = %v, %v; want %v", c.in, got, good, c.want)
		}
	}
	for _, in := range []string{"", "x", "2030-01-02T", "2030-01-02T03", "2030-01-02T3:04", "2030-01-02T03:4", "2030-01-02T03:04:5",
		"2030-01-02T24:00", "2030-01-02T03:60", "2030-01-02T03:04:60", "2030-13-01", "2029-02-29", "2030-00-10", "2030-01-00",
		"0000-01-01", "2030-01-02T03:04:05.", "2030-01-02T03:04:05Zz", "2030-01-02T03:04+24:00", "2030-01-02T03:04+01:60",
		"2030-01-02T03:04+1", "2030-01-02T03:04+01:0", "2030-01-02T03:04 +01:00", "2030-01-02X03:04", "2030/01/02",
		" 2030-01-02", "2030-01-02 ", "1e10", "0x10", "1_000", "--1", "+-1", "-+1", "+-1.5", "1.5e", "1.5e+", "1.2.3", ".", "253402300800000", "-62135596801000", "NaN", "Infinity"} {
		if got, good := parseDateTime(in); good {
			t.Errorf("parseDateTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestIsCanonicalPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/v1/status/source": true, "/v1/status/source/": true, "/v1/x/.y": true, "/v1/x/..y/": true, "/a%2F..%2Fb": true,
		"": false, "v1": false, "//": false, "/v1//x": false, "/v1/./x": false, "/v1/x/.": false, "/v1/x/..": false,
		"/v1/x/../": false, "/./": false, "/v1/x//": false,
	} {
		if got := isCanonicalPath(p); got != want {
			t.Errorf("isCanonicalPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// FuzzParseDateTime: no input panics, and every accepted string is a time
// that the API can render.
func FuzzParseDateTime(f *testing.F) {
	for _, s := range []string{"2030-01-02T03:04:05.123456789+02:00", "2030-01-02t03:04z", "2030-01-02", "1893492000.5", "-20000000001",
		"2030-01-02T03:04\u221201:00", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00+23:59", "1e5", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, ok := parseDateTime(s)
		if !ok {
			return
		}
		if y := tm.UTC().Year(); y < 0 || y > 10000 {
			t.Fatalf("parseDateTime(%q) = %v", s, tm)
		}
		if _, err := timestamp(tm).MarshalJSON(); err != nil {
			t.Fatal(err)
		}
	})
}
