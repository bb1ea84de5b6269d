package bench

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

const sampleChange = `[null,null,"realtime:payment-intent:12:6f1c2d1e-0000-4000-8000-000000000001","postgres_changes",{"ids":[1001, 17],"data":{"columns":[{"name":"id","type":"int8"},{"name":"status","type":"text"}],"commit_timestamp":"2026-11-25T16:58:29.779Z","errors":null,"old_record":{"id":7},"record":{"id":7,"reference_id":"6f1c2d1e-0000-4000-8000-000000000001","session_id":12,"status":"PROCESSING","payer_amount":12.50,"requires_action":false,"gateway_message":"bench-ab12-42","created_at":"2026-11-25T16:58:29.1+00:00","updated_at":"2026-11-25T16:58:29.779123+00:00","meta":{"a":[1,{"b":"\"x\""}]}},"schema":"public","table":"checkout_payment_intent_public_status","type":"UPDATE"}}]`

func TestParseFrameAndChange(t *testing.T) {
	f, err := parseFrame([]byte(sampleChange))
	if err != nil {
		t.Fatal(err)
	}
	if f.joinRef != nil || f.ref != nil || string(f.topic) != "realtime:payment-intent:12:6f1c2d1e-0000-4000-8000-000000000001" || string(f.event) != "postgres_changes" {
		t.Fatalf("frame = %q %q %q %q", f.joinRef, f.ref, f.topic, f.event)
	}
	c, err := parseChange(f.payload, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.ids) != 2 || c.ids[0] != 1001 || c.ids[1] != 17 {
		t.Errorf("ids = %v", c.ids)
	}
	if string(c.typ) != "UPDATE" || string(c.status) != "PROCESSING" || string(c.gatewayMessage) != "bench-ab12-42" ||
		string(c.referenceID) != "6f1c2d1e-0000-4000-8000-000000000001" || string(c.updatedAt) != "2026-11-25T16:58:29.779123+00:00" ||
		string(c.commitTimestamp) != "2026-11-25T16:58:29.779Z" || !c.hasRecord {
		t.Errorf("change = %+v", c)
	}
}

