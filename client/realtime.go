package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dollr/dollr"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// ChannelStatus is what a channel's status callback receives; the values are
// supabase-js's subscribe() states.
type ChannelStatus string

const (
	ChannelSubscribed ChannelStatus = "SUBSCRIBED"
	ChannelError      ChannelStatus = "CHANNEL_ERROR"
	ChannelClosed     ChannelStatus = "CLOSED"
	ChannelTimedOut   ChannelStatus = "TIMED_OUT"
)

// RealtimeOptions configures a realtime connection. Zero values take the
// supabase-js defaults.
type RealtimeOptions struct {
	// APIKey is the anon key, sent as ?apikey= (supabase_anon_key).
	APIKey string
	// Vsn is the serializer: "2.0.0" (default, arrays) or "1.0.0" (objects).
	Vsn string
	// Params are extra query parameters, placed before vsn as supabase-js does.
	Params url.Values
	// HeartbeatInterval between heartbeats; default 25 s. A heartbeat still
	// unanswered at the next tick closes the socket ("heartbeat timeout").
	// Negative disables heartbeats.
	HeartbeatInterval time.Duration
	// JoinTimeout is how long a join may wait for its reply before the
	// channel reports TIMED_OUT; default 10 s.
	JoinTimeout time.Duration
	// WriteTimeout bounds each frame write; default 10 s.
	WriteTimeout time.Duration
	// ReadBufferSize is the socket's read buffer; default 1024 bytes, which
	// keeps thousands of idle sockets cheap.
	ReadBufferSize int
	// MaxMessageSize caps one incoming message; default 16 MiB.
	MaxMessageSize int64
	// NetDial replaces the TCP dialer (a load tool spreads source addresses
	// with it).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OnClose is called once when the socket ends: nil after Close, otherwise
	// the cause.
	OnClose func(err error)
}

// RealtimeURL returns the WebSocket URL supabase-js connects to for a
// project URL: ws(s)://host/realtime/v1/websocket?apikey=...&vsn=...
func RealtimeURL(supabaseURL string, opts RealtimeOptions) (string, error) {
	u, err := url.Parse(supabaseURL)
	if err != nil {
		return "", fmt.Errorf("realtime: invalid URL %q: %w", supabaseURL, err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("realtime: invalid URL %q: scheme must be http(s) or ws(s)", supabaseURL)
	}
	if u.Host == "" {
		return "", fmt.Errorf("realtime: invalid URL %q: no host", supabaseURL)
	}
	if opts.APIKey == "" {
		return "", errors.New("realtime: API key is required to connect to Realtime")
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/realtime/v1/websocket"
	u.RawPath = ""
	// Build the query by hand to keep supabase-js's order: apikey, params, vsn.
	var q strings.Builder
	q.WriteString("apikey=")
	q.WriteString(url.QueryEscape(opts.APIKey))
	if len(opts.Params) > 0 {
		q.WriteByte('&')
		q.WriteString(opts.Params.Encode())
	}
	q.WriteString("&vsn=")
	q.WriteString(url.QueryEscape(vsnOrDefault(opts.Vsn)))
	u.RawQuery = q.String()
	return u.String(), nil
}

func vsnOrDefault(v string) string {
	if v == "" {
		return "2.0.0"
	}
	return v
}

// RealtimeConn is one WebSocket to a Supabase-Realtime-compatible server.
// Many channels can be joined on it. It does not reconnect: when the socket
// ends every channel gets CHANNEL_ERROR (or CLOSED after Close) and the owner
// decides what to do, e.g. fall back to polling.
//
// Callbacks run on the connection's reader goroutine (a join timeout runs on
// a timer); those of one channel never run concurrently. They must not block
// for long: the next frame is read only after they return.
type RealtimeConn struct {
	opts RealtimeOptions
	vsn1 bool
	conn net.Conn
	src  io.Reader
	done chan struct{}

	wmu  sync.Mutex // serializes frame writes
	wbuf []byte

	mu        sync.Mutex
	ref       uint64
	channels  map[string]*Channel
	hbRef     string // ref of the unanswered heartbeat, "" if none
	hbTimer   *time.Timer
	closed    bool
	byClient  bool  // Close was called
	failCause error // why the socket is being torn down, if known before the read error
	err       error // final cause, set when done closes
}

// DialRealtime connects to supabaseURL's realtime endpoint.
func DialRealtime(ctx context.Context, supabaseURL string, opts RealtimeOptions) (*RealtimeConn, error) {
	wsURL, err := RealtimeURL(supabaseURL, opts)
	if err != nil {
		return nil, err
	}
	if opts.HeartbeatInterval == 0 {
		opts.HeartbeatInterval = 25 * time.Second
	}
	if opts.JoinTimeout <= 0 {
		opts.JoinTimeout = 10 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.ReadBufferSize == 0 {
		opts.ReadBufferSize = 1024
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 16 << 20
	}
	var statusBody string
	d := ws.Dialer{
		NetDial: opts.NetDial,
		OnStatusError: func(status int, reason []byte, r io.Reader) {
			// Read the body only when its length is known: reading to EOF
			// would wait for the server to close the connection.
			resp, err := http.ReadResponse(bufio.NewReader(r), nil)
			if err != nil || resp.ContentLength < 0 {
				return
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, min(resp.ContentLength, 1024)))
			statusBody = strings.TrimSpace(string(b))
		},
	}
	conn, br, _, err := d.Dial(ctx, wsURL)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, &UpgradeError{StatusCode: int(se), Body: statusBody}
		}
		return nil, fmt.Errorf("realtime: dial: %w", err)
	}
	c := &RealtimeConn{
		opts:     opts,
		vsn1:     strings.HasPrefix(vsnOrDefault(opts.Vsn), "1."),
		conn:     conn,
		done:     make(chan struct{}),
		channels: make(map[string]*Channel),
	}
	switch {
	case br != nil:
		// The server sent frames right behind the handshake; they sit in br.
		c.src = br
	case opts.ReadBufferSize > 0:
		c.src = bufio.NewReaderSize(conn, opts.ReadBufferSize)
	default:
		c.src = conn
	}
	if opts.HeartbeatInterval > 0 {
		c.hbTimer = time.AfterFunc(opts.HeartbeatInterval, c.heartbeat)
	}
	go c.readLoop()
	return c, nil
}

