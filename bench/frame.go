package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"
)

// The tool reads tens of thousands of postgres_changes frames per second on
// the same two cores as the server it measures, so it does not unmarshal
// them: a small scanner walks the frame once and keeps slices of the fields
// it needs (aliasing the read buffer). Rare frames (replies, system messages)
// go through encoding/json.

var errFrame = errors.New("malformed frame")

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// frame is one vsn 2.0.0 server frame: [join_ref, ref, topic, event, payload].
// joinRef and ref are nil for JSON null.
type frame struct {
	joinRef, ref []byte
	topic, event []byte
	payload      []byte // the raw JSON value
}

// scanner walks JSON text without building values.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips whitespace and then c, reporting whether c was there.
func (s *scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// str reads a string and returns its decoded contents. Without escapes the
// result aliases the input; with them it is decoded by encoding/json.
func (s *scanner) str() ([]byte, error) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errFrame
	}
	start := s.i
	s.i++
	escaped := false
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			if !escaped {
				return s.b[start+1 : s.i-1], nil
			}
			var out string
			if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
				return nil, errFrame
			}
			return []byte(out), nil
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			return nil, errFrame
		default:
			s.i++
		}
	}
	return nil, errFrame
}

// skipStr passes over a string without decoding its escapes.
func (s *scanner) skipStr() error {
	s.i++ // the opening quote
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return nil
		case c == '\\':
			s.i += 2
		case c < 0x20:
			return errFrame
		default:
			s.i++
		}
	}
	return errFrame
}

// strOrNull reads a string, or null as nil.
func (s *scanner) strOrNull() ([]byte, error) {
	s.ws()
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return nil, nil
	}
	v, err := s.str()
	if v == nil && err == nil {
		v = []byte{} // "" is not null
	}
	return v, err
}

// skip passes over any one value.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errFrame
	}
	s.ws()
	if s.i >= len(s.b) {
		return errFrame
	}
	switch c := s.b[s.i]; {
	case c == '"':
		return s.skipStr()
	case c == '{':
		s.i++
		if s.consume('}') {
			return nil
		}
		for {
			if _, err := s.str(); err != nil {
				return err
			}
			if !s.consume(':') {
				return errFrame
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.consume('}') {
				return nil
			}
			if !s.consume(',') {
				return errFrame
			}
		}
	case c == '[':
		s.i++
		if s.consume(']') {
			return nil
		}
		for {
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			if s.consume(']') {
				return nil
			}
			if !s.consume(',') {
				return errFrame
			}
		}
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		// Numbers are passed over, not validated: the tool never reads one
		// except ids, which parseInt checks.
		start := s.i
		for s.i < len(s.b) && isNumByte(s.b[s.i]) {
			s.i++
		}
		if s.i == start+1 && c == '-' {
			return errFrame
		}
		return nil
	}
	return errFrame
}

func (s *scanner) lit(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		return errFrame
	}
	s.i += len(word)
	return nil
}

