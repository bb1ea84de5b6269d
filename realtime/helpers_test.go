package realtime

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
)

var testSecret = []byte("test-secret-of-this-installation")

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// signToken signs claims with HS256 under secret.
func signToken(secret []byte, claims map[string]any) string {
	return signRaw(secret, `{"alg":"HS256","typ":"JWT"}`, claims)
}

func signRaw(secret []byte, header string, claims map[string]any) string {
	c, _ := json.Marshal(claims)
	h64 := base64.RawURLEncoding.EncodeToString([]byte(header))
	c64 := base64.RawURLEncoding.EncodeToString(c)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(h64 + "." + c64))
	return h64 + "." + c64 + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func anonKey() string {
	return signToken(testSecret, map[string]any{"role": "anon", "iss": "dollr", "exp": time.Now().Add(time.Hour).Unix()})
}

// itemsTable is a generic table covering the column kinds the filters cast to.
var itemsTable = Table{Schema: "public", Name: "items", Key: []string{"id"}, Columns: []dollr.Column{
	{Name: "id", Type: "int8"},
	{Name: "ref", Type: "uuid"},
	{Name: "name", Type: "text"},
	{Name: "amount", Type: "numeric"},
	{Name: "done", Type: "bool"},
	{Name: "at", Type: "timestamptz"},
	{Name: "meta", Type: "jsonb"},
	{Name: "score", Type: "float8"},
}}

var statusTable = Table{Schema: dollr.PublicSchema, Name: dollr.PublicStatusTable,
	Columns: dollr.PublicStatusColumns, Key: []string{dollr.PublicStatusKey}}

type testServer struct {
	*Server
	url  string // the websocket endpoint
	base string // http://host:port
	reg  *prometheus.Registry
}

// startServer runs a Server behind an httptest server on 127.0.0.1:0; both stop with the test.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith is startServer with setup run on the Server before it
// serves anything (to replace its clock, say, without a data race).
func startServerWith(t *testing.T, cfg Config, setup func(*Server)) *testServer {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	if cfg.Tables == nil {
		cfg.Tables = []Table{itemsTable, statusTable}
	}
	if cfg.JoinErrorDelay == 0 {
		cfg.JoinErrorDelay = -1
	}
	if strings.HasPrefix(t.Name(), "TestWithoutPoller/") {
		cfg.NoPoller = true
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := New(cfg)
	if setup != nil {
		setup(s)
	}
	mux := http.NewServeMux()
	mux.Handle("/realtime/v1/websocket", s)
	mux.Handle("/socket/websocket", s)
	mux.Handle("/realtime/v1/api/broadcast", s.BroadcastHandler())
	mux.Handle("/realtime/v1/api/broadcast/", s.BroadcastHandler())
	hs := httptest.NewUnstartedServer(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs.Listener.Close() // httptest's own, which would linger until a finalizer closed it
	hs.Listener = l
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		hs.Close()
	})
	return &testServer{Server: s, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/realtime/v1/websocket", base: hs.URL, reg: reg}
}

// msg is one decoded server message.
type msg struct {
	JoinRef *string
	Ref     *string
	Topic   string
	Event   string
	Payload json.RawMessage
	Raw     string
	Binary  []byte
}

func (m msg) payload() map[string]any {
	var p map[string]any
	d := json.NewDecoder(strings.NewReader(string(m.Payload)))
	d.UseNumber()
	_ = d.Decode(&p)
	return p
}

// client is a minimal Phoenix/Supabase protocol client for tests.
type client struct {
	t    *testing.T
	conn net.Conn
	vsn  string
	in   chan msg
	done chan struct{}
	wmu  sync.Mutex
	ref  int
}

func dial(t *testing.T, srv *testServer, vsn string) *client {
	t.Helper()
	return dialKey(t, srv, vsn, anonKey())
}

func dialKey(t *testing.T, srv *testServer, vsn, key string) *client {
	t.Helper()
	u := srv.url + "?apikey=" + url.QueryEscape(key) + "&log_level=info"
	if vsn != "" {
		u += "&vsn=" + vsn
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{}.Dial(ctx, u)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &client{t: t, conn: conn, vsn: vsn, in: make(chan msg, 4096), done: make(chan struct{})}
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	go c.readLoop(struct {
		io.Reader
		io.Writer
	}{r, conn})
	t.Cleanup(func() { conn.Close(); <-c.done })
	return c
}

func (c *client) readLoop(rw io.ReadWriter) {
	defer close(c.done)
	defer close(c.in)
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			return
		}
		if op == ws.OpBinary {
			c.in <- msg{Binary: data}
			continue
		}
		m, err := decodeTestMsg(c.vsn, data)
		if err != nil {
			c.t.Errorf("undecodable server message %q: %v", data, err)
			return
		}
		c.in <- m
	}
}

func decodeTestMsg(vsn string, data []byte) (msg, error) {
	m := msg{Raw: string(data)}
	if strings.HasPrefix(vsn, "2") {
		var a []json.RawMessage
		if err := json.Unmarshal(data, &a); err != nil || len(a) != 5 {
			return m, fmt.Errorf("not a 5-array: %v", err)
		}
		if err := json.Unmarshal(a[0], &m.JoinRef); err != nil {
			return m, err
		}
		if err := json.Unmarshal(a[1], &m.Ref); err != nil {
			return m, err
		}
		if err := json.Unmarshal(a[2], &m.Topic); err != nil {
			return m, err
		}
		if err := json.Unmarshal(a[3], &m.Event); err != nil {
			return m, err
		}
		m.Payload = a[4]
		return m, nil
	}
	var o struct {
		Topic   string          `json:"topic"`
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
		Ref     *string         `json:"ref"`
		JoinRef *string         `json:"join_ref"`
	}
	if err := json.Unmarshal(data, &o); err != nil {
		return m, err
	}
	m.Topic, m.Event, m.Payload, m.Ref, m.JoinRef = o.Topic, o.Event, o.Payload, o.Ref, o.JoinRef
	return m, nil
}

