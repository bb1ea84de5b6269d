package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/jackc/pgx/v5"
)

// This file turns the text form of a column value, as pgoutput sends it,
// into the JSON-typed value PostgreSQL's to_jsonb would produce (see
// dollr.Change). The replication connection uses DateStyle ISO and TimeZone
// UTC, so the text forms below are the only ones to parse.

// render says how a type's values become JSON values.
type render uint8

const (
	renderString      render = iota // text, uuid, date, and anything unknown: as is
	renderInt                       // int2, int4, int8, oid → int64
	renderNumber                    // numeric, float4, float8 → json.Number ("NaN" → string)
	renderBool                      // bool → true/false
	renderJSON                      // json, jsonb → decoded
	renderTimestamptz               // → dollr.FormatTimestamptz
	renderTimestamp                 // "2006-01-02 15:04:05" → "2006-01-02T15:04:05"
	renderArray                     // {a,b} → []any of the element type
)

// pgType is what the decoder knows about one type OID.
type pgType struct {
	name   string // pg_type.typname
	render render
	elem   uint32 // element type of an array
}

// builtinTypes are the types whose OIDs are fixed in every PostgreSQL.
var builtinTypes = map[uint32]pgType{
	16:   {"bool", renderBool, 0},
	17:   {"bytea", renderString, 0},
	18:   {"char", renderString, 0},
	19:   {"name", renderString, 0},
	20:   {"int8", renderInt, 0},
	21:   {"int2", renderInt, 0},
	23:   {"int4", renderInt, 0},
	25:   {"text", renderString, 0},
	26:   {"oid", renderInt, 0},
	114:  {"json", renderJSON, 0},
	700:  {"float4", renderNumber, 0},
	701:  {"float8", renderNumber, 0},
	1042: {"bpchar", renderString, 0},
	1043: {"varchar", renderString, 0},
	1082: {"date", renderString, 0},
	1083: {"time", renderString, 0},
	1114: {"timestamp", renderTimestamp, 0},
	1184: {"timestamptz", renderTimestamptz, 0},
	1186: {"interval", renderString, 0},
	1266: {"timetz", renderString, 0},
	1700: {"numeric", renderNumber, 0},
	2950: {"uuid", renderString, 0},
	3802: {"jsonb", renderJSON, 0},
	1000: {"_bool", renderArray, 16},
	1001: {"_bytea", renderArray, 17},
	1005: {"_int2", renderArray, 21},
	1007: {"_int4", renderArray, 23},
	1009: {"_text", renderArray, 25},
	1014: {"_bpchar", renderArray, 1042},
	1015: {"_varchar", renderArray, 1043},
	1016: {"_int8", renderArray, 20},
	1021: {"_float4", renderArray, 700},
	1022: {"_float8", renderArray, 701},
	1115: {"_timestamp", renderArray, 1114},
	1182: {"_date", renderArray, 1082},
	1185: {"_timestamptz", renderArray, 1184},
	1231: {"_numeric", renderArray, 1700},
	199:  {"_json", renderArray, 114},
	2951: {"_uuid", renderArray, 2950},
	3807: {"_jsonb", renderArray, 3802},
}

// typeLookup finds a type PostgreSQL defined at run time (enums, domains,
// arrays of them) by OID.
type typeLookup func(ctx context.Context, oid uint32) (name string, typtype byte, elem, base uint32, err error)

// querier runs one-row queries (a pool or a connection).
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// typeCache maps type OIDs to pgType, asking the database about OIDs it has
// not seen. OIDs of a type never change while the type exists.
type typeCache struct {
	mu     sync.Mutex
	known  map[uint32]pgType
	lookup typeLookup
}

func newTypeCache(q querier) *typeCache {
	return &typeCache{known: map[uint32]pgType{}, lookup: func(ctx context.Context, oid uint32) (string, byte, uint32, uint32, error) {
		var (
			name        string
			typtype     string
			elem, baset uint32
		)
		err := q.QueryRow(ctx, "SELECT typname, typtype::text, typelem, typbasetype FROM pg_type WHERE oid = $1", oid).
			Scan(&name, &typtype, &elem, &baset)
		if err != nil {
			return "", 0, 0, 0, fmt.Errorf("postgres: type %d: %w", oid, err)
		}
		return name, typtype[0], elem, baset, nil
	}}
}

