package realtime

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The filter grammar of realtime-protocol.md §8: `column=[not.]op.value`,
// segments joined by top-level commas (AND), values optionally "quoted".

type filterOp uint8

const (
	opEq filterOp = iota
	opNeq
	opLt
	opLte
	opGt
	opGte
	opIn
	opLike
	opILike
	opIs
	opMatch
	opIMatch
	opIsDistinct
)

var filterOps = map[string]filterOp{
	"eq": opEq, "neq": opNeq, "lt": opLt, "lte": opLte, "gt": opGt, "gte": opGte, "in": opIn,
	"like": opLike, "ilike": opILike, "is": opIs, "match": opMatch, "imatch": opIMatch, "isdistinct": opIsDistinct,
}

// maxInValues is the real server's cap on an `in` list.
const maxInValues = 100

// maxFilterLen bounds the filter text we parse.
const maxFilterLen = 64 << 10

// rawCondition is one parsed segment before its column's type is known.
type rawCondition struct {
	column string
	op     string
	value  string // unquoted; for `in`, a PostgreSQL array literal "{a,b}"
	negate bool
}

// filterError is a filter the parser refuses. Its message is the real server's
// text after "Error parsing `filter` params: ".
type filterError struct{ Reason string }

func (e *filterError) Error() string { return "Error parsing `filter` params: " + e.Reason }

// parseFilter parses a postgres_changes filter. An empty or blank filter has
// no conditions. It never panics.
func parseFilter(s string) ([]rawCondition, error) {
	if len(s) > maxFilterLen {
		return nil, &filterError{Reason: "filter is too long"}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	segs := splitTopLevel(s)
	out := make([]rawCondition, 0, len(segs))
	for _, seg := range segs {
		c, err := parseSegment(seg)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// splitTopLevel splits at commas outside parentheses and outside "quotes"; a
// quote opens a quoted value only after '.', '(' or ',' (as the real server does).
func splitTopLevel(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	var prev byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\':
			i++ // the escaped byte is part of the value
			if i < len(s) {
				prev = s[i]
			}
			continue
		case quoted && c == '"':
			quoted = false
		case quoted:
		case c == '"' && (prev == '.' || prev == '(' || prev == ','):
			quoted = true
		case c == '(':
			depth++
		case c == ')':
			depth = max(0, depth-1)
		case c == ',' && depth == 0:
			out = append(out, s[start:i])
			start = i + 1
			prev = 0
			continue
		}
		prev = c
	}
	return append(out, s[start:])
}

func parseSegment(seg string) (rawCondition, error) {
	t := strings.TrimSpace(seg)
	if t == "" {
		return rawCondition{}, &filterError{Reason: "filter must not contain empty segments (check for extra commas)"}
	}
	col, rest, ok := strings.Cut(t, "=")
	if !ok {
		return rawCondition{}, &filterError{Reason: inspectList(t)}
	}
	negate := false
	if r, ok := strings.CutPrefix(rest, "not."); ok {
		negate, rest = true, r
	}
	op, val, ok := strings.Cut(rest, ".")
	if !ok {
		return rawCondition{}, &filterError{Reason: inspectList(rest)}
	}
	if _, known := filterOps[op]; !known {
		return rawCondition{}, &filterError{Reason: inspectList(op, val)}
	}
	if op == "in" {
		if len(val) < 2 || val[0] != '(' || val[len(val)-1] != ')' {
			return rawCondition{}, &filterError{Reason: "`in` filter value must be wrapped by parentheses"}
		}
		val = "{" + val[1:len(val)-1] + "}"
	} else {
		val = unquoteValue(val)
	}
	return rawCondition{column: col, op: op, value: val, negate: negate}, nil
}

// unquoteValue removes PostgREST-style quotes ("a\"b" → a"b); a value that is
// not one complete quoted string is kept verbatim.
func unquoteValue(v string) string {
	if len(v) < 2 || v[0] != '"' {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 >= len(v) {
				return v
			}
			i++
			b.WriteByte(v[i])
		case '"':
			if i != len(v)-1 {
				return v
			}
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return v
}

// inspectList renders strings as Elixir's inspect renders a list of binaries,
// which is how the real server reports an unparsable segment.
func inspectList(items ...string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(s))
	}
	b.WriteByte(']')
	return b.String()
}