// value returns the raw text of the next value.
func (s *scanner) value(depth int) ([]byte, error) {
	s.ws()
	start := s.i
	if err := s.skip(depth); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// enter consumes '{' and reports whether the object has a first key.
func (s *scanner) enter() (more bool, err error) {
	if !s.consume('{') {
		return false, errFrame
	}
	return !s.consume('}'), nil
}

// key reads the next key and its colon.
func (s *scanner) key() ([]byte, error) {
	k, err := s.str()
	if err != nil || !s.consume(':') {
		return nil, errFrame
	}
	return k, nil
}

// next consumes the separator after a member, reporting whether another
// member follows.
func (s *scanner) next(close byte) (more bool, err error) {
	if s.consume(close) {
		return false, nil
	}
	if !s.consume(',') {
		return false, errFrame
	}
	return true, nil
}

// parseFrame decodes a vsn 2.0.0 frame. Elements past the fifth are ignored,
// as the real server ignores them.
func parseFrame(b []byte) (frame, error) {
	var f frame
	s := scanner{b: b}
	if !s.consume('[') {
		return f, errFrame
	}
	var err error
	if f.joinRef, err = s.strOrNull(); err != nil || !s.consume(',') {
		return f, errFrame
	}
	if f.ref, err = s.strOrNull(); err != nil || !s.consume(',') {
		return f, errFrame
	}
	if f.topic, err = s.str(); err != nil || !s.consume(',') {
		return f, errFrame
	}
	if f.event, err = s.str(); err != nil || !s.consume(',') {
		return f, errFrame
	}
	if f.payload, err = s.value(1); err != nil {
		return f, errFrame
	}
	for !s.consume(']') {
		if !s.consume(',') {
			return f, errFrame
		}
		if err := s.skip(1); err != nil {
			return f, err
		}
	}
	return f, nil
}

// rowChange is what the tool reads from a postgres_changes payload: the ids
// it was routed by and the public status row's fields that carry timing and
// identity. Byte slices alias the frame.
type rowChange struct {
	ids             []int64
	typ             []byte
	commitTimestamp []byte
	referenceID     []byte
	status          []byte
	gatewayMessage  []byte // nil for null
	updatedAt       []byte
	hasRecord       bool
}

// parseChange decodes the payload of a postgres_changes frame:
// {"ids":[...],"data":{"type":..,"commit_timestamp":..,"record":{...},...}}.
// ids is appended to buf to avoid an allocation per frame. It is written as
// plain loops (no callbacks) so nothing escapes to the heap.
func parseChange(payload []byte, buf []int64) (rowChange, error) {
	c := rowChange{ids: buf[:0]}
	s := scanner{b: payload}
	more, err := s.enter()
	for ; more && err == nil; more, err = s.next('}') {
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		switch string(k) {
		case "ids":
			err = s.ids(&c)
		case "data":
			err = s.data(&c)
		default:
			err = s.skip(2)
		}
	}
	if err != nil {
		return c, err
	}
	s.ws()
	if s.i != len(s.b) {
		return c, errFrame
	}
	return c, nil
}

func (s *scanner) ids(c *rowChange) error {
	if !s.consume('[') {
		return errFrame
	}
	if s.consume(']') {
		return nil
	}
	for {
		s.ws()
		start := s.i
		if err := s.skip(2); err != nil {
			return err
		}
		id, ok := parseInt(s.b[start:s.i])
		if !ok {
			return errFrame
		}
		c.ids = append(c.ids, id)
		if more, err := s.next(']'); err != nil || !more {
			return err
		}
	}
}

func (s *scanner) data(c *rowChange) error {
	more, err := s.enter()
	for ; more && err == nil; more, err = s.next('}') {
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		switch string(k) {
		case "type":
			c.typ, err = s.str()
		case "commit_timestamp":
			c.commitTimestamp, err = s.strOrNull()
		case "record":
			c.hasRecord = true
			err = s.record(c)
		default:
			err = s.skip(3)
		}
	}
	return err
}

func (s *scanner) record(c *rowChange) error {
	more, err := s.enter()
	for ; more && err == nil; more, err = s.next('}') {
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		switch string(k) {
		case "reference_id":
			c.referenceID, err = s.strOrNull()
		case "status":
			c.status, err = s.strOrNull()
		case "gateway_message":
			c.gatewayMessage, err = s.strOrNull()
		case "updated_at":
			c.updatedAt, err = s.strOrNull()
		default:
			err = s.skip(4)
		}
	}
	return err
}

func isNumByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// parseInt parses a decimal integer that fits in int64.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseTimestamp parses the timestamps the server renders: to_jsonb's
// timestamptz "2006-01-02T15:04:05.999999+00:00" and commit_timestamp's
// "2006-01-02T15:04:05.000Z". It avoids time.Parse's string conversion on the
// hot path and falls back to it for any other RFC 3339 form.
func parseTimestamp(b []byte) (time.Time, bool) {
	if t, ok := parseTimestampFast(b); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	return t, err == nil
}

func parseTimestampFast(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		i := 1
		scale := 100_000_000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			if scale == 0 {
				return time.Time{}, false
			}
			nsec += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && rest[0] == 'Z':
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(rest[1:3])
		om, ok2 := num(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // February 30th and the like
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}
