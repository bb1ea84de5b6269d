package realtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// version selects the Phoenix serializer of a socket (realtime-protocol.md §2):
// vsn 2.0.0 frames are 5-element arrays, vsn 1.0.0 (or absent) frames are objects.
type version uint8

const (
	vsn1 version = 1
	vsn2 version = 2
)

func parseVersion(s string) version {
	if len(s) > 0 && s[0] == '2' {
		return vsn2
	}
	return vsn1
}

// frame is one decoded client message. Refs are kept as the raw JSON the
// client sent (a string, or nil for null) so replies echo them byte for byte.
type frame struct {
	joinRef []byte
	ref     []byte
	topic   string
	event   string
	payload []byte // raw JSON; "{}" when absent

	// A binary user broadcast (kind 3) carries its fields here.
	bcast *binaryBroadcast
}

type binaryBroadcast struct {
	event    string
	metadata []byte
	json     bool // payload encoding: JSON (true) or raw bytes
	payload  []byte
}

var (
	errFrameShape = errors.New("frame is not a Phoenix message")
	jsonNull      = []byte("null")
	emptyObject   = []byte("{}")
)

// decodeFrame decodes a text frame in the socket's serializer: vsn 2.0.0 a
// 5-element array (extra elements are ignored, as the real server does), vsn
// 1.0.0 an object. It never panics.
func decodeFrame(v version, data []byte) (frame, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	root, err := parseJSON(p, data)
	if err != nil {
		return frame{}, err
	}
	if v == vsn2 {
		parts := arrayOf(root)
		if len(parts) < 5 {
			return frame{}, errFrameShape
		}
		return buildFrame(len(data), parts[0], parts[1], parts[2], parts[3], parts[4])
	}
	obj := objectOf(root)
	if obj == nil {
		return frame{}, errFrameShape
	}
	return buildFrame(len(data), member(obj, "join_ref"), member(obj, "ref"), member(obj, "topic"), member(obj, "event"), member(obj, "payload"))
}

// buildFrame copies what it keeps out of the parsed values (nil = absent).
func buildFrame(size int, joinRef, ref, topic, event, payload *fastjson.Value) (frame, error) {
	var f frame
	var err error
	if f.joinRef, err = refBytes(joinRef); err != nil {
		return frame{}, err
	}
	if f.ref, err = refBytes(ref); err != nil {
		return frame{}, err
	}
	var ok bool
	if f.topic, ok = stringOf(topic); !ok {
		return frame{}, fmt.Errorf("topic must be a string")
	}
	if f.event, ok = stringOf(event); !ok {
		return frame{}, fmt.Errorf("event must be a string")
	}
	if payload == nil || payload.Type() == fastjson.TypeNull {
		f.payload = emptyObject
	} else {
		f.payload = rawJSON(payload, size)
	}
	return f, nil
}

// refBytes accepts a ref that is a JSON string or number (kept as the client
// wrote it) or null/absent (nil).
func refBytes(v *fastjson.Value) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	// Rendered before anything asks its type: asking unescapes a string.
	raw := rawJSON(v, 16)
	switch c := raw[0]; {
	case c == 'n':
		return nil, nil
	case c == '"', c == '-', c >= '0' && c <= '9':
		return raw, nil
	}
	return nil, fmt.Errorf("ref must be a string or null")
}

// Binary frame kinds (realtime-protocol.md §2.1).
const (
	kindUserBroadcastPush = 3
	kindUserBroadcast     = 4
)

// decodeBinary decodes a client binary frame; only kind 3 (user broadcast push) exists.
func decodeBinary(data []byte) (frame, error) {
	const headerLen = 7
	if len(data) < headerLen || data[0] != kindUserBroadcastPush {
		return frame{}, errFrameShape
	}
	lens := [5]int{int(data[1]), int(data[2]), int(data[3]), int(data[4]), int(data[5])}
	enc := data[6]
	rest := data[headerLen:]
	var fields [5][]byte
	for i, n := range lens {
		if len(rest) < n {
			return frame{}, errFrameShape
		}
		fields[i], rest = rest[:n], rest[n:]
	}
	for i := 0; i < 4; i++ {
		if !utf8.Valid(fields[i]) {
			return frame{}, errFrameShape
		}
	}
	f := frame{topic: string(fields[2]), event: "broadcast", payload: emptyObject}
	// Refs are kept as JSON, as a text frame's are, to be echoed in replies.
	if len(fields[0]) > 0 {
		f.joinRef = appendJSONString(nil, string(fields[0]))
	}
	if len(fields[1]) > 0 {
		f.ref = appendJSONString(nil, string(fields[1]))
	}
	b := &binaryBroadcast{event: string(fields[3]), metadata: bytes.Clone(fields[4]), json: enc == 1, payload: bytes.Clone(rest)}
	if b.json && !json.Valid(b.payload) {
		return frame{}, fmt.Errorf("broadcast payload is not JSON")
	}
	f.bcast = b
	return f, nil
}

