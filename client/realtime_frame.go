package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// frame is one Phoenix message. Refs are strings; "" stands for null (the
// client never makes an empty ref, and servers echo refs back unchanged).
type frame struct {
	JoinRef string
	Ref     string
	Topic   string
	Event   string
	Payload json.RawMessage
}

var errBadFrame = errors.New("realtime: malformed frame")

// encodeFrame renders f as vsn 2.0.0 ([join_ref, ref, topic, event, payload])
// or, with vsn1, as a vsn 1.0.0 object. payload must be valid JSON.
func encodeFrame(dst []byte, f frame, vsn1 bool) []byte {
	payload := f.Payload
	if len(payload) == 0 {
		payload = json.RawMessage("{}")
	}
	if vsn1 {
		dst = append(dst, `{"topic":`...)
		dst = appendJSONString(dst, f.Topic)
		dst = append(dst, `,"event":`...)
		dst = appendJSONString(dst, f.Event)
		dst = append(dst, `,"payload":`...)
		dst = append(dst, payload...)
		dst = append(dst, `,"ref":`...)
		dst = appendRef(dst, f.Ref)
		dst = append(dst, `,"join_ref":`...)
		dst = appendRef(dst, f.JoinRef)
		return append(dst, '}')
	}
	dst = append(dst, '[')
	dst = appendRef(dst, f.JoinRef)
	dst = append(dst, ',')
	dst = appendRef(dst, f.Ref)
	dst = append(dst, ',')
	dst = appendJSONString(dst, f.Topic)
	dst = append(dst, ',')
	dst = appendJSONString(dst, f.Event)
	dst = append(dst, ',')
	dst = append(dst, payload...)
	return append(dst, ']')
}

func appendRef(dst []byte, ref string) []byte {
	if ref == "" {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, ref)
}

func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// decodeFrame parses a server text frame. vsn 2.0.0 frames are arrays of at
// least five elements (extra elements are ignored, as the real server does);
// vsn 1.0.0 frames are objects. Either form is accepted whatever was asked
// for, since the first byte tells them apart.
func decodeFrame(b []byte) (frame, error) {
	var f frame
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return f, errBadFrame
	}
	if b[0] == '{' {
		var o struct {
			Topic   string          `json:"topic"`
			Event   string          `json:"event"`
			Payload json.RawMessage `json:"payload"`
			Ref     json.RawMessage `json:"ref"`
			JoinRef json.RawMessage `json:"join_ref"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return f, fmt.Errorf("%w: %v", errBadFrame, err)
		}
		var err error
		if f.Ref, err = decodeRef(o.Ref); err != nil {
			return f, err
		}
		if f.JoinRef, err = decodeRef(o.JoinRef); err != nil {
			return f, err
		}
		f.Topic, f.Event, f.Payload = o.Topic, o.Event, o.Payload
		return f, nil
	}
	var a []json.RawMessage
	if err := json.Unmarshal(b, &a); err != nil {
		return f, fmt.Errorf("%w: %v", errBadFrame, err)
	}
	if len(a) < 5 {
		return f, fmt.Errorf("%w: %d elements", errBadFrame, len(a))
	}
	var err error
	if f.JoinRef, err = decodeRef(a[0]); err != nil {
		return f, err
	}
	if f.Ref, err = decodeRef(a[1]); err != nil {
		return f, err
	}
	if err := json.Unmarshal(a[2], &f.Topic); err != nil {
		return f, fmt.Errorf("%w: topic: %v", errBadFrame, err)
	}
	if err := json.Unmarshal(a[3], &f.Event); err != nil {
		return f, fmt.Errorf("%w: event: %v", errBadFrame, err)
	}
	f.Payload = a[4]
	return f, nil
}

// decodeRef reads a ref: null, a string, or (leniently) an integer.
func decodeRef(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: ref: %v", errBadFrame, err)
		}
		return s, nil
	}
	if _, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return string(raw), nil
	}
	return "", fmt.Errorf("%w: ref %s", errBadFrame, raw)
}