func (c *client) nextRef() string {
	c.ref++
	return fmt.Sprint(c.ref)
}

// push sends one message; joinRef "" means null.
func (c *client) push(joinRef, ref, topic, event string, payload any) {
	c.t.Helper()
	c.writeRaw(ws.OpText, c.frameBytes(joinRef, ref, topic, event, payload))
}

// frameBytes is the message push sends, in the client's serializer.
func (c *client) frameBytes(joinRef, ref, topic, event string, payload any) []byte {
	c.t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		c.t.Fatal(err)
	}
	var data []byte
	jr, r := any(nil), any(nil)
	if joinRef != "" {
		jr = joinRef
	}
	if ref != "" {
		r = ref
	}
	if strings.HasPrefix(c.vsn, "2") {
		data, _ = json.Marshal([]any{jr, r, topic, event, json.RawMessage(p)})
	} else {
		data, _ = json.Marshal(map[string]any{"topic": topic, "event": event, "payload": json.RawMessage(p), "ref": r, "join_ref": jr})
	}
	return data
}

func (c *client) writeRaw(op ws.OpCode, data []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := wsutil.WriteClientMessage(c.conn, op, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeRejected writes a message the server is expected to refuse and close
// on as soon as it has read its header: the rest of the write may then find
// the socket closed, which is not an error here.
func (c *client) writeRejected(op ws.OpCode, data []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = wsutil.WriteClientMessage(c.conn, op, data)
}

// next returns the next message, failing after 5s.
func (c *client) next() msg {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if !ok {
			c.t.Fatal("connection closed while waiting for a message")
		}
		return m
	case <-time.After(5 * time.Second):
		c.t.Fatal("no message within 5s")
	}
	return msg{}
}

// nextEvent returns the next message, which must have the given event.
func (c *client) nextEvent(event string) msg {
	c.t.Helper()
	m := c.next()
	if m.Event != event {
		c.t.Fatalf("got %s, want event %q", m.Raw, event)
	}
	return m
}

// quiet asserts that no message arrives within d (used only to show something is NOT sent).
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case m, ok := <-c.in:
		if ok {
			c.t.Fatalf("unexpected message %s", m.Raw)
		}
	case <-time.After(d):
	}
}

// waitClosed waits until the server closes the connection.
func (c *client) waitClosed() {
	c.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-c.in:
			if !ok {
				return
			}
		case <-deadline:
			c.t.Fatal("connection not closed within 10s")
		}
	}
}

// productJoin is the product snippet's join payload (realtime-protocol.md §4).
func productJoin(token, referenceID string) map[string]any {
	p := map[string]any{"config": map[string]any{
		"broadcast": map[string]any{"ack": false, "self": false},
		"presence":  map[string]any{"key": "", "enabled": false},
		"postgres_changes": []any{map[string]any{"event": "*", "schema": "public",
			"table": dollr.PublicStatusTable, "filter": "reference_id=eq." + referenceID}},
		"private": false,
	}}
	if token != "" {
		p["access_token"] = token
	}
	return p
}

func joinPayload(token string, bindings ...map[string]any) map[string]any {
	pc := make([]any, len(bindings))
	for i, b := range bindings {
		pc[i] = b
	}
	p := map[string]any{"config": map[string]any{
		"broadcast":        map[string]any{"ack": false, "self": false},
		"presence":         map[string]any{"key": "", "enabled": false},
		"postgres_changes": pc, "private": false,
	}}
	if token != "" {
		p["access_token"] = token
	}
	return p
}

// joinOK joins topic and consumes the ok reply and, with bindings, the system message.
func (c *client) joinOK(topic string, payload map[string]any) (joinRef string, reply map[string]any) {
	c.t.Helper()
	ref := c.nextRef()
	c.push(ref, ref, topic, "phx_join", payload)
	m := c.nextEvent("phx_reply")
	p := m.payload()
	if p["status"] != "ok" {
		c.t.Fatalf("join failed: %s", m.Raw)
	}
	if pcs, _ := payload["config"].(map[string]any)["postgres_changes"].([]any); len(pcs) > 0 {
		s := c.nextEvent("system")
		if sp := s.payload(); sp["status"] != "ok" || sp["message"] != "Subscribed to PostgreSQL" {
			c.t.Fatalf("subscription failed: %s", s.Raw)
		}
	}
	return ref, p
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// joinWithoutReading opens a socket with a small receive buffer that joins a
// channel on the items table and then never reads, so the server's writes to
// it soon block. The socket closes with the test.
func joinWithoutReading(t *testing.T, srv *testServer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dialer{}.Dial(ctx, srv.url+"?vsn=2.0.0&apikey="+anonKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	join, _ := json.Marshal([]any{"1", "1", "realtime:room", "phx_join", joinPayload("", map[string]any{"event": "*", "schema": "public", "table": "items"})})
	if err := wsutil.WriteClientText(conn, join); err != nil {
		t.Fatal(err)
	}
	eventually(t, "channel joined", func() bool { return counterValue(t, srv.reg, "dollr_realtime_channels", nil) == 1 })
}

// floodItems publishes up to 400 item inserts carrying size bytes each, until done.
func floodItems(srv *testServer, size int, done func() bool) {
	big := strings.Repeat("x", size)
	for i := 0; i < 400 && !done(); i++ {
		ch := itemInsert(int64(i), uint64(i+1))
		ch.Record["name"] = big
		srv.Publish([]change{ch})
	}
}

// eventually waits for cond with a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
