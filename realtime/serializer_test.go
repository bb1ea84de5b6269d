package realtime

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"testing"
	"unicode/utf8"
)

func TestSerializerRoundTrip(t *testing.T) {
	cases := []struct {
		name           string
		joinRef, ref   []byte
		topic, event   string
		payload        string
		wantV2, wantV1 string
	}{
		{name: "join reply", joinRef: []byte(`"6"`), ref: []byte(`"6"`), topic: "realtime:room", event: "phx_reply", payload: `{"status":"ok","response":{}}`,
			wantV2: `["6","6","realtime:room","phx_reply",{"status":"ok","response":{}}]`,
			wantV1: `{"topic":"realtime:room","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"6","join_ref":"6"}`},
		{name: "null refs", topic: "phoenix", event: "phx_reply", payload: `{}`,
			wantV2: `[null,null,"phoenix","phx_reply",{}]`,
			wantV1: `{"topic":"phoenix","event":"phx_reply","payload":{},"ref":null,"join_ref":null}`},
		{name: "escaped topic", joinRef: []byte(`"a\"b"`), topic: "realtime:q\"uo\\te\u2028", event: "system", payload: `{"x":[1,2]}`,
			wantV2: `["a\"b",null,"realtime:q\"uo\\te\u2028","system",{"x":[1,2]}]`,
			wantV1: `{"topic":"realtime:q\"uo\\te\u2028","event":"system","payload":{"x":[1,2]},"ref":null,"join_ref":"a\"b"}`},
	}
	for _, tc := range cases {
		for _, v := range []version{vsn2, vsn1} {
			got := encodeFrame(v, tc.joinRef, tc.ref, tc.topic, tc.event, []byte(tc.payload))
			want := tc.wantV1
			if v == vsn2 {
				want = tc.wantV2
			}
			if string(got) != want {
				t.Errorf("%s v%d: encoded %s, want %s", tc.name, v, got, want)
			}
			f, err := decodeFrame(v, got)
			if err != nil {
				t.Fatalf("%s v%d: decode: %v", tc.name, v, err)
			}
			if !bytes.Equal(f.joinRef, tc.joinRef) || !bytes.Equal(f.ref, tc.ref) || f.topic != tc.topic || f.event != tc.event || string(f.payload) != tc.payload {
				t.Errorf("%s v%d: round trip gave %+v", tc.name, v, f)
			}
		}
	}
}

