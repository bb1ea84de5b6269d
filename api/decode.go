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
	"unicode/utf8"

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
	return decodeBody(r.Header.Get("Content-Type"), b)
}

// decodeBody decides, as FastAPI does, whether a body is JSON and parses it:
//   - an empty body is missing, whatever its Content-Type;
//   - a Content-Type whose media type is not application/json or
//     application/*+json leaves the body unparsed, and raw bytes are no
//     object: 422 model_attributes_type on ["body"] (no Content-Type at all
//     means JSON);
//   - JSON must be UTF-8 (a leading byte-order mark is skipped, as Python's
//     json.loads does); other bytes are 400 errBodyEncoding.
func decodeBody(contentType string, b []byte) (*body, error) {
	if len(b) == 0 {
		return nil, dollr.Invalid("missing", msgMissing, "body")
	}
	if contentType != "" && !isJSONMediaType(contentType) {
		return nil, dollr.Invalid("model_attributes_type", msgObject, "body")
	}
	b = bytes.TrimPrefix(b, utf8BOM)
	if !utf8.Valid(b) {
		return nil, errBodyEncoding
	}
	return parseBody(b)
}

var utf8BOM = []byte("\xef\xbb\xbf")

// isJSONMediaType reports whether a Content-Type value names JSON the way
// FastAPI decides it (Python's email.message content-type rules): the part
// before any ";", trimmed and lowercased, must be type/subtype with type
// "application" and subtype "json" or "*+json". Anything malformed counts as
// text/plain.
func isJSONMediaType(v string) bool {
	mt, _, _ := strings.Cut(v, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || strings.Contains(sub, "/") || typ != "application" {
		return false
	}
	return sub == "json" || strings.HasSuffix(sub, "+json")
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

// jsonErrorPos is the index of the offending character, like Python's
// JSONDecodeError.pos: counted in characters, not bytes (Go reports the byte
// offset after it, or the length at EOF).
func jsonErrorPos(b []byte, se *json.SyntaxError) int64 {
	pos := se.Offset
	if pos > 0 && !strings.Contains(se.Error(), "unexpected end") {
		pos--
	}
	pos = min(pos, int64(len(b)))
	return int64(utf8.RuneCount(b[:pos]))
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
	// pydantic counts characters (code points), not bytes.
	if ok && len(s) > maxStringLen && utf8.RuneCountInString(s) > maxStringLen {
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

// Time reads an optional date-time as pydantic v2 (lax mode) does: an ISO
// 8601 string (see parseDateTime), a bare date (midnight), or a Unix
// timestamp as a JSON number or a numeric string (see unixTime). A time with
// no offset is taken as UTC. Other JSON types are datetime_type.
func (o obj) Time(name string) (*time.Time, bool) {
	v, ok := o.raw(name, false)
	if !ok {
		return nil, false
	}
	var t time.Time
	switch {
	case len(v) > 0 && v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			o.fail(name, "datetime_parsing", msgDatetime)
			return nil, false
		}
		t, ok = parseDateTime(s)
	case isJSONNumber(v):
		n := string(v)
		t, ok = unixTime(n, strings.ContainsAny(n, ".eE"))
	default:
		o.fail(name, "datetime_type", msgDatetime)
		return nil, false
	}
	if !ok {
		o.fail(name, "datetime_parsing", msgDatetime)
		return nil, false
	}
	t = t.UTC()
	return &t, true
}

// parseDateTime parses a date-time string as pydantic v2's speedate:
// YYYY-MM-DD, a separator (T, t, space or _), HH:MM, optional :SS, optional
// fraction after . or , (digits beyond microseconds are truncated), optional
// offset (Z, z, or +/-/U+2212 HH[:]MM, under 24 h). A bare YYYY-MM-DD is
// midnight; a string of digits (optionally signed, or with a decimal point)
// is a Unix timestamp.
func parseDateTime(s string) (time.Time, bool) {
	if t, ok := parseISODateTime(s); ok {
		return t, true
	}
	if isIntString(s) {
		return unixTime(s, false)
	}
	if isFloatString(s) {
		return unixTime(s, true)
	}
	if len(s) == 10 {
		if y, m, d, ok := parseISODate(s); ok {
			return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

func parseISODate(s string) (y, m, d int, ok bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	y, ok1 := digitsAt(s, 0, 4)
	m, ok2 := digitsAt(s, 5, 2)
	d, ok3 := digitsAt(s, 8, 2)
	// Python's datetime starts at year 1.
	if !ok1 || !ok2 || !ok3 || y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func parseISODateTime(s string) (time.Time, bool) {
	y, mo, d, ok := parseISODate(s)
	if !ok || len(s) < 16 || !strings.ContainsRune("Tt _", rune(s[10])) || s[13] != ':' {
		return time.Time{}, false
	}
	h, ok1 := digitsAt(s, 11, 2)
	mi, ok2 := digitsAt(s, 14, 2)
	if !ok1 || !ok2 || h > 23 || mi > 59 {
		return time.Time{}, false
	}
	pos, sec, micro := 16, 0, 0
	if pos < len(s) && s[pos] == ':' {
		if sec, ok = digitsAt(s, pos+1, 2); !ok || sec > 59 {
			return time.Time{}, false
		}
		pos += 3
		if pos < len(s) && (s[pos] == '.' || s[pos] == ',') {
			pos++
			n := 0
			for ; pos < len(s) && s[pos] >= '0' && s[pos] <= '9'; pos, n = pos+1, n+1 {
				if n < 6 {
					micro = micro*10 + int(s[pos]-'0')
				}
			}
			if n == 0 {
				return time.Time{}, false
			}
			for ; n < 6; n++ {
				micro *= 10
			}
		}
	}
	loc := time.UTC
	if pos < len(s) {
		sign := 1
		switch {
		case s[pos] == 'Z' || s[pos] == 'z':
			pos++
		case s[pos] == '+' || s[pos] == '-' || strings.HasPrefix(s[pos:], "\u2212"):
			if s[pos] == '+' {
				pos++
			} else if s[pos] == '-' {
				sign, pos = -1, pos+1
			} else {
				sign, pos = -1, pos+len("\u2212")
			}
			oh, ok := digitsAt(s, pos, 2)
			if !ok {
				return time.Time{}, false
			}
			pos += 2
			if pos < len(s) && s[pos] == ':' {
				pos++
			}
			om, ok := digitsAt(s, pos, 2)
			if !ok || om > 59 || oh*60+om >= 24*60 {
				return time.Time{}, false
			}
			pos += 2
			loc = time.FixedZone("", sign*(oh*3600+om*60))
		default:
			return time.Time{}, false
		}
	}
	if pos != len(s) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, micro*1000, loc), true
}

// digitsAt reads n ASCII digits of s at i.
func digitsAt(s string, i, n int) (int, bool) {
	if i < 0 || i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m+1), 0, 0, 0, 0, 0, time.UTC).Day()
}

// isIntString: optional sign, then digits (speedate's integer form).
func isIntString(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	return s != "" && len(s) < 20 && strings.Trim(s, "0123456789") == ""
}

// isFloatString: optional sign, digits with a decimal point, optional
// exponent (speedate reads a float only once it meets a '.').
func isFloatString(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	whole, frac, ok := strings.Cut(mant, ".")
	if !ok || whole+frac == "" || strings.Trim(whole+frac, "0123456789") != "" {
		return false
	}
	if hasExp {
		exp = strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-")
		return exp != "" && strings.Trim(exp, "0123456789") == ""
	}
	return true
}

// msWatershed: a Unix timestamp whose absolute value is above it is in
// milliseconds, below or equal in seconds (pydantic's rule).
const msWatershed = 2e10

// unixTime reads a Unix timestamp written as an integer or (isFloat) a float,
// to the microsecond, in UTC; it must fall in years 1-9999 as Python's
// datetime does.
func unixTime(s string, isFloat bool) (time.Time, bool) {
	var t time.Time
	if !isFloat {
		n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		if n > msWatershed || n < -msWatershed {
			t = time.UnixMilli(n)
		} else {
			t = time.Unix(n, 0)
		}
	} else {
		f, err := strconv.ParseFloat(strings.TrimPrefix(s, "+"), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1e15 {
			return time.Time{}, false
		}
		if math.Abs(f) > msWatershed {
			ms := math.Floor(f)
			t = time.UnixMilli(int64(ms)).Add(time.Duration(math.Round((f-ms)*1e3)) * time.Microsecond)
		} else {
			sec := math.Floor(f)
			t = time.Unix(int64(sec), int64(math.Round((f-sec)*1e6))*1000)
		}
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
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