// UpgradeError is a refused WebSocket upgrade (e.g. 401 for a bad apikey).
type UpgradeError struct {
	StatusCode int
	Body       string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("realtime: upgrade refused: %d %s", e.StatusCode, e.Body)
}

// Done is closed when the socket has ended and every callback has run.
func (c *RealtimeConn) Done() <-chan struct{} { return c.done }

// Err returns why the socket ended (nil after Close, or while it is open).
func (c *RealtimeConn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the socket; its channels get CLOSED. It does not wait for the
// callbacks (wait on Done for that), so it may be called from a callback.
func (c *RealtimeConn) Close() error {
	c.mu.Lock()
	if c.closed || c.byClient {
		c.mu.Unlock()
		return nil
	}
	c.byClient = true
	c.mu.Unlock()
	c.wmu.Lock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.wmu.Unlock()
	return c.conn.Close()
}

func (c *RealtimeConn) nextRef() string {
	c.ref++
	return strconv.FormatUint(c.ref, 10)
}

// send writes one frame.
func (c *RealtimeConn) send(f frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = encodeFrame(c.wbuf[:0], f, c.vsn1)
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	err := wsutil.WriteClientText(c.conn, c.wbuf)
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not pin a large buffer to an idle socket
	}
	return err
}

var errHeartbeatTimeout = errors.New("heartbeat timeout")

func (c *RealtimeConn) heartbeat() {
	c.mu.Lock()
	if c.closed || c.byClient {
		c.mu.Unlock()
		return
	}
	if c.hbRef != "" {
		c.failCause = errHeartbeatTimeout
		c.mu.Unlock()
		c.conn.Close() // the reader sees the error and tears down
		return
	}
	ref := c.nextRef()
	c.hbRef = ref
	c.hbTimer.Reset(c.opts.HeartbeatInterval)
	c.mu.Unlock()
	if err := c.send(frame{Ref: ref, Topic: "phoenix", Event: "heartbeat"}); err != nil {
		c.conn.Close()
	}
}

