package realtime

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Client frames, join payloads and token segments are read with fastjson:
// encoding/json cost a join ~25 µs of decoding (profiled in
// docs/benchmarks.md), fastjson about a tenth. Values point into the parser's
// own copy of the input, so they must not be used after the parser goes back
// to the pool: everything kept is copied out first.
var parsers fastjson.ParserPool

// parseJSON parses b after checking it as strictly as encoding/json checks
// syntax: fastjson's parser alone accepts unknown escape sequences, and its
// validator control characters inside strings.
func parseJSON(p *fastjson.Parser, b []byte) (*fastjson.Value, error) {
	if err := fastjson.ValidateBytes(b); err != nil {
		return nil, err
	}
	if controlInString(b) {
		return nil, errControlChar
	}
	return p.ParseBytes(b)
}

var errControlChar = errors.New("control character in string")

// controlInString reports a byte below 0x20 inside a string of b, which JSON
// forbids (outside strings only whitespace can be one, and the validator
// checks that).
func controlInString(b []byte) bool {
	if !hasControl(b) { // the usual case, compact JSON: skip the byte loop
		return false
	}
	in, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case c < 0x20:
			if in {
				return true
			}
		case !in:
			in = c == '"'
		case c == '\\':
			escaped = true
		case c == '"':
			in = false
		}
	}
	return false
}

// member returns an object's member by exact key, the last one when a key
// repeats (as encoding/json and the real server's decoder do), or nil.
func member(o *fastjson.Object, key string) *fastjson.Value {
	var found *fastjson.Value
	o.Visit(func(k []byte, v *fastjson.Value) {
		if string(k) == key {
			found = v
		}
	})
	return found
}

// objectOf returns v's members, or nil when v is absent or not an object.
func objectOf(v *fastjson.Value) *fastjson.Object {
	if v == nil || v.Type() != fastjson.TypeObject {
		return nil
	}
	o, _ := v.Object()
	return o
}

// arrayOf returns v's elements, or nil when v is absent or not an array.
func arrayOf(v *fastjson.Value) []*fastjson.Value {
	if v == nil || v.Type() != fastjson.TypeArray {
		return nil
	}
	a, _ := v.Array()
	return a
}

// stringOf returns a JSON string's text, with invalid UTF-8 replaced as
// encoding/json does; ok is false for any other type.
func stringOf(v *fastjson.Value) (s string, ok bool) {
	if v == nil || v.Type() != fastjson.TypeString {
		return "", false
	}
	b, _ := v.StringBytes()
	s = string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s, true
}

// toAny converts a value to what encoding/json with UseNumber would have
// produced: map[string]any, []any, string, json.Number, bool or nil.
func toAny(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, mv *fastjson.Value) {
			m[strings.ToValidUTF8(string(k), "\uFFFD")] = toAny(mv)
		})
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = toAny(e)
		}
		return out
	case fastjson.TypeString:
		s, _ := stringOf(v)
		return s
	case fastjson.TypeNumber:
		return json.Number(v.MarshalTo(nil))
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// rawJSON returns v as JSON text: strings byte for byte as the client wrote
// them (fastjson keeps them raw until read), containers without whitespace,
// so never longer than the input it came from (sizeHint).
func rawJSON(v *fastjson.Value, sizeHint int) []byte {
	return v.MarshalTo(make([]byte, 0, sizeHint))
}

// hasControl reports any byte below 0x20 in b, eight bytes at a time.
func hasControl(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		if (x-0x20*ones)&^x&highs != 0 {
			return true
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}