func TestParseFrameShapes(t *testing.T) {
	tests := []struct {
		name, in       string
		ok             bool
		joinRef, topic string
	}{
		{"reply", `["6","6","realtime:x","phx_reply",{"status":"ok","response":{}}]`, true, "6", "realtime:x"},
		{"heartbeat reply", `[null,"7","phoenix","phx_reply",{"status":"ok","response":{}}]`, true, "", "phoenix"},
		{"extra elements ignored", `["1","2","t","e",{},"extra",[1]]`, true, "1", "t"},
		{"whitespace", " [ \"1\" , null , \"t\" , \"e\" , [ ] ] ", true, "1", "t"},
		{"escaped topic", `[null,null,"a\"b","e",1]`, true, "", `a"b`},
		{"object frame (vsn 1)", `{"topic":"t"}`, false, "", ""},
		{"four elements", `["1","2","t","e"]`, false, "", ""},
		{"numeric ref", `[1,"2","t","e",{}]`, false, "", ""},
		{"unterminated", `["1","2","t","e",{"a":[1,2}]`, false, "", ""},
		{"control char in string", "[null,null,\"a\x01\",\"e\",{}]", false, "", ""},
		{"empty", ``, false, "", ""},
	}
	for _, tt := range tests {
		f, err := parseFrame([]byte(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
			continue
		}
		if tt.ok && (string(f.joinRef) != tt.joinRef || string(f.topic) != tt.topic) {
			t.Errorf("%s: joinRef %q topic %q", tt.name, f.joinRef, f.topic)
		}
	}
}

func TestParseChangeNullsAndErrors(t *testing.T) {
	c, err := parseChange([]byte(`{"ids":[],"data":{"type":"DELETE","old_record":{"id":1},"errors":null}}`), nil)
	if err != nil || c.hasRecord || len(c.ids) != 0 {
		t.Fatalf("delete: %+v %v", c, err)
	}
	c, err = parseChange([]byte(`{"ids":[3],"data":{"record":{"gateway_message":null,"status":"PENDING"}}}`), nil)
	if err != nil || c.gatewayMessage != nil || string(c.status) != "PENDING" {
		t.Fatalf("null gateway_message: %+v %v", c, err)
	}
	for _, bad := range []string{`{"ids":[1.5]}`, `{"ids":["1"]}`, `{"data":{"record":[]}}`, `{"ids":[1]} x`, `[]`} {
		if _, err := parseChange([]byte(bad), nil); err == nil {
			t.Errorf("parseChange(%s) accepted", bad)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-25T16:58:29.779123+00:00", time.Date(2026, 11, 25, 16, 58, 29, 779123000, time.UTC)},
		{"2026-11-25T16:58:29+00:00", time.Date(2026, 11, 25, 16, 58, 29, 0, time.UTC)},
		{"2026-11-25T16:58:29.779Z", time.Date(2026, 11, 25, 16, 58, 29, 779000000, time.UTC)},
		{"2026-11-25T18:58:29.5+02:00", time.Date(2026, 11, 25, 16, 58, 29, 500000000, time.UTC)},
		{"2026-11-25T12:58:29.123456789-04:00", time.Date(2026, 11, 25, 16, 58, 29, 123456789, time.UTC)},
	}
	for _, tt := range tests {
		got, ok := parseTimestamp([]byte(tt.in))
		if !ok || !got.Equal(tt.want) {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %v", tt.in, got, ok, tt.want)
		}
	}
	for _, bad := range []string{"", "2026-02-30T00:00:00Z", "2026-11-25 16:58:29+00:00", "2026-11-25T16:58:29.+00:00", "yesterday"} {
		if _, ok := parseTimestamp([]byte(bad)); ok {
			t.Errorf("parseTimestamp(%q) accepted", bad)
		}
	}
}

// FuzzParseFrame checks that hostile frames never panic, and that whenever
// encoding/json reads a frame as an array of at least five elements with
// string topic and event, the scanner agrees on both.
func FuzzParseFrame(f *testing.F) {
	f.Add(sampleChange)
	f.Add(`["6","6","realtime:x","phx_reply",{"status":"ok","response":{"postgres_changes":[{"id":1}]}}]`)
	f.Add(`[null,null,"t","e",{"ids":[1],"data":{"record":{"updated_at":"2026-11-25T16:58:29Z"}}}]`)
	f.Add(`[[[[[[[[[[`)
	f.Fuzz(func(t *testing.T, in string) {
		fr, err := parseFrame([]byte(in))
		if err == nil {
			_, _ = parseChange(fr.payload, nil)
			if c, err := parseChange(fr.payload, nil); err == nil && c.updatedAt != nil {
				_, _ = parseTimestamp(c.updatedAt)
			}
		}
		var arr []json.RawMessage
		// encoding/json replaces invalid UTF-8; the scanner keeps bytes as sent.
		if !utf8.ValidString(in) || json.Unmarshal([]byte(in), &arr) != nil || len(arr) < 5 {
			return
		}
		var topic, event string
		if json.Unmarshal(arr[2], &topic) != nil || json.Unmarshal(arr[3], &event) != nil {
			return
		}
		var jr, ref *string
		if json.Unmarshal(arr[0], &jr) != nil || json.Unmarshal(arr[1], &ref) != nil {
			return
		}
		if err != nil {
			t.Fatalf("encoding/json reads %q as a frame, the scanner refused: %v", in, err)
		}
		if string(fr.topic) != topic || string(fr.event) != event {
			t.Fatalf("scanner read topic %q event %q, encoding/json %q %q", fr.topic, fr.event, topic, event)
		}
	})
}

func BenchmarkParseChangeFrame(b *testing.B) {
	in := []byte(sampleChange)
	ids := make([]int64, 0, 4)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		f, err := parseFrame(in)
		if err != nil {
			b.Fatal(err)
		}
		c, err := parseChange(f.payload, ids)
		if err != nil {
			b.Fatal(err)
		}
		if _, ok := parseTimestamp(c.updatedAt); !ok {
			b.Fatal("timestamp")
		}
	}
}

func BenchmarkParseChangeFrameEncodingJSON(b *testing.B) {
	in := []byte(sampleChange)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		var arr []json.RawMessage
		if err := json.Unmarshal(in, &arr); err != nil {
			b.Fatal(err)
		}
		var p struct {
			IDs  []int64 `json:"ids"`
			Data struct {
				Record struct {
					Status         string `json:"status"`
					GatewayMessage string `json:"gateway_message"`
					UpdatedAt      string `json:"updated_at"`
					ReferenceID    string `json:"reference_id"`
				} `json:"record"`
			} `json:"data"`
		}
		if err := json.Unmarshal(arr[4], &p); err != nil {
			b.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, p.Data.Record.UpdatedAt); err != nil {
			b.Fatal(err)
		}
	}
}