func (c *RealtimeConn) readLoop() {
	rd := &wsutil.Reader{
		Source:         c.src,
		State:          ws.StateClientSide,
		MaxMessageSize: c.opts.MaxMessageSize,
	}
	rd.OnIntermediate = func(h ws.Header, r io.Reader) error { return c.control(h, r) }
	var buf bytes.Buffer
	var err error
	for {
		var hdr ws.Header
		hdr, err = rd.NextFrame()
		if err != nil {
			break
		}
		if hdr.OpCode.IsControl() {
			if err = c.control(hdr, rd); err != nil {
				break
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			// Binary frames carry broadcasts (kind 4), which this client
			// does not subscribe to.
			if err = rd.Discard(); err != nil {
				break
			}
			continue
		}
		buf.Reset()
		if _, err = buf.ReadFrom(rd); err != nil {
			break
		}
		c.handle(buf.Bytes(), time.Now())
		if buf.Cap() > 64<<10 {
			buf = bytes.Buffer{}
		}
	}
	c.teardown(err)
}

// closeError is a close frame from the server.
type closeError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("socket closed: %d %s", e.code, e.reason)
}

// control answers pings and close frames.
func (c *RealtimeConn) control(h ws.Header, r io.Reader) error {
	p, err := io.ReadAll(io.LimitReader(r, 125))
	if err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		c.wmu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		err = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewPongFrame(p)))
		c.wmu.Unlock()
		return err
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		c.wmu.Lock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
		c.wmu.Unlock()
		return &closeError{code: code, reason: reason}
	}
	return nil
}

// teardown runs once on the reader goroutine when the socket ends.
func (c *RealtimeConn) teardown(readErr error) {
	c.mu.Lock()
	c.closed = true
	err := readErr
	if c.byClient {
		err = nil
	} else if c.failCause != nil {
		err = c.failCause
	} else if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	chans := make([]*Channel, 0, len(c.channels))
	for _, ch := range c.channels {
		if ch.timer != nil {
			ch.timer.Stop()
		}
		ch.state = chanClosed
		chans = append(chans, ch)
	}
	c.channels = nil
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	c.err = err
	c.mu.Unlock()
	c.conn.Close()
	for _, ch := range chans {
		if err == nil {
			ch.status(ChannelClosed, nil)
		} else {
			ch.status(ChannelError, err)
		}
	}
	if c.opts.OnClose != nil {
		c.opts.OnClose(err)
	}
	close(c.done)
}