func (c *typeCache) get(ctx context.Context, oid uint32) (pgType, error) {
	if t, ok := builtinTypes[oid]; ok {
		return t, nil
	}
	c.mu.Lock()
	t, ok := c.known[oid]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := c.resolve(ctx, oid, 0)
	if err != nil {
		return pgType{}, err
	}
	c.mu.Lock()
	c.known[oid] = t
	c.mu.Unlock()
	return t, nil
}

func (c *typeCache) resolve(ctx context.Context, oid uint32, depth int) (pgType, error) {
	if t, ok := builtinTypes[oid]; ok {
		return t, nil
	}
	if depth > 8 {
		return pgType{}, fmt.Errorf("postgres: type %d nests too deep", oid)
	}
	name, typtype, elem, base, err := c.lookup(ctx, oid)
	if err != nil {
		return pgType{}, err
	}
	switch {
	case typtype == 'd' && base != 0:
		// to_jsonb renders a domain as its base type; the name stays the domain's.
		b, err := c.resolve(ctx, base, depth+1)
		if err != nil {
			return pgType{}, err
		}
		return pgType{name: name, render: b.render, elem: b.elem}, nil
	case elem != 0 && strings.HasPrefix(name, "_"):
		return pgType{name: name, render: renderArray, elem: elem}, nil
	}
	return pgType{name: name, render: renderString}, nil
}

// decodeValue renders the text form of a value of type t.
func (c *typeCache) decodeValue(ctx context.Context, t pgType, text string) (any, error) {
	switch t.render {
	case renderInt:
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s value %q: %w", t.name, text, err)
		}
		return n, nil
	case renderNumber:
		if !isJSONNumber(text) {
			// NaN and ±Infinity are not JSON numbers; to_jsonb quotes them.
			return text, nil
		}
		// jsonb holds numbers as numeric, so to_jsonb(1.5e-07::float8) is
		// 0.00000015: write exponents out the same way.
		return json.Number(plainDecimal(text)), nil
	case renderBool:
		switch text {
		case "t":
			return true, nil
		case "f":
			return false, nil
		}
		return nil, fmt.Errorf("bool value %q", text)
	case renderJSON:
		return decodeJSON(text)
	case renderTimestamptz:
		return renderTimestamptzText(text), nil
	case renderTimestamp:
		if len(text) > 10 && text[10] == ' ' {
			return text[:10] + "T" + text[11:], nil
		}
		return text, nil
	case renderArray:
		elem, err := c.get(ctx, t.elem)
		if err != nil {
			return nil, err
		}
		return c.decodeArray(ctx, elem, text)
	}
	return text, nil
}

func decodeJSON(text string) (any, error) {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("json value: %w", err)
	}
	if d.More() {
		return nil, errors.New("json value: trailing data")
	}
	return plainNumbers(v), nil
}

// plainNumbers writes out the exponents of the numbers in a decoded JSON
// value, as converting json to jsonb does.
func plainNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		return json.Number(plainDecimal(string(v)))
	case []any:
		for i := range v {
			v[i] = plainNumbers(v[i])
		}
	case map[string]any:
		for k, x := range v {
			v[k] = plainNumbers(x)
		}
	}
	return v
}

// plainDecimal rewrites a number with an exponent (1.5e-07) in positional
// notation with numeric's scale (0.00000015). Exponents beyond ±1000 are
// left alone rather than written out.
func plainDecimal(s string) string {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return s
	}
	exp, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
	if err != nil || exp > 1000 || exp < -1000 {
		return s
	}
	mant, sign := s[:i], ""
	if strings.HasPrefix(mant, "-") {
		mant, sign = mant[1:], "-"
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := intPart + frac
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return s
	}
	point := len(intPart) + exp // where the decimal point falls in digits
	scale := max(0, len(frac)-exp)
	var whole, fraction string
	switch {
	case point <= 0:
		whole, fraction = "0", strings.Repeat("0", -point)+digits
	case point >= len(digits):
		whole = digits + strings.Repeat("0", point-len(digits))
	default:
		whole, fraction = digits[:point], digits[point:]
	}
	whole = strings.TrimLeft(whole, "0")
	if whole == "" {
		whole = "0"
	}
	if len(fraction) < scale {
		fraction += strings.Repeat("0", scale-len(fraction))
	}
	fraction = fraction[:scale]
	if fraction == "" {
		return sign + whole
	}
	return sign + whole + "." + fraction
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil || d.More() {
		return false
	}
	n, ok := x.(json.Number)
	return ok && string(n) == s
}