// appendUserBroadcast encodes a server binary kind-4 frame (realtime-protocol.md §2.1).
func appendUserBroadcast(buf []byte, topic, event string, metadata []byte, jsonPayload bool, payload []byte) ([]byte, bool) {
	if len(topic) > 255 || len(event) > 255 || len(metadata) > 255 {
		return buf, false
	}
	enc := byte(0)
	if jsonPayload {
		enc = 1
	}
	buf = append(buf, kindUserBroadcast, byte(len(topic)), byte(len(event)), byte(len(metadata)), enc)
	buf = append(buf, topic...)
	buf = append(buf, event...)
	buf = append(buf, metadata...)
	return append(buf, payload...), true
}

// appendFrame encodes one server message. topicJSON is the topic already
// JSON-encoded; joinRef and ref are raw JSON or nil for null; payload is raw JSON.
func appendFrame(buf []byte, v version, joinRef, ref, topicJSON []byte, event string, payload []byte) []byte {
	if v == vsn2 {
		buf = append(buf, '[')
		buf = appendRaw(buf, joinRef)
		buf = append(buf, ',')
		buf = appendRaw(buf, ref)
		buf = append(buf, ',')
		buf = append(buf, topicJSON...)
		buf = append(buf, ',', '"')
		buf = append(buf, event...) // server event names need no escaping
		buf = append(buf, '"', ',')
		buf = append(buf, payload...)
		return append(buf, ']')
	}
	buf = append(buf, `{"topic":`...)
	buf = append(buf, topicJSON...)
	buf = append(buf, `,"event":"`...)
	buf = append(buf, event...)
	buf = append(buf, `","payload":`...)
	buf = append(buf, payload...)
	buf = append(buf, `,"ref":`...)
	buf = appendRaw(buf, ref)
	buf = append(buf, `,"join_ref":`...)
	buf = appendRaw(buf, joinRef)
	return append(buf, '}')
}

func appendRaw(buf, raw []byte) []byte {
	if raw == nil {
		return append(buf, "null"...)
	}
	return append(buf, raw...)
}

// encodeFrame is appendFrame into a fresh slice.
func encodeFrame(v version, joinRef, ref []byte, topic string, event string, payload []byte) []byte {
	t := appendJSONString(nil, topic)
	return appendFrame(make([]byte, 0, 64+len(t)+len(payload)), v, joinRef, ref, t, event, payload)
}

// appendChangeFrame encodes a postgres_changes message: {"ids":[...],"data":<data>}.
func appendChangeFrame(buf []byte, v version, topicJSON []byte, ids []int64, data []byte) []byte {
	if v == vsn2 {
		buf = append(buf, `[null,null,`...)
		buf = append(buf, topicJSON...)
		buf = append(buf, `,"postgres_changes",`...)
		buf = appendChangePayload(buf, ids, data)
		return append(buf, ']')
	}
	buf = append(buf, `{"topic":`...)
	buf = append(buf, topicJSON...)
	buf = append(buf, `,"event":"postgres_changes","payload":`...)
	buf = appendChangePayload(buf, ids, data)
	return append(buf, `,"ref":null,"join_ref":null}`...)
}

func appendChangePayload(buf []byte, ids []int64, data []byte) []byte {
	buf = append(buf, `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, id, 10)
	}
	buf = append(buf, `],"data":`...)
	buf = append(buf, data...)
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; HTML characters are left alone (nobody embeds these frames in HTML).
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' { // valid JSON, but not valid JavaScript source
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}