func TestDecodeFrameClientShapes(t *testing.T) {
	// Captured client frames (realtime-protocol.md §4, §9, §10.2).
	f, err := decodeFrame(vsn2, []byte(`["6","6","realtime:payment-intent:sess_abc:ref_123","phx_join",{"config":{"postgres_changes":[]},"access_token":"x"}]`))
	if err != nil || string(f.joinRef) != `"6"` || f.event != "phx_join" || !json.Valid(f.payload) {
		t.Errorf("join: %+v %v", f, err)
	}
	f, err = decodeFrame(vsn1, []byte(`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7","join_ref":null}`))
	if err != nil || f.joinRef != nil || string(f.ref) != `"7"` || f.topic != "phoenix" {
		t.Errorf("heartbeat: %+v %v", f, err)
	}
	f, err = decodeFrame(vsn2, []byte(`[null,"1","phoenix","heartbeat"]`))
	if err == nil {
		t.Errorf("4 elements should fail: %+v", f)
	}
	for _, bad := range []string{`{}`, `[1,2,3,4,5]`, `[null,null,"t",5,{}]`, `[{},null,"t","e",{}]`, `"x"`, ``} {
		if _, err := decodeFrame(vsn2, []byte(bad)); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
	if f, err := decodeFrame(vsn2, []byte(`[null,null,"t","e",null]`)); err != nil || string(f.payload) != "{}" {
		t.Errorf("null payload: %+v %v", f, err)
	}
}

func TestDecodeBinaryBroadcast(t *testing.T) {
	// The captured kind-3 frame for send({type:'broadcast', event:'cursor', payload:{x:1}}) (§2.1).
	data, _ := hex.DecodeString("0301020e0600013931307265616c74696d653a726f6f6d31637572736f727b2278223a317d")
	f, err := decodeBinary(data)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.joinRef) != `"9"` || string(f.ref) != `"10"` || f.topic != "realtime:room1" || f.event != "broadcast" ||
		f.bcast.event != "cursor" || !f.bcast.json || string(f.bcast.payload) != `{"x":1}` {
		t.Errorf("got %+v %+v", f, f.bcast)
	}
	out, ok := appendUserBroadcast(nil, "realtime:room1", "cursor", nil, true, []byte(`{"x":1}`))
	if want := "040e0600017265616c74696d653a726f6f6d31637572736f727b2278223a317d"; !ok || hex.EncodeToString(out) != want {
		t.Errorf("kind 4 = %x, want %s", out, want)
	}
	for _, bad := range []string{"", "04", "0301020e0600", "03ff020e060001"} {
		b, _ := hex.DecodeString(bad)
		if _, err := decodeBinary(b); err == nil {
			t.Errorf("%s: want error", bad)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\s", "\x00\x1f\n\r\t", "ü€😀", "\u2028\u2029", "bad\xffutf8", "<&>"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q → %s: %v", s, got, err)
			continue
		}
		want := s
		if !utf8.ValidString(s) {
			want = string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
		}
		if back != want {
			t.Errorf("%q → %s → %q", s, got, back)
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`["6","6","realtime:room","phx_join",{"config":{}}]`,
		`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7","join_ref":null}`,
		`[null,"1","phoenix","heartbeat",{},1,2]`, `[1,2.5,"t","e",[]]`, `{"topic":1}`,
		"[null,\"1\",\"pho\tenix\",\"heartbeat\",{}]", `[null,"\x","phoenix","heartbeat",{}]`,
		`{"topic":"a","event":"b","payload":{"k":"\u00e9\"<>"},"ref":"\/"}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	bin, _ := hex.DecodeString("0301020e0600013931307265616c74696d653a726f6f6d31637572736f727b2278223a317d")
	f.Add(bin, true)
	f.Fuzz(func(t *testing.T, data []byte, v2 bool) {
		v := vsn1
		if v2 {
			v = vsn2
		}
		if fr, err := decodeFrame(v, data); err == nil {
			if !json.Valid(data) {
				t.Fatalf("accepted a frame that is not JSON: %q", data)
			}
			// Whatever decodes re-encodes into valid JSON that decodes the same.
			if !json.Valid(fr.payload) {
				return // the payload is passed through raw; the frame itself was valid JSON
			}
			out := encodeFrame(v, fr.joinRef, fr.ref, fr.topic, fr.event, fr.payload)
			back, err := decodeFrame(v, out)
			if err != nil || back.topic != fr.topic || back.event != fr.event || !bytes.Equal(back.ref, fr.ref) {
				if utf8.ValidString(fr.topic) && utf8.ValidString(fr.event) {
					t.Fatalf("re-encoded %s does not decode back: %v", out, err)
				}
			}
		}
		_, _ = decodeBinary(data)
	})
}

func TestHasControl(t *testing.T) {
	for n := 0; n < 20; n++ {
		b := bytes.Repeat([]byte{'a'}, n)
		if hasControl(b) {
			t.Fatalf("%d plain bytes reported a control character", n)
		}
		for i := 0; i < n; i++ {
			for _, c := range []byte{0x00, 0x09, 0x1f, 0x20, 0x7f, 0x80, 0xff} {
				b[i] = c
				if got, want := hasControl(b), c < 0x20; got != want {
					t.Fatalf("byte %#x at %d of %d: hasControl = %v", c, i, n, got)
				}
				b[i] = 'a'
			}
		}
	}
}

// TestParseJoinPayloadShapes pins how a join payload is read (docs/realtime.md):
// each part of the config is used if it has the right shape, a repeated key
// counts by its last occurrence, keys match exactly, and a binding's id and
// echoed entry are json.Marshal's rendering of its non-null members.
func TestParseJoinPayloadShapes(t *testing.T) {
	p := parseJoinPayload([]byte(`{"config":{"broadcast":"yes","presence":{"enabled":"TRUE","key":"k"},` +
		`"postgres_changes":[{"event":"*","schema":"public","table":"t","filter":null,"x":"<&>"}]},` +
		`"access_token":"first","access_token":"second","Config":{}}`))
	if p.token != "second" || p.bcastAck || !p.presence.enabled || p.presence.key != "k" || len(p.bindings) != 1 {
		t.Fatalf("parsed %+v", p)
	}
	b := p.bindings[0]
	want, _ := json.Marshal(map[string]any{"event": "*", "schema": "public", "table": "t", "x": "<&>", "id": b.id})
	if b.err != "" || b.table != "t" || string(b.entry) != string(want) {
		t.Fatalf("binding %+v entry %s, want %s", b, b.entry, want)
	}
	canon, _ := json.Marshal(map[string]any{"event": "*", "schema": "public", "table": "t", "x": "<&>"})
	h := fnv.New32a()
	h.Write(canon)
	if b.id != int64(h.Sum32()&(1<<27-1)) {
		t.Fatalf("id %d is not the hash of %s", b.id, canon)
	}
	for _, bad := range []string{`[]`, `{"config":[]}`, `{"config":{"postgres_changes":{}}}`, `not json`} {
		if p := parseJoinPayload([]byte(bad)); len(p.bindings) != 0 || p.token != "" {
			t.Errorf("%s: parsed %+v", bad, p)
		}
	}
	if p := parseJoinPayload([]byte(`{"config":{"postgres_changes":[null,"x"]}}`)); len(p.bindings) != 2 || p.bindings[0].err == "" || p.bindings[1].err == "" {
		t.Errorf("bindings that are not objects must carry an error: %+v", p.bindings)
	}
}

// FuzzParseJoinPayload: a join's payload comes from the client; reading it
// never panics, and every binding's echoed entry is JSON.
func FuzzParseJoinPayload(f *testing.F) {
	for _, s := range []string{
		`{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[{"event":"*","schema":"public","table":"t","filter":"reference_id=eq.x"}],"private":false},"access_token":"a.b.c"}`,
		`{"config":{"postgres_changes":[null,"x",{"select":["a"]},{"event":"INSERT","table":"t","filter":"a=in.(1,2)"}]}}`,
		`{"config":{"broadcast":"yes","presence":[]}}`, `{"config":null}`, `{}`, `[]`, `null`, `{"user_token":"u"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := parseJoinPayload(data)
		for _, b := range p.bindings {
			if b.entry != nil && !json.Valid(b.entry) {
				t.Fatalf("binding entry %q is not JSON", b.entry)
			}
		}
	})
}

// A binary push's refs are echoed in JSON replies, so they must be kept as
// JSON strings, whatever bytes they hold.
func TestDecodeBinaryRefsAreJSON(t *testing.T) {
	joinRef, ref, topic := "\x01\x7f", "q\"b\\s\n€", "realtime:room1"
	data := []byte{3, byte(len(joinRef)), byte(len(ref)), byte(len(topic)), 1, 0, 1}
	data = append(data, joinRef+ref+topic+"e{}"...)
	f, err := decodeBinary(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		raw  []byte
		want string
	}{{f.joinRef, joinRef}, {f.ref, ref}} {
		var got string
		if !json.Valid(tc.raw) || json.Unmarshal(tc.raw, &got) != nil || got != tc.want {
			t.Errorf("ref kept as %s, want the JSON string of %q", tc.raw, tc.want)
		}
	}
	reply := encodeFrame(vsn2, f.joinRef, f.ref, f.topic, "phx_reply", []byte(`{"status":"ok","response":{}}`))
	if !json.Valid(reply) {
		t.Errorf("reply %s is not JSON", reply)
	}
}
