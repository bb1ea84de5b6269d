package realtime

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// Heartbeats are answered on the reader without the full decoder; the reply
// must be the one the full decoder gives, ref echoed byte for byte.
func TestHeartbeatFastPathReplies(t *testing.T) {
	srv := startServer(t, Config{})
	for _, tc := range []struct {
		vsn, send, want string
	}{
		{"2.0.0", `[null,"12","phoenix","heartbeat",{}]`,
			`[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{"2.0.0", `[null,"a \"q\" \\ \u00e9 ü \/","phoenix","heartbeat",{}]`,
			`[null,"a \"q\" \\ \u00e9 ü \/","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{"1.0.0", `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"12"}`,
			`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"12","join_ref":null}`},
		{"1.0.0", `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"x\"\n\u2028","join_ref":null}`,
			`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"x\"\n\u2028","join_ref":null}`},
		// Shapes the fast path leaves to the full decoder, answered the same way.
		{"2.0.0", `[null, "9" ,"phoenix","heartbeat",{}]`,
			`[null,"9","phoenix","phx_reply",{"status":"ok","response":{}}]`},
		{"1.0.0", `{"ref":"3","topic":"phoenix","event":"heartbeat","payload":{}}`,
			`{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3","join_ref":null}`},
	} {
		c := dial(t, srv, tc.vsn)
		c.writeRaw(ws.OpText, []byte(tc.send))
		if got := c.next().Raw; got != tc.want {
			t.Errorf("vsn %s, sent %s:\n got %s\nwant %s", tc.vsn, tc.send, got, tc.want)
		}
	}
}

func TestHeartbeatRef(t *testing.T) {
	for _, tc := range []struct {
		v    version
		in   string
		want string // "" when the fast path must decline
	}{
		{vsn2, `[null,"7","phoenix","heartbeat",{}]`, `"7"`},
		{vsn2, `[null,"a\"b\\c\u00e9\n","phoenix","heartbeat",{}]`, `"a\"b\\c\u00e9\n"`},
		{vsn2, `[null,"ü","phoenix","heartbeat",{}]`, `"ü"`},
		{vsn1, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}`, `"7"`},
		{vsn1, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7","join_ref":null}`, `"7"`},
		// Declined: the full decoder handles these.
		{vsn1, `[null,"7","phoenix","heartbeat",{}]`, ""},
		{vsn2, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}`, ""},
		{vsn2, `[null,7,"phoenix","heartbeat",{}]`, ""},
		{vsn2, `[null,null,"phoenix","heartbeat",{}]`, ""},
		{vsn2, `["1","7","phoenix","heartbeat",{}]`, ""},
		{vsn2, `[null,"7","phoenix","heartbeat",{}] `, ""},
		{vsn2, `[null,"7","phoenix","heartbeat",{"a":1}]`, ""},
		{vsn2, `[null,"7","phoenix","phx_join",{}]`, ""},
		{vsn2, "[null,\"7\x01\",\"phoenix\",\"heartbeat\",{}]", ""},
		{vsn2, `[null,"7\x","phoenix","heartbeat",{}]`, ""},
		{vsn2, `[null,"7\u12g4","phoenix","heartbeat",{}]`, ""},
		{vsn2, `[null,"7\`, ""},
		{vsn2, `[null,"7`, ""},
		{vsn2, `[null,`, ""},
		{vsn1, `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7","join_ref":"1"}`, ""},
	} {
		ref, ok := heartbeatRef(tc.v, []byte(tc.in))
		if got := string(ref); ok != (tc.want != "") || (ok && got != tc.want) {
			t.Errorf("heartbeatRef(%d, %s) = %s, %v; want %s", tc.v, tc.in, got, ok, tc.want)
		}
	}
}

func TestHeartbeatReplyMatchesReply(t *testing.T) {
	for _, v := range []version{vsn1, vsn2} {
		ref := []byte(`"a\"b"`)
		want := encodeFrame(v, nil, ref, "phoenix", "phx_reply", []byte(`{"status":"ok","response":{}}`))
		if got := heartbeatReply(v, ref); !bytes.Equal(got, want) {
			t.Errorf("vsn %d: got %s, want %s", v, got, want)
		}
	}
}

// FuzzHeartbeatRef checks that the fast path accepts only heartbeats the full
// decoder accepts too, with the same ref.
func FuzzHeartbeatRef(f *testing.F) {
	for _, s := range []string{
		`[null,"7","phoenix","heartbeat",{}]`,
		`[null,"a\"b\\c\u00e9","phoenix","heartbeat",{}]`,
		`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}`,
		`{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"\/","join_ref":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, v := range []version{vsn1, vsn2} {
			ref, ok := heartbeatRef(v, []byte(s))
			if !ok {
				continue
			}
			fr, err := decodeFrame(v, []byte(s))
			if err != nil || fr.topic != "phoenix" || fr.event != "heartbeat" || !bytes.Equal(fr.ref, ref) {
				t.Fatalf("vsn %d: fast path took %q (ref %s); full decoder: %+v, %v", v, s, ref, fr, err)
			}
		}
	})
}

func BenchmarkHeartbeatRef(b *testing.B) {
	msg := []byte(`[null,"7","phoenix","heartbeat",{}]`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := heartbeatRef(vsn2, msg); !ok {
			b.Fatal("not a heartbeat")
		}
	}
}
