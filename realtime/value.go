package realtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// kind is how values of a column compare: filter values and row values are
// both cast to the column's type before comparing, as the real server casts
// both sides to the column type in SQL (realtime-protocol.md §8).
type kind uint8

const (
	kindText kind = iota // text, varchar, bpchar, name and any type we do not know
	kindCIText
	kindInt
	kindFloat
	kindNumeric
	kindBool
	kindUUID
	kindTimestamptz
	kindTimestamp
	kindDate
	kindJSON
)

// columnKind maps a pg_type.typname to its comparison kind.
func columnKind(typname string) kind {
	switch typname {
	case "int2", "int4", "int8", "oid", "smallint", "integer", "bigint", "serial", "bigserial":
		return kindInt
	case "float4", "float8", "real", "double precision":
		return kindFloat
	case "numeric", "decimal", "money":
		return kindNumeric
	case "bool", "boolean":
		return kindBool
	case "uuid":
		return kindUUID
	case "timestamptz":
		return kindTimestamptz
	case "timestamp":
		return kindTimestamp
	case "date":
		return kindDate
	case "json", "jsonb":
		return kindJSON
	case "citext":
		return kindCIText
	}
	return kindText
}

// pgTypeName renders a typname the way regtype prints it in PostgreSQL errors.
func pgTypeName(typname string) string {
	switch typname {
	case "int2":
		return "smallint"
	case "int4":
		return "integer"
	case "int8":
		return "bigint"
	case "float4":
		return "real"
	case "float8":
		return "double precision"
	case "bool":
		return "boolean"
	case "timestamptz":
		return "timestamp with time zone"
	case "timestamp":
		return "timestamp without time zone"
	case "varchar":
		return "character varying"
	case "bpchar":
		return "character"
	}
	return typname
}

// value is a non-null value cast to a column kind. Integers, booleans (0/1),
// timestamps (µs since the epoch) and dates (days) use i; floats use f;
// text, uuid (canonical), numeric (canonical decimal) and JSON (canonical) use s.
type value struct {
	i int64
	f float64
	s string
}

// ikey is a value as an index key: one comparable struct, no allocation for integers.
type ikey struct {
	i int64
	s string
}

func (v value) key(k kind) ikey {
	switch k {
	case kindFloat:
		if v.f == 0 { // -0 equals 0
			return ikey{}
		}
		return ikey{i: int64(math.Float64bits(v.f))}
	case kindText, kindUUID, kindNumeric, kindJSON:
		return ikey{s: v.s}
	case kindCIText:
		return ikey{s: strings.ToLower(v.s)}
	}
	return ikey{i: v.i}
}

// text renders a value as PostgreSQL's text output would, for LIKE and regex matching.
func (v value) text(k kind) string {
	switch k {
	case kindInt:
		return strconv.FormatInt(v.i, 10)
	case kindFloat:
		return strconv.FormatFloat(v.f, 'g', -1, 64)
	case kindBool:
		if v.i != 0 {
			return "true"
		}
		return "false"
	}
	return v.s
}

// compare orders two values of one kind: -1, 0, +1.
func compare(k kind, a, b value) int {
	switch k {
	case kindInt, kindBool, kindTimestamptz, kindTimestamp, kindDate:
		return cmpInt(a.i, b.i)
	case kindFloat:
		switch {
		case a.f < b.f:
			return -1
		case a.f > b.f:
			return 1
		case a.f == b.f:
			return 0
		case math.IsNaN(a.f) && math.IsNaN(b.f): // PostgreSQL: NaN equals NaN and sorts last
			return 0
		case math.IsNaN(a.f):
			return 1
		}
		return -1
	case kindNumeric:
		return cmpDecimal(a.s, b.s)
	case kindCIText:
		return strings.Compare(strings.ToLower(a.s), strings.ToLower(b.s))
	}
	return strings.Compare(a.s, b.s)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// castError is PostgreSQL's error for a literal that does not cast to the column type.
type castError struct {
	sqlstate, name string
	msg            string
}

func (e *castError) Error() string {
	return fmt.Sprintf("ERROR %s (%s) %s", e.sqlstate, e.name, e.msg)
}

func invalidInput(typname, s string) error {
	name, state := "invalid_text_representation", "22P02"
	switch columnKind(typname) {
	case kindTimestamptz, kindTimestamp, kindDate:
		name, state = "invalid_datetime_format", "22007"
	}
	return &castError{sqlstate: state, name: name,
		msg: fmt.Sprintf("invalid input syntax for type %s: %q", pgTypeName(typname), s)}
}

// parseText casts filter text to a column type, as 'text'::type would.
func parseText(typname string, k kind, s string) (value, error) {
	switch k {
	case kindInt:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return value{}, invalidInput(typname, s)
		}
		if !intFits(typname, i) {
			return value{}, &castError{sqlstate: "22003", name: "numeric_value_out_of_range",
				msg: fmt.Sprintf("value %q is out of range for type %s", s, pgTypeName(typname))}
		}
		return value{i: i}, nil
	case kindFloat:
		f, err := parsePGFloat(s)
		if err != nil {
			return value{}, invalidInput(typname, s)
		}
		return value{f: f}, nil
	case kindNumeric:
		d, ok := canonicalDecimal(strings.TrimSpace(s))
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return value{s: d}, nil
	case kindBool:
		b, ok := parsePGBool(s)
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return boolValue(b), nil
	case kindUUID:
		u, ok := canonicalUUID(s)
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return value{s: u}, nil
	case kindTimestamptz, kindTimestamp:
		t, ok := parseTimestamp(s, k == kindTimestamptz)
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return value{i: t}, nil
	case kindDate:
		d, ok := parseDate(s)
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return value{i: d}, nil
	case kindJSON:
		c, ok := canonicalJSON([]byte(s))
		if !ok {
			return value{}, invalidInput(typname, s)
		}
		return value{s: c}, nil
	}
	return value{s: s}, nil
}

