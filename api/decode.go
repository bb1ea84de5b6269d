package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dollr/dollr"
)

// Validation errors follow pydantic v2, which FastAPI (Dollr's server) emits:
// {"loc": [...], "msg": ..., "type": ...} with these types and messages.
const (
	msgMissing      = "Field required"
	msgString       = "Input should be a valid string"
	msgInt          = "Input should be a valid integer"
	msgIntParsing   = "Input should be a valid integer, unable to parse string as an integer"
	msgIntFromFloat = "Input should be a valid integer, got a number with a fractional part"
	msgNumber       = "Input should be a valid number"
	msgList         = "Input should be a valid list"
	msgObject       = "Input should be a valid dictionary or object to extract fields from"
	msgUUID         = "Input should be a valid UUID"
	msgUUIDVersion  = "UUID version 4 expected"
	msgDatetime     = "Input should be a valid datetime"
	msgJSONInvalid  = "JSON decode error"
)

const maxStringLen = 2000

// body is the request body parsed into top-level fields; every accessor
// records a field-precise error instead of failing the whole decode, so one
// 422 reports every problem, as pydantic does.
type body struct {
	obj
	errs *[]dollr.FieldError
}

// obj is one JSON object at a location (["body"], ["body","items",0], ...).
type obj struct {
	loc  []any
	m    map[string]json.RawMessage
	errs *[]dollr.FieldError
}

// readBody reads and parses a JSON object body of at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) (*body, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errBodyTooLarge
	} else if err != nil {
		return nil, dollr.Invalid("value_error", "could not read the request body", "body")
	}
	return parseBody(b)
}

// parseBody parses b as a JSON object; errors are EINVALID with FastAPI's locs.
func parseBody(b []byte) (*body, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, dollr.Invalid("missing", msgMissing, "body")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, dollr.Invalid("json_invalid", msgJSONInvalid, "body", jsonErrorPos(b, se))
		case errors.As(err, &te):
			return nil, dollr.Invalid("model_attributes_type", msgObject, "body")
		default:
			return nil, dollr.Invalid("json_invalid", msgJSONInvalid, "body", 0)
		}
	}
	if m == nil { // the body was JSON null
		return nil, dollr.Invalid("model_attributes_type", msgObject, "body")
	}
	errs := &[]dollr.FieldError{}
	return &body{obj: obj{loc: []any{"body"}, m: m, errs: errs}, errs: errs}, nil
}

// jsonErrorPos is the offset of the offending character, like Python's
// JSONDecodeError.pos (Go reports the offset after it, or the length at EOF).
func jsonErrorPos(b []byte, se *json.SyntaxError) int64 {
	pos := se.Offset
	if pos > 0 && !strings.Contains(se.Error(), "unexpected end") {
		pos--
	}
	return min(pos, int64(len(b)))
}

// err returns the collected validation errors, or nil.
func (b *body) err() error {
	if len(*b.errs) == 0 {
		return nil
	}
	return &dollr.Error{Code: dollr.EINVALID, Message: "validation failed", Fields: *b.errs}
}

func (o obj) at(name any) []any {
	loc := make([]any, len(o.loc), len(o.loc)+1)
	copy(loc, o.loc)
	return append(loc, name)
}

func (o obj) fail(name any, typ, msg string) {
	*o.errs = append(*o.errs, dollr.FieldError{Loc: o.at(name), Msg: msg, Type: typ})
}

// raw returns a field's JSON. A missing required field is an error; a missing
// or null optional field reports ok=false with no error.
func (o obj) raw(name string, required bool) (json.RawMessage, bool) {
	v, ok := o.m[name]
	if !ok {
		if required {
			o.fail(name, "missing", msgMissing)
		}
		return nil, false
	}
	if !required && string(v) == "null" {
		return nil, false
	}
	return v, true
}

// String reads a string field (pydantic strict about type: 55 is not "55").
func (o obj) String(name string, required bool) (string, bool) {
	v, ok := o.raw(name, required)
	if !ok {
		return "", false
	}
	s, ok := o.asString(name, v)
	if ok && len(s) > maxStringLen {
		o.fail(name, "string_too_long", fmt.Sprintf("String should have at most %d characters", maxStringLen))
		return "", false
	}
	return s, ok
}

func (o obj) asString(name any, v json.RawMessage) (string, bool) {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		o.fail(name, "string_type", msgString)
		return "", false
	}
	return s, true
}

// Int reads an integer field. As pydantic's lax mode, it also takes a float
// with no fraction and a string of digits.
func (o obj) Int(name string, required bool) (int64, bool) {
	v, ok := o.raw(name, required)
	if !ok {
		return 0, false
	}
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			o.fail(name, "int_parsing", msgIntParsing)
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			o.fail(name, "int_parsing", msgIntParsing)
			return 0, false
		}
		return n, true
	case isJSONNumber(v):
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, true
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
			o.fail(name, "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size")
			return 0, false
		}
		if f != math.Trunc(f) {
			o.fail(name, "int_from_float", msgIntFromFloat)
			return 0, false
		}
		return int64(f), true
	}
	o.fail(name, "int_type", msgInt)
	return 0, false
}

func isJSONNumber(v json.RawMessage) bool {
	return len(v) > 0 && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'))
}

// Enum reads a string field that must be one of allowed (case-sensitive).
func (o obj) Enum(name string, required bool, allowed ...string) (string, bool) {
	s, ok := o.String(name, required)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	o.fail(name, "enum", "Input should be "+quoteList(allowed))
	return "", false
}

