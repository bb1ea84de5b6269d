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
		{&dollr.Error{Code: dollr.ECONFLICT, Message: "used"}, 422, `{"detail":[{"loc":["body"],"msg":"used","type":"value_error"}]}`},
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