func intFits(typname string, i int64) bool {
	switch typname {
	case "int2", "smallint":
		return i >= math.MinInt16 && i <= math.MaxInt16
	case "int4", "integer", "serial":
		return i >= math.MinInt32 && i <= math.MaxInt32
	case "oid":
		return i >= 0 && i <= math.MaxUint32
	}
	return true
}

func boolValue(b bool) value {
	if b {
		return value{i: 1}
	}
	return value{}
}

// rowValue casts a row value (JSON-typed, see dollr.Change) to a column kind.
// ok is false for NULL and for values that do not cast, which then compare as NULL.
func rowValue(k kind, v any) (value, bool) {
	switch x := v.(type) {
	case nil:
		return value{}, false
	case string:
		val, err := parseText("", k, x)
		return val, err == nil
	case json.Number:
		switch k {
		case kindInt:
			if i, err := x.Int64(); err == nil {
				return value{i: i}, true
			}
			f, err := x.Float64()
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<63 {
				return value{}, false
			}
			return value{i: int64(f)}, true
		case kindText, kindCIText:
			return value{s: string(x)}, true
		}
		val, err := parseText("", k, string(x))
		return val, err == nil
	case int64:
		return intValue(k, x)
	case int:
		return intValue(k, int64(x))
	case int32:
		return intValue(k, int64(x))
	case uint32:
		return intValue(k, int64(x))
	case float64:
		return floatValue(k, x)
	case float32:
		return floatValue(k, float64(x))
	case bool:
		switch k {
		case kindBool:
			return boolValue(x), true
		case kindText, kindCIText:
			return value{s: strconv.FormatBool(x)}, true
		case kindJSON:
			return value{s: strconv.FormatBool(x)}, true
		}
		return value{}, false
	case time.Time:
		switch k {
		case kindTimestamptz, kindTimestamp:
			return value{i: x.UnixMicro()}, true
		case kindDate:
			y, m, d := x.Date()
			return value{i: time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400}, true
		}
		return rowValue(k, x.UTC().Format(time.RFC3339Nano))
	}
	if k == kindJSON || k == kindText || k == kindCIText {
		b, err := json.Marshal(v)
		if err != nil {
			return value{}, false
		}
		if k == kindJSON {
			c, ok := canonicalJSON(b)
			return value{s: c}, ok
		}
		return value{s: string(b)}, true
	}
	return value{}, false
}

func intValue(k kind, i int64) (value, bool) {
	switch k {
	case kindInt, kindBool:
		return value{i: i}, true
	case kindFloat:
		return value{f: float64(i)}, true
	case kindNumeric, kindText, kindCIText, kindJSON:
		return value{s: strconv.FormatInt(i, 10)}, true
	}
	return value{}, false
}

func floatValue(k kind, f float64) (value, bool) {
	switch k {
	case kindFloat:
		return value{f: f}, true
	case kindInt:
		if f != math.Trunc(f) || math.Abs(f) > 1<<63 {
			return value{}, false
		}
		return value{i: int64(f)}, true
	case kindNumeric:
		d, ok := canonicalDecimal(strconv.FormatFloat(f, 'f', -1, 64))
		return value{s: d}, ok
	case kindText, kindCIText, kindJSON:
		return value{s: strconv.FormatFloat(f, 'g', -1, 64)}, true
	}
	return value{}, false
}

func parsePGBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "t", "true", "y", "yes", "on", "1", "tr", "tru", "ye":
		return true, true
	case "f", "false", "n", "no", "off", "0", "fa", "fal", "fals":
		return false, true
	}
	return false, false
}

func parsePGFloat(s string) (float64, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "nan":
		return math.NaN(), nil
	case "infinity", "+infinity", "inf", "+inf":
		return math.Inf(1), nil
	case "-infinity", "-inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(t, 64)
}

// canonicalUUID accepts the spellings PostgreSQL accepts (any case, optional
// hyphens between 4-digit groups, optional braces) and returns the lower-case hyphenated form.
func canonicalUUID(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '{' && s[len(s)-1] == '}' {
		s = s[1 : len(s)-1]
	}
	var hex [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case c == '-' && n > 0 && n%4 == 0 && i+1 < len(s) && s[i+1] != '-':
			continue
		default:
			return "", false
		}
		if n == 32 {
			return "", false
		}
		hex[n] = c
		n++
	}
	if n != 32 {
		return "", false
	}
	out := make([]byte, 0, 36)
	out = append(out, hex[0:8]...)
	out = append(out, '-')
	out = append(out, hex[8:12]...)
	out = append(out, '-')
	out = append(out, hex[12:16]...)
	out = append(out, '-')
	out = append(out, hex[16:20]...)
	out = append(out, '-')
	out = append(out, hex[20:32]...)
	return string(out), true
}

// canonicalDecimal normalises a decimal literal: no leading zeros, no trailing
// fraction zeros, "-0" is "0". Exponents are expanded. It refuses NaN and infinities.
func canonicalDecimal(s string) (string, bool) {
	if s == "" || len(s) > 1100 {
		return "", false
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1000 || e < -1000 {
			return "", false
		}
		mant, exp = s[:i], e
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole == "" && frac == "" {
		return "", false
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", false
			}
		}
	}
	digits := whole + frac
	point := len(whole) + exp // position of the decimal point in digits
	for point < 0 {
		digits = "0" + digits
		point++
	}
	for point > len(digits) {
		digits += "0"
	}
	w := strings.TrimLeft(digits[:point], "0")
	f := strings.TrimRight(digits[point:], "0")
	if w == "" {
		w = "0"
	}
	out := w
	if f != "" {
		out += "." + f
	}
	if neg && out != "0" {
		out = "-" + out
	}
	return out, true
}

// cmpDecimal compares two canonical decimals.
func cmpDecimal(a, b string) int {
	an, bn := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	if an != bn {
		if an {
			return -1
		}
		return 1
	}
	if an {
		return -cmpAbsDecimal(a[1:], b[1:])
	}
	return cmpAbsDecimal(a, b)
}

func cmpAbsDecimal(a, b string) int {
	aw, af, _ := strings.Cut(a, ".")
	bw, bf, _ := strings.Cut(b, ".")
	if len(aw) != len(bw) {
		return cmpInt(int64(len(aw)), int64(len(bw)))
	}
	if c := strings.Compare(aw, bw); c != 0 {
		return c
	}
	return strings.Compare(af, bf) // fractions without trailing zeros compare lexically
}

// Timestamp layouts PostgreSQL prints or commonly accepts.
var timestampLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTimestamp returns microseconds since the epoch. Without a zone the time
// is taken as UTC (the server's sessions run in UTC). For a timestamp without
// time zone a given offset is ignored, as PostgreSQL does.
func parseTimestamp(s string, withZone bool) (int64, bool) {
	s = strings.TrimSpace(s)
	for _, layout := range timestampLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if !withZone {
			y, mo, d := t.Date()
			h, mi, sec := t.Clock()
			t = time.Date(y, mo, d, h, mi, sec, t.Nanosecond(), time.UTC)
		}
		return t.Truncate(time.Microsecond).UnixMicro(), true
	}
	return 0, false
}

func parseDate(s string) (int64, bool) {
	t, err := time.Parse("2006-01-02", strings.TrimSpace(s))
	if err != nil {
		return 0, false
	}
	return t.Unix() / 86400, true
}

// canonicalJSON re-encodes a JSON document with sorted object keys, so equal
// documents compare equal whatever their spacing and key order.
func canonicalJSON(b []byte) (string, bool) {
	if !json.Valid(b) {
		return "", false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "", false
	}
	out, err := json.Marshal(v)
	if err != nil {
		return "", false
	}
	return string(out), true
}