// quoteList renders 'A', 'B' or 'C' as pydantic does.
func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + v + "'"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// Pattern reads a string field that must match re (whose source is shown).
func (o obj) Pattern(name string, required bool, re *regexp.Regexp) (string, bool) {
	s, ok := o.String(name, required)
	if !ok {
		return "", false
	}
	if !re.MatchString(s) {
		o.fail(name, "string_pattern_mismatch", fmt.Sprintf("String should match pattern '%s'", re.String()))
		return "", false
	}
	return s, true
}

var (
	currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)
	phoneRe    = regexp.MustCompile(`^[1-9]\d{7,14}$`)
	uuidRe     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	countryRe  = regexp.MustCompile(`^[A-Z]{2}$`)
	pmRe       = regexp.MustCompile(`^pm_[A-Za-z0-9_]{1,200}$`)
)

// Currency reads an ISO 4217 code.
func (o obj) Currency(name string, required bool) (string, bool) {
	return o.Pattern(name, required, currencyRe)
}

// UUID4 reads a version-4 UUID in its canonical dashed form, lowercased.
func (o obj) UUID4(name string, required bool) (string, bool) {
	s, ok := o.String(name, required)
	if !ok {
		return "", false
	}
	if !uuidRe.MatchString(s) {
		o.fail(name, "uuid_parsing", msgUUID)
		return "", false
	}
	s = strings.ToLower(s)
	if s[14] != '4' || !strings.ContainsRune("89ab", rune(s[19])) {
		o.fail(name, "uuid_version", msgUUIDVersion)
		return "", false
	}
	return s, true
}

// Time reads an optional ISO 8601 date-time (a bare date means midnight UTC;
// no offset means UTC).
func (o obj) Time(name string) (*time.Time, bool) {
	v, ok := o.raw(name, false)
	if !ok {
		return nil, false
	}
	s, ok := o.asString(name, v)
	if !ok {
		return nil, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, true
		}
	}
	o.fail(name, "datetime_parsing", msgDatetime)
	return nil, false
}

// Amount reads a positive money amount (a JSON number; at most two decimals).
func (o obj) Amount(name string, required bool) (dollr.Amount, bool) {
	v, ok := o.raw(name, required)
	if !ok {
		return 0, false
	}
	if !isJSONNumber(v) {
		o.fail(name, "float_type", msgNumber)
		return 0, false
	}
	a, err := dollr.ParseAmount(string(v))
	if err != nil {
		if strings.Contains(err.Error(), "decimals") {
			o.fail(name, "decimal_max_places", "Decimal input should have no more than 2 decimal places")
		} else {
			o.fail(name, "value_error", "Value error, amount is out of range")
		}
		return 0, false
	}
	if a < 1 {
		o.fail(name, "greater_than_equal", "Input should be greater than or equal to 0.01")
		return 0, false
	}
	return a, true
}

// List reads an array field of at most max elements.
func (o obj) List(name string, required bool, minLen, maxLen int) ([]json.RawMessage, bool) {
	v, ok := o.raw(name, required)
	if !ok {
		return nil, false
	}
	var l []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &l) != nil {
		o.fail(name, "list_type", msgList)
		return nil, false
	}
	if len(l) < minLen {
		o.fail(name, "too_short", fmt.Sprintf("List should have at least %d item after validation, not %d", minLen, len(l)))
		return nil, false
	}
	if len(l) > maxLen {
		o.fail(name, "too_long", fmt.Sprintf("List should have at most %d items after validation, not %d", maxLen, len(l)))
		return nil, false
	}
	return l, true
}

// Object returns element v of a list field as an object at loc name/index.
func (o obj) Object(name string, index int, v json.RawMessage) (obj, bool) {
	loc := append(o.at(name), index)
	var m map[string]json.RawMessage
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &m) != nil {
		*o.errs = append(*o.errs, dollr.FieldError{Loc: loc, Msg: msgObject, Type: "model_attributes_type"})
		return obj{}, false
	}
	return obj{loc: loc, m: m, errs: o.errs}, true
}

// query reads URL query parameters with the same error shapes (loc ["query", name]).
type query struct {
	r    *http.Request
	errs []dollr.FieldError
}

func (q *query) fail(name, typ, msg string) {
	q.errs = append(q.errs, dollr.FieldError{Loc: []any{"query", name}, Msg: msg, Type: typ})
}

func (q *query) get(name string) (string, bool) {
	vals, ok := q.r.URL.Query()[name]
	if !ok || len(vals) == 0 {
		q.fail(name, "missing", msgMissing)
		return "", false
	}
	return vals[len(vals)-1], true
}

func (q *query) Enum(name string, allowed ...string) (string, bool) {
	s, ok := q.get(name)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	q.fail(name, "enum", "Input should be "+quoteList(allowed))
	return "", false
}

func (q *query) Int(name string) (int64, bool) {
	s, ok := q.get(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		q.fail(name, "int_parsing", msgIntParsing)
		return 0, false
	}
	return n, true
}

func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return &dollr.Error{Code: dollr.EINVALID, Message: "validation failed", Fields: q.errs}
}

// fieldError is a 422 on one body field, for checks against stored records.
func fieldError(typ, msg string, field ...any) *dollr.Error {
	return dollr.Invalid(typ, msg, append([]any{"body"}, field...)...)
}