// condition is a rawCondition compiled against a table's column.
type condition struct {
	col    int // position in the table's columns
	kind   kind
	op     filterOp
	negate bool
	val    value
	list   []value // `in` values that are not NULL
	nulls  bool    // the `in` list holds a NULL
	is     string  // `is` keyword: null, true, false, unknown
	re     *regexp.Regexp
}

// raiseError is a PostgreSQL `raise exception`, as the subscription trigger raises them.
func raiseError(format string, args ...any) error {
	return &castError{sqlstate: "P0001", name: "raise_exception", msg: fmt.Sprintf(format, args...)}
}

// compileConditions checks each condition against t's columns and casts its value.
func compileConditions(t *table, raws []rawCondition) ([]condition, error) {
	out := make([]condition, 0, len(raws))
	for _, r := range raws {
		c, err := compileCondition(t, r)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func compileCondition(t *table, r rawCondition) (condition, error) {
	pos, ok := t.colIndex[r.column]
	if !ok {
		return condition{}, raiseError("invalid column for filter %s", r.column)
	}
	col := t.cols[pos]
	c := condition{col: pos, kind: col.kind, op: filterOps[r.op], negate: r.negate}
	switch c.op {
	case opIn:
		elems, nulls, err := parseArrayLiteral(r.value)
		if err != nil {
			return condition{}, err
		}
		if len(elems)+nulls > maxInValues {
			return condition{}, raiseError("too many values for `in` filter. Maximum %d", maxInValues)
		}
		c.nulls = nulls > 0
		for _, e := range elems {
			v, err := parseText(col.typ, col.kind, e)
			if err != nil {
				return condition{}, err
			}
			c.list = append(c.list, v)
		}
	case opIs:
		switch r.value {
		case "null", "true", "false", "unknown":
		default:
			return condition{}, raiseError("invalid value for is filter: must be null, true, false, or unknown")
		}
		if r.value != "null" && col.kind != kindBool {
			return condition{}, raiseError("is %s filter requires a boolean column, got %s", r.value, pgTypeName(col.typ))
		}
		c.is = r.value
	case opLike, opILike:
		if col.kind != kindText && col.kind != kindCIText {
			return condition{}, raiseError("operator %s requires a text-compatible column type, got %s", r.op, pgTypeName(col.typ))
		}
		re, err := likeRegexp(r.value, c.op == opILike || col.kind == kindCIText)
		if err != nil {
			return condition{}, err
		}
		c.re = re
	case opMatch, opIMatch:
		if col.kind != kindText && col.kind != kindCIText {
			return condition{}, raiseError("operator %s requires a text-compatible column type, got %s", r.op, pgTypeName(col.typ))
		}
		expr := r.value
		if c.op == opIMatch || col.kind == kindCIText {
			expr = "(?i)" + expr
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return condition{}, raiseError("invalid regular expression for %s filter: %v", r.op, err)
		}
		c.re = re
	default:
		v, err := parseText(col.typ, col.kind, r.value)
		if err != nil {
			return condition{}, err
		}
		c.val = v
	}
	return c, nil
}

// likeRegexp translates a LIKE pattern (% any run, _ one character, \ escapes) to an anchored regexp.
func likeRegexp(pattern string, fold bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)")
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteByte('^')
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '%':
			b.WriteString(".*")
		case '_':
			b.WriteByte('.')
		case '\\':
			if i+1 >= len(pattern) {
				return nil, &castError{sqlstate: "22025", name: "invalid_escape_sequence", msg: "LIKE pattern must not end with escape character"}
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteByte('$')
	return regexp.Compile(b.String())
}

var errMalformedArray = errors.New("malformed array literal")

// parseArrayLiteral parses a one-dimensional PostgreSQL array literal {a,"b,c",NULL}.
// It returns the non-NULL elements and how many NULLs there were.
func parseArrayLiteral(s string) ([]string, int, error) {
	bad := &castError{sqlstate: "22P02", name: "invalid_text_representation", msg: fmt.Sprintf("malformed array literal: %q", s)}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, 0, bad
	}
	body := s[1 : len(s)-1]
	if strings.TrimSpace(body) == "" {
		return nil, 0, nil
	}
	var elems []string
	nulls := 0
	i := 0
	for {
		for i < len(body) && isArraySpace(body[i]) {
			i++
		}
		var b strings.Builder
		quoted, nonEmpty := false, false
		if i < len(body) && body[i] == '"' {
			quoted = true
			i++
			closed := false
			for i < len(body) {
				c := body[i]
				if c == '\\' && i+1 < len(body) {
					b.WriteByte(body[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, 0, bad
			}
			for i < len(body) && isArraySpace(body[i]) {
				i++
			}
		} else {
			end := 0 // length of b up to its last non-space byte
			for i < len(body) && body[i] != ',' {
				c := body[i]
				if c == '{' || c == '}' || c == '"' {
					return nil, 0, bad
				}
				if c == '\\' && i+1 < len(body) {
					b.WriteByte(body[i+1])
					i += 2
					end = b.Len()
					nonEmpty = true
					continue
				}
				b.WriteByte(c)
				if !isArraySpace(c) {
					end = b.Len()
					nonEmpty = true
				}
				i++
			}
			str := b.String()[:end]
			b.Reset()
			b.WriteString(str)
		}
		if !quoted && !nonEmpty {
			return nil, 0, bad
		}
		if !quoted && strings.EqualFold(b.String(), "null") {
			nulls++
		} else {
			elems = append(elems, b.String())
		}
		if len(elems)+nulls > maxInValues*10 {
			return nil, 0, raiseError("too many values for `in` filter. Maximum %d", maxInValues)
		}
		if i >= len(body) {
			break
		}
		if body[i] != ',' {
			return nil, 0, bad
		}
		i++
	}
	return elems, nulls, nil
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// truth is SQL's three-valued logic.
type truth uint8

const (
	tFalse truth = iota
	tTrue
	tUnknown
)

func truthOf(b bool) truth {
	if b {
		return tTrue
	}
	return tFalse
}

func (t truth) not() truth {
	switch t {
	case tTrue:
		return tFalse
	case tFalse:
		return tTrue
	}
	return tUnknown
}

// eval evaluates the condition on a column value; null says the value is SQL NULL.
func (c *condition) eval(v value, null bool) truth {
	var t truth
	switch c.op {
	case opIs:
		switch c.is {
		case "null", "unknown":
			t = truthOf(null)
		case "true":
			t = truthOf(!null && v.i != 0)
		case "false":
			t = truthOf(!null && v.i == 0)
		}
	case opIsDistinct:
		t = truthOf(null || compare(c.kind, v, c.val) != 0)
	default:
		if null {
			return tUnknown
		}
		t = c.evalValue(v)
	}
	if c.negate {
		return t.not()
	}
	return t
}

func (c *condition) evalValue(v value) truth {
	switch c.op {
	case opEq:
		return truthOf(compare(c.kind, v, c.val) == 0)
	case opNeq:
		return truthOf(compare(c.kind, v, c.val) != 0)
	case opLt:
		return truthOf(compare(c.kind, v, c.val) < 0)
	case opLte:
		return truthOf(compare(c.kind, v, c.val) <= 0)
	case opGt:
		return truthOf(compare(c.kind, v, c.val) > 0)
	case opGte:
		return truthOf(compare(c.kind, v, c.val) >= 0)
	case opIn:
		for _, e := range c.list {
			if compare(c.kind, v, e) == 0 {
				return tTrue
			}
		}
		if c.nulls {
			return tUnknown
		}
		return tFalse
	case opLike, opILike, opMatch, opIMatch:
		return truthOf(c.re.MatchString(v.text(c.kind)))
	}
	return tFalse
}

// indexKeys returns the equality keys a subscription with this condition can
// be indexed under: one for `eq`, one per value for `in`; ok is false otherwise.
func (c *condition) indexKeys() ([]ikey, bool) {
	if c.negate {
		return nil, false
	}
	switch c.op {
	case opEq:
		return []ikey{c.val.key(c.kind)}, true
	case opIn:
		if len(c.list) == 0 {
			return nil, false
		}
		keys := make([]ikey, 0, len(c.list))
		seen := make(map[ikey]bool, len(c.list))
		for _, v := range c.list {
			k := v.key(c.kind)
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		return keys, true
	}
	return nil, false
}

// describe renders conditions as the real server logs its filter tuples:
// [{"col", "op", "value", negate}].
func describeConditions(raws []rawCondition) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, r := range raws {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{%s, %s, %s, %t}", strconv.Quote(r.column), strconv.Quote(r.op), strconv.Quote(r.value), r.negate)
	}
	b.WriteByte(']')
	return b.String()
}