// handle dispatches one text frame.
func (c *RealtimeConn) handle(b []byte, at time.Time) {
	f, err := decodeFrame(b)
	if err != nil {
		return // a frame this client cannot read concerns no channel it knows
	}
	if f.Topic == "phoenix" {
		if f.Event == "phx_reply" {
			c.mu.Lock()
			if f.Ref != "" && f.Ref == c.hbRef {
				c.hbRef = ""
			}
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	ch := c.channels[f.Topic]
	if ch == nil || (f.JoinRef != "" && f.JoinRef != ch.joinRef) {
		// Unknown topic, or a frame for an earlier join (Phoenix's isMember).
		c.mu.Unlock()
		return
	}
	switch f.Event {
	case "phx_reply":
		if f.Ref != ch.joinRef || ch.state != chanJoining {
			c.mu.Unlock() // a leave or access_token reply
			return
		}
		if ch.timer != nil {
			ch.timer.Stop()
			ch.timer = nil
		}
		st, cerr := ch.joinReply(f.Payload)
		leaveRef := ""
		if st == ChannelSubscribed {
			ch.state = chanJoined
		} else {
			ch.state = chanClosed
			delete(c.channels, ch.topic)
			if cerr == errBindingsMismatch {
				leaveRef = c.nextRef()
			}
		}
		joinRef := ch.joinRef
		c.mu.Unlock()
		if leaveRef != "" {
			// supabase-js leaves, then reports CLOSED and CHANNEL_ERROR.
			_ = c.send(frame{JoinRef: joinRef, Ref: leaveRef, Topic: ch.topic, Event: "phx_leave"})
			ch.status(ChannelClosed, nil)
		}
		ch.status(st, cerr)
	case "postgres_changes":
		joined := ch.state == chanJoined
		c.mu.Unlock()
		if joined {
			ch.change(f.Payload, at)
		}
	case "system":
		c.mu.Unlock()
		if ch.opts.OnSystem != nil {
			var m SystemMessage
			if json.Unmarshal(f.Payload, &m) == nil {
				ch.cbMu.Lock()
				ch.opts.OnSystem(m)
				ch.cbMu.Unlock()
			}
		}
	case "phx_close", "phx_error":
		if f.Ref != "" && f.Ref != ch.joinRef {
			c.mu.Unlock()
			return
		}
		if ch.timer != nil {
			ch.timer.Stop()
			ch.timer = nil
		}
		ch.state = chanClosed
		delete(c.channels, ch.topic)
		c.mu.Unlock()
		if f.Event == "phx_close" {
			ch.status(ChannelClosed, nil)
		} else {
			ch.status(ChannelError, errors.New("channel error: transport failure"))
		}
	default:
		c.mu.Unlock()
	}
}

// PostgresChangesFilter is one postgres_changes binding, sent in phx_join
// exactly as supabase-js sends the object the app passed to .on(). Empty Table
// and Filter are left out.
type PostgresChangesFilter struct {
	Event  string `json:"event"` // "*", "INSERT", "UPDATE", "DELETE"
	Schema string `json:"schema"`
	Table  string `json:"table,omitempty"`
	Filter string `json:"filter,omitempty"` // e.g. reference_id=eq.<uuid>
}

// ChannelOptions configures a channel join.
type ChannelOptions struct {
	// AccessToken is the user JWT (a realtime key), sent in phx_join.
	AccessToken     string
	PostgresChanges []PostgresChangesFilter
	Private         bool
	// OnStatus receives SUBSCRIBED, CHANNEL_ERROR, CLOSED or TIMED_OUT. Every
	// status but SUBSCRIBED ends the channel: this client does not rejoin.
	OnStatus func(status ChannelStatus, err error)
	// OnChange receives each postgres_changes event that matches a binding.
	OnChange func(ev *PostgresChange)
	// OnSystem receives system messages ("Subscribed to PostgreSQL", errors).
	OnSystem func(m SystemMessage)
	// JoinTimeout overrides the connection's JoinTimeout for this join.
	JoinTimeout time.Duration
	// RawChanges leaves Record/OldRecord/Columns undecoded (Data still holds
	// the event's data object): cheaper for load tools.
	RawChanges bool
}

// SystemMessage is the payload of a system event.
type SystemMessage struct {
	Extension string `json:"extension"`
	Status    string `json:"status"`
	Message   string `json:"message"`
	Channel   string `json:"channel"`
}

// PostgresChange is one postgres_changes event. Record values are JSON-typed
// as the server sent them, with numbers as json.Number (int8 ids stay exact).
type PostgresChange struct {
	Topic           string
	Type            dollr.ChangeType // INSERT, UPDATE, DELETE
	Schema          string
	Table           string
	CommitTimestamp string
	Columns         []dollr.Column
	Record          map[string]any // INSERT, UPDATE
	OldRecord       map[string]any // UPDATE, DELETE
	Errors          []string
	// Data is the raw "data" object of the event.
	Data json.RawMessage
	// ReceivedAt is when the frame was read off the socket.
	ReceivedAt time.Time
}

type chanState uint8

const (
	chanJoining chanState = iota
	chanJoined
	chanClosed
)

// Channel is one joined topic. Its fields after opts are guarded by the
// connection's mutex.
type Channel struct {
	c     *RealtimeConn
	topic string
	opts  ChannelOptions
	cbMu  sync.Mutex // serializes this channel's callbacks

	joinRef string
	state   chanState
	timer   *time.Timer
	ids     []json.RawMessage // server id per binding; nil entries: none given
}

// Topic returns the full topic, "realtime:<name>".
func (ch *Channel) Topic() string { return ch.topic }

// Join joins "realtime:"+name and returns at once; the outcome arrives in
// opts.OnStatus. Joining a topic already joined on this socket is an error.
func (c *RealtimeConn) Join(name string, opts ChannelOptions) (*Channel, error) {
	topic := "realtime:" + name
	payload, err := joinPayload(opts)
	if err != nil {
		return nil, err
	}
	ch := &Channel{c: c, topic: topic, opts: opts}
	c.mu.Lock()
	if c.closed || c.byClient {
		c.mu.Unlock()
		return nil, errors.New("realtime: connection closed")
	}
	if c.channels[topic] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("realtime: %s is already joined on this connection", topic)
	}
	ch.joinRef = c.nextRef()
	c.channels[topic] = ch
	joinRef := ch.joinRef
	timeout := opts.JoinTimeout
	if timeout <= 0 {
		timeout = c.opts.JoinTimeout
	}
	ch.timer = time.AfterFunc(timeout, func() { ch.joinTimedOut(joinRef) })
	c.mu.Unlock()
	if err := c.send(frame{JoinRef: joinRef, Ref: joinRef, Topic: topic, Event: "phx_join", Payload: payload}); err != nil {
		c.mu.Lock()
		if c.channels[topic] == ch {
			delete(c.channels, topic)
		}
		ch.state = chanClosed
		ch.timer.Stop()
		c.mu.Unlock()
		return nil, fmt.Errorf("realtime: join %s: %w", topic, err)
	}
	return ch, nil
}

func joinPayload(opts ChannelOptions) (json.RawMessage, error) {
	type broadcast struct {
		Ack  bool `json:"ack"`
		Self bool `json:"self"`
	}
	type presence struct {
		Key     string `json:"key"`
		Enabled bool   `json:"enabled"`
	}
	type config struct {
		Broadcast       broadcast               `json:"broadcast"`
		Presence        presence                `json:"presence"`
		PostgresChanges []PostgresChangesFilter `json:"postgres_changes"`
		Private         bool                    `json:"private"`
	}
	p := struct {
		Config      config `json:"config"`
		AccessToken string `json:"access_token,omitempty"`
	}{
		Config:      config{PostgresChanges: opts.PostgresChanges, Private: opts.Private},
		AccessToken: opts.AccessToken,
	}
	if p.Config.PostgresChanges == nil {
		p.Config.PostgresChanges = []PostgresChangesFilter{} // supabase-js always sends the array
	}
	return json.Marshal(p)
}

var errBindingsMismatch = errors.New("mismatch between server and client bindings for postgres changes")

// joinReply reads a phx_reply to this channel's join. Called with c.mu held.
func (ch *Channel) joinReply(payload json.RawMessage) (ChannelStatus, error) {
	var r struct {
		Status   string          `json:"status"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return ChannelError, fmt.Errorf("realtime: bad join reply: %v", err)
	}
	if r.Status != "ok" {
		// supabase-js reports Object.values(response).join(', '): the reason.
		var resp map[string]any
		_ = json.Unmarshal(r.Response, &resp)
		reason, _ := resp["reason"].(string)
		if reason == "" {
			reason = strings.TrimSpace(string(r.Response))
		}
		return ChannelError, &JoinError{Reason: reason}
	}
	var resp struct {
		PostgresChanges *[]map[string]json.RawMessage `json:"postgres_changes"`
	}
	if len(r.Response) > 0 && string(r.Response) != "null" {
		if err := json.Unmarshal(r.Response, &resp); err != nil {
			return ChannelError, fmt.Errorf("realtime: bad join reply: %v", err)
		}
	}
	if resp.PostgresChanges == nil {
		// No postgres_changes key: subscribed, bindings without ids.
		return ChannelSubscribed, nil
	}
	server := *resp.PostgresChanges
	ids := make([]json.RawMessage, len(ch.opts.PostgresChanges))
	for i, b := range ch.opts.PostgresChanges {
		if i >= len(server) {
			return ChannelError, errBindingsMismatch
		}
		s := server[i]
		if !sameField(s["event"], b.Event, true) || !sameField(s["schema"], b.Schema, true) ||
			!sameField(s["table"], b.Table, false) || !sameField(s["filter"], b.Filter, false) {
			return ChannelError, errBindingsMismatch
		}
		ids[i] = bytes.TrimSpace(s["id"])
	}
	ch.ids = ids
	return ChannelSubscribed, nil
}

// sameField compares a server-echoed binding field with the client's, the way
// supabase-js does: null and absent are equal, "" is not absent.
func sameField(raw json.RawMessage, want string, required bool) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return want == "" && !required
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	if want == "" && !required {
		return false // client left it out; server sent a value (even "")
	}
	return s == want
}

// JoinError is a join refused by the server, e.g.
// "Unauthorized: You do not have permissions to read from this Channel topic: ...".
type JoinError struct{ Reason string }

func (e *JoinError) Error() string { return e.Reason }

func (ch *Channel) joinTimedOut(joinRef string) {
	c := ch.c
	c.mu.Lock()
	if ch.state != chanJoining || ch.joinRef != joinRef || c.channels[ch.topic] != ch {
		c.mu.Unlock()
		return
	}
	ch.state = chanClosed
	ch.timer = nil
	delete(c.channels, ch.topic)
	ref := c.nextRef()
	c.mu.Unlock()
	_ = c.send(frame{JoinRef: joinRef, Ref: ref, Topic: ch.topic, Event: "phx_leave"})
	ch.status(ChannelTimedOut, errors.New("join timed out"))
}

func (ch *Channel) status(s ChannelStatus, err error) {
	if ch.opts.OnStatus == nil {
		return
	}
	ch.cbMu.Lock()
	defer ch.cbMu.Unlock()
	ch.opts.OnStatus(s, err)
}

// change decodes and delivers one postgres_changes payload.
func (ch *Channel) change(payload json.RawMessage, at time.Time) {
	if ch.opts.OnChange == nil {
		return
	}
	var p struct {
		IDs  []json.RawMessage `json:"ids"`
		Data json.RawMessage   `json:"data"`
	}
	if json.Unmarshal(payload, &p) != nil || len(p.Data) == 0 {
		return
	}
	var head struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(p.Data, &head) != nil || head.Type == "" {
		return // data.type is required (supabase-js reads it for every event)
	}
	ch.c.mu.Lock()
	ids := ch.ids
	ch.c.mu.Unlock()
	if !ch.matches(ids, p.IDs, head.Type) {
		return
	}
	ev := &PostgresChange{Topic: ch.topic, Type: dollr.ChangeType(head.Type), Data: p.Data, ReceivedAt: at}
	var d struct {
		Schema          string         `json:"schema"`
		Table           string         `json:"table"`
		CommitTimestamp string         `json:"commit_timestamp"`
		Columns         []dollr.Column `json:"columns"`
		Record          map[string]any `json:"record"`
		OldRecord       map[string]any `json:"old_record"`
		Errors          []string       `json:"errors"`
	}
	if ch.opts.RawChanges {
		var h struct {
			Schema          string `json:"schema"`
			Table           string `json:"table"`
			CommitTimestamp string `json:"commit_timestamp"`
		}
		if json.Unmarshal(p.Data, &h) != nil {
			return
		}
		d.Schema, d.Table, d.CommitTimestamp = h.Schema, h.Table, h.CommitTimestamp
	} else {
		dec := json.NewDecoder(bytes.NewReader(p.Data))
		dec.UseNumber()
		if dec.Decode(&d) != nil {
			return
		}
	}
	ev.Schema, ev.Table, ev.CommitTimestamp = d.Schema, d.Table, d.CommitTimestamp
	ev.Columns, ev.Record, ev.OldRecord, ev.Errors = d.Columns, d.Record, d.OldRecord, d.Errors
	ch.cbMu.Lock()
	defer ch.cbMu.Unlock()
	ch.opts.OnChange(ev)
}

// matches applies supabase-js's binding filter: a binding with a server id
// fires when its id is in ids (same JSON type and value); a binding without
// one fires only for event "*"; the event must be "*" or the change's type.
func (ch *Channel) matches(bindingIDs, ids []json.RawMessage, typ string) bool {
	for i, b := range ch.opts.PostgresChanges {
		if b.Event != "*" && !strings.EqualFold(b.Event, typ) {
			continue
		}
		var id json.RawMessage
		if i < len(bindingIDs) {
			id = bindingIDs[i]
		}
		if len(id) == 0 {
			if b.Event == "*" && bindingIDs == nil {
				return true
			}
			continue
		}
		for _, x := range ids {
			if bytes.Equal(bytes.TrimSpace(x), id) {
				return true
			}
		}
	}
	return false
}

// SetAccessToken pushes a new token to the channel (an access_token event),
// e.g. a fresh realtime key before the current one expires.
func (ch *Channel) SetAccessToken(token string) error {
	c := ch.c
	c.mu.Lock()
	ch.opts.AccessToken = token
	if ch.state != chanJoined || c.channels[ch.topic] != ch {
		c.mu.Unlock()
		return errors.New("realtime: channel not joined")
	}
	joinRef, ref := ch.joinRef, c.nextRef()
	c.mu.Unlock()
	payload, _ := json.Marshal(map[string]string{"access_token": token})
	return c.send(frame{JoinRef: joinRef, Ref: ref, Topic: ch.topic, Event: "access_token", Payload: payload})
}

// Leave sends phx_leave and forgets the channel. No status callback follows.
func (ch *Channel) Leave() error {
	c := ch.c
	c.mu.Lock()
	if ch.state == chanClosed || c.channels[ch.topic] != ch {
		c.mu.Unlock()
		return nil
	}
	ch.state = chanClosed
	if ch.timer != nil {
		ch.timer.Stop()
		ch.timer = nil
	}
	delete(c.channels, ch.topic)
	joinRef, ref := ch.joinRef, c.nextRef()
	c.mu.Unlock()
	return c.send(frame{JoinRef: joinRef, Ref: ref, Topic: ch.topic, Event: "phx_leave"})
}
