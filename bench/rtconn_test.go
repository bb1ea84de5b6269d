package bench

import (
	"testing"
)

// The join payload is byte for byte what supabase-js 2.119.0 sends for the
// product snippet (realtime-protocol.md §4).
func TestJoinPayloadMatchesSupabaseJS(t *testing.T) {
	got := string(joinPayloadFor("ref_123", "JWT"))
	want := `{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","filter":"reference_id=eq.ref_123"}],"private":false},"access_token":"JWT"}`
	if got != want {
		t.Fatalf("join payload\n got %s\nwant %s", got, want)
	}
}

func TestReadJoinReply(t *testing.T) {
	tests := []struct {
		name, payload string
		ok            bool
		id            int64
	}{
		{"ok", `{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","filter":"reference_id=eq.x","id":1001}]}}`, true, 1001},
		{"refused", `{"status":"error","response":{"reason":"Unauthorized: You do not have permissions to read from this Channel topic: x"}}`, false, 0},
		{"no id", `{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status"}]}}`, false, 0},
		{"string id", `{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"checkout_payment_intent_public_status","id":"1001"}]}}`, false, 0},
		{"other table", `{"status":"ok","response":{"postgres_changes":[{"event":"*","schema":"public","table":"t","id":1}]}}`, false, 0},
		{"not json", `{`, false, 0},
	}
	for _, tt := range tests {
		ok, id, reason := readJoinReply([]byte(tt.payload))
		if ok != tt.ok || id != tt.id || (!ok && reason == "") {
			t.Errorf("%s: ok=%v id=%d reason=%q", tt.name, ok, id, reason)
		}
	}
}

func TestRealtimeURL(t *testing.T) {
	got, err := realtimeURL("http://127.0.0.1:8080/", "a b")
	if err != nil || got != "ws://127.0.0.1:8080/realtime/v1/websocket?apikey=a+b&vsn=2.0.0" {
		t.Fatalf("realtimeURL = %q, %v", got, err)
	}
	if _, err := realtimeURL("ftp://x", "k"); err == nil {
		t.Fatal("ftp URL accepted")
	}
}

func TestTouchBatchRoundTrip(t *testing.T) {
	e := &env{runID: "0a1b2c3d"}
	for _, b := range []int64{0, 1, 42, 1 << 40} {
		got, ok := e.touchBatch([]byte(e.touchMessage(b)))
		if !ok || got != b {
			t.Errorf("batch %d read back as %d, %v", b, got, ok)
		}
	}
	other := &env{runID: "ffffffff"}
	for _, msg := range []string{other.touchMessage(7), "bench-42", "", "bench-0a1b2c3d-", "bench-0a1b2c3d-x", "insufficient funds"} {
		if _, ok := e.touchBatch([]byte(msg)); ok {
			t.Errorf("touchBatch(%q) accepted a message of another run", msg)
		}
	}
}
