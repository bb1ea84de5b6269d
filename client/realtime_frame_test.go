package client

import (
	"encoding/json"
	"testing"
	"time"
)

// The phx_join supabase-js 2.119.0 sends for the product snippet
// (realtime-protocol.md §4), with its token replaced.
const capturedJoin = `["6","6","realtime:payment-intent:sess_abc:ref_123","phx_join",{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","filter":"reference_id=eq.ref_123"}],"private":false},"access_token":"JWT"}]`

const capturedJoinV1 = `{"topic":"realtime:payment-intent:sess_abc:ref_123","event":"phx_join","payload":{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","filter":"reference_id=eq.ref_123"}],"private":false},"access_token":"JWT"},"ref":"6","join_ref":"6"}`

func TestJoinFrameMatchesSupabaseJS(t *testing.T) {
	payload, err := joinPayload(ChannelOptions{
		AccessToken: "JWT",
		PostgresChanges: []PostgresChangesFilter{{
			Event: "*", Schema: "public", Table: "checkout_payment_intent_public_status", Filter: "reference_id=eq.ref_123",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f := frame{JoinRef: "6", Ref: "6", Topic: "realtime:payment-intent:sess_abc:ref_123", Event: "phx_join", Payload: payload}
	if got := string(encodeFrame(nil, f, false)); got != capturedJoin {
		t.Errorf("vsn 2 join:\n got %s\nwant %s", got, capturedJoin)
	}
	if got := string(encodeFrame(nil, f, true)); got != capturedJoinV1 {
		t.Errorf("vsn 1 join:\n got %s\nwant %s", got, capturedJoinV1)
	}
}

func TestJoinPayloadWithoutBindings(t *testing.T) {
	payload, err := joinPayload(ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}`
	if string(payload) != want {
		t.Errorf("got %s, want %s", payload, want)
	}
}

func TestHeartbeatFrame(t *testing.T) {
	got := string(encodeFrame(nil, frame{Ref: "7", Topic: "phoenix", Event: "heartbeat"}, false))
	if want := `[null,"7","phoenix","heartbeat",{}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestDecodeFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want frame
		bad  bool
	}{
		{name: "v2 reply", in: `["6","6","realtime:x","phx_reply",{"status":"ok","response":{}}]`,
			want: frame{JoinRef: "6", Ref: "6", Topic: "realtime:x", Event: "phx_reply", Payload: json.RawMessage(`{"status":"ok","response":{}}`)}},
		{name: "v2 nulls", in: `[null,null,"realtime:x","postgres_changes",{"ids":[1]}]`,
			want: frame{Topic: "realtime:x", Event: "postgres_changes", Payload: json.RawMessage(`{"ids":[1]}`)}},
		{name: "v2 extra elements", in: `[null,"7","phoenix","phx_reply",{},"extra"]`,
			want: frame{Ref: "7", Topic: "phoenix", Event: "phx_reply", Payload: json.RawMessage(`{}`)}},
		{name: "v2 integer ref", in: `[null,7,"phoenix","phx_reply",{}]`,
			want: frame{Ref: "7", Topic: "phoenix", Event: "phx_reply", Payload: json.RawMessage(`{}`)}},
		{name: "v1 object", in: `{"topic":"realtime:x","event":"system","payload":{"a":1},"ref":null,"join_ref":"6"}`,
			want: frame{JoinRef: "6", Topic: "realtime:x", Event: "system", Payload: json.RawMessage(`{"a":1}`)}},
		{name: "short array", in: `[null,null,"t","e"]`, bad: true},
		{name: "topic not a string", in: `[null,null,1,"e",{}]`, bad: true},
		{name: "ref object", in: `[{},null,"t","e",{}]`, bad: true},
		{name: "not json", in: `[nope`, bad: true},
		{name: "empty", in: ``, bad: true},
		{name: "scalar", in: `42`, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFrame([]byte(tt.in))
			if tt.bad {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.JoinRef != tt.want.JoinRef || got.Ref != tt.want.Ref || got.Topic != tt.want.Topic ||
				got.Event != tt.want.Event || string(got.Payload) != string(tt.want.Payload) {
				t.Errorf("got %+v (payload %s), want %+v (payload %s)", got, got.Payload, tt.want, tt.want.Payload)
			}
		})
	}
}

// FuzzDecodeFrame: any input decodes or fails cleanly, and whatever decodes
// re-encodes into a frame that decodes to the same values.
func FuzzDecodeFrame(f *testing.F) {
	f.Add([]byte(capturedJoin))
	f.Add([]byte(capturedJoinV1))
	f.Add([]byte(`[null,null,"realtime:x","postgres_changes",{"ids":[1],"data":{"type":"INSERT"}}]`))
	f.Add([]byte(`{"topic":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			return
		}
		if !json.Valid(fr.Payload) {
			fr.Payload = json.RawMessage(`{}`)
		}
		for _, v1 := range []bool{false, true} {
			again, err := decodeFrame(encodeFrame(nil, fr, v1))
			if err != nil {
				t.Fatalf("re-encoded frame does not decode: %v", err)
			}
			if again.JoinRef != fr.JoinRef || again.Ref != fr.Ref || again.Topic != fr.Topic || again.Event != fr.Event {
				t.Fatalf("round trip changed %+v into %+v", fr, again)
			}
		}
	})
}

// FuzzJoinReply: a join reply of any shape yields a status, never a panic.
func FuzzJoinReply(f *testing.F) {
	f.Add([]byte(`{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"t","filter":"a=eq.1","id":1001}]}}`))
	f.Add([]byte(`{"status":"error","response":{"reason":"Unauthorized: no"}}`))
	f.Add([]byte(`{"status":"ok"}`))
	f.Add([]byte(`{"status":"ok","response":{"postgres_changes":[null]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch := &Channel{opts: ChannelOptions{PostgresChanges: []PostgresChangesFilter{{Event: "*", Schema: "public", Table: "t", Filter: "a=eq.1"}}}}
		st, err := ch.joinReply(b)
		if st != ChannelSubscribed && err == nil {
			t.Fatalf("status %s without an error", st)
		}
	})
}

// FuzzPostgresChange: any postgres_changes payload is delivered or dropped,
// never a panic, and a delivered event names its type.
func FuzzPostgresChange(f *testing.F) {
	f.Add([]byte(`{"ids":[1001],"data":{"columns":[{"name":"id","type":"int8"}],"commit_timestamp":"2026-11-25T16:58:29.779Z","errors":null,"record":{"id":1,"status":"PENDING"},"schema":"public","table":"t","type":"INSERT"}}`))
	f.Add([]byte(`{"ids":[1001],"data":{"type":"DELETE","old_record":{"id":1}}}`))
	f.Add([]byte(`{"ids":"x","data":[]}`))
	f.Add([]byte(`{"ids":[1001],"dAtA":{}}`)) // field names match case-insensitively; no type: dropped
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, raw := range []bool{false, true} {
			ch := &Channel{c: &RealtimeConn{}, opts: ChannelOptions{
				PostgresChanges: []PostgresChangesFilter{{Event: "*", Schema: "public", Table: "t"}},
				RawChanges:      raw,
				OnChange: func(ev *PostgresChange) {
					if ev.Type == "" {
						t.Fatalf("delivered an event without a type: %s", b)
					}
				},
			}, ids: []json.RawMessage{json.RawMessage(`1001`)}}
			ch.change(b, time.Time{})
		}
	})
}