// timestamptz text forms with DateStyle ISO in a UTC session:
// "2024-01-02 03:04:05.123456+00" (fraction optional). Other offsets are
// accepted for robustness.
var timestamptzLayouts = []string{
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07:00:00",
}

// renderTimestamptzText renders a timestamptz as to_jsonb does in a UTC
// session. Values Go cannot hold (infinity, BC dates) pass through as text.
func renderTimestamptzText(text string) string {
	for _, layout := range timestamptzLayouts {
		if t, err := time.Parse(layout, text); err == nil {
			return dollr.FormatTimestamptz(t)
		}
	}
	return text
}

// decodeArray parses an array literal ({1,2,NULL}, {{"a b",c}}, with an
// optional [lo:hi]= dimension prefix) and renders each element as elem.
func (c *typeCache) decodeArray(ctx context.Context, elem pgType, text string) (any, error) {
	if strings.HasPrefix(text, "[") {
		i := strings.Index(text, "=")
		if i < 0 {
			return nil, fmt.Errorf("array %q: dimensions without =", text)
		}
		text = text[i+1:]
	}
	p := arrayParser{s: text}
	v, err := p.parse()
	if err != nil {
		return nil, err
	}
	if p.i != len(p.s) {
		return nil, fmt.Errorf("array %q: trailing data", text)
	}
	return c.renderElems(ctx, elem, v)
}

func (c *typeCache) renderElems(ctx context.Context, elem pgType, items []arrayItem) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		var err error
		switch {
		case it.sub != nil:
			out[i], err = c.renderElems(ctx, elem, it.sub)
		case it.null:
			out[i] = nil
		default:
			out[i], err = c.decodeValue(ctx, elem, it.text)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// arrayItem is one element of an array literal: a nested array, NULL, or text.
type arrayItem struct {
	sub  []arrayItem
	null bool
	text string
}

type arrayParser struct {
	s     string
	i     int
	depth int
}

func (p *arrayParser) parse() ([]arrayItem, error) {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, fmt.Errorf("array %q: want {", p.s)
	}
	p.depth++
	if p.depth > 6 {
		return nil, fmt.Errorf("array %q: too many dimensions", p.s)
	}
	defer func() { p.depth-- }()
	p.i++
	items := []arrayItem{}
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return items, nil
	}
	for {
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("array %q: unterminated", p.s)
		}
		switch p.s[p.i] {
		case '{':
			sub, err := p.parse()
			if err != nil {
				return nil, err
			}
			if sub == nil {
				sub = []arrayItem{}
			}
			items = append(items, arrayItem{sub: sub})
		case '"':
			var b bytes.Buffer
			p.i++
			for {
				if p.i >= len(p.s) {
					return nil, fmt.Errorf("array %q: unterminated quote", p.s)
				}
				ch := p.s[p.i]
				if ch == '\\' && p.i+1 < len(p.s) {
					b.WriteByte(p.s[p.i+1])
					p.i += 2
					continue
				}
				p.i++
				if ch == '"' {
					break
				}
				b.WriteByte(ch)
			}
			items = append(items, arrayItem{text: b.String()})
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '}' {
				p.i++
			}
			word := strings.TrimSpace(p.s[start:p.i])
			if word == "" {
				return nil, fmt.Errorf("array %q: empty element", p.s)
			}
			items = append(items, arrayItem{text: word, null: strings.EqualFold(word, "NULL")})
		}
		if p.i >= len(p.s) {
			return nil, fmt.Errorf("array %q: unterminated", p.s)
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return items, nil
		default:
			return nil, fmt.Errorf("array %q: unexpected %q at %d", p.s, p.s[p.i], p.i)
		}
	}
}
