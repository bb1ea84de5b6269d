package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/dollr/dollr"
)

// The tool speaks the Supabase Realtime protocol (vsn 2.0.0) with its own
// small connection type rather than the SDK's client.RealtimeConn: the SDK
// decodes every event with encoding/json several times over (~20 µs), which
// at 100,000 deliveries per second would take both cores from the server it
// measures. This one walks each frame once (frame.go, ~1.5 µs) and keeps per
// channel only what the scenarios count.

// chanEvent is a channel's lifecycle step reported to a rtHandler.
type chanEvent int

const (
	chanJoinedOK   chanEvent = iota // join reply ok with matching bindings
	chanSubscribed                  // system "Subscribed to PostgreSQL": the subscription is live
	chanFailed                      // join refused, bindings mismatch, system error, phx_error or phx_close
)

// rtHandler receives a connection's events on its reader goroutine; handlers
// of one connection never run concurrently.
type rtHandler interface {
	channelEvent(ch *rtChan, ev chanEvent, detail string)
	change(ch *rtChan, c *rowChange, at time.Time)
	connClosed(c *rtConn, err error) // err nil after close()
	badFrame(c *rtConn, frame []byte, err error)
}

// errUnmatched is a postgres_changes event the channel's binding does not
// match (supabase-js would drop it).
var errUnmatched = errors.New("postgres_changes event for no binding of the channel")

// rtChan is one joined topic.
type rtChan struct {
	conn    *rtConn
	topic   string
	joinRef string
	bindID  int64 // the server's id for our one binding
	hasID   bool
	// sub is the scenario's index for this subscription.
	sub int
	// state below is owned by the connection's reader goroutine.
	joined, subscribed, failed bool
}

// rtConn is one realtime WebSocket carrying any number of channels.
type rtConn struct {
	nc      net.Conn
	src     io.Reader
	handler rtHandler
	done    chan struct{}

	wmu  sync.Mutex
	wbuf []byte

	mu       sync.Mutex
	ref      uint64
	channels map[string]*rtChan
	hbRef    string
	hbTimer  *time.Timer
	hbEvery  time.Duration
	byClient bool
	failure  error
}

// realtimeURL is the socket URL supabase-js derives from a project URL.
func realtimeURL(supabaseURL, anonKey string) (string, error) {
	u, err := url.Parse(supabaseURL)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("supabase_url %q must be http(s)", supabaseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/realtime/v1/websocket"
	u.RawQuery = "apikey=" + url.QueryEscape(anonKey) + "&vsn=2.0.0"
	return u.String(), nil
}

// dialRealtime opens one socket. heartbeat is the interval of Phoenix
// heartbeats (supabase-js sends one every 25 s); the socket fails when one is
// still unanswered at the next tick.
func dialRealtime(ctx context.Context, wsURL string, dialer *Dialer, heartbeat time.Duration, h rtHandler) (*rtConn, error) {
	d := ws.Dialer{NetDial: dialer.DialContext}
	nc, br, _, err := d.Dial(ctx, wsURL)
	if err != nil {
		return nil, err
	}
	c := &rtConn{nc: nc, handler: h, done: make(chan struct{}), channels: make(map[string]*rtChan), hbEvery: heartbeat}
	if br != nil {
		c.src = br
	} else {
		c.src = bufio.NewReaderSize(nc, 4096)
	}
	if heartbeat > 0 {
		c.hbTimer = time.AfterFunc(heartbeat, c.heartbeat)
	}
	go c.readLoop()
	return c, nil
}

func (c *rtConn) nextRef() string {
	c.ref++
	return strconv.FormatUint(c.ref, 10)
}

// send writes one text frame: [join_ref, ref, topic, event, payload].
func (c *rtConn) send(joinRef, ref, topic, event string, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, '[')
	b = appendRef(b, joinRef)
	b = append(b, ',')
	b = appendRef(b, ref)
	b = append(b, ',')
	b = strconv.AppendQuote(b, topic) // topics are ASCII: Go and JSON quoting agree
	b = append(b, ',')
	b = strconv.AppendQuote(b, event)
	b = append(b, ',')
	if payload == nil {
		payload = []byte("{}")
	}
	b = append(b, payload...)
	b = append(b, ']')
	c.wbuf = b
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientText(c.nc, b)
}

func appendRef(b []byte, ref string) []byte {
	if ref == "" {
		return append(b, "null"...)
	}
	return strconv.AppendQuote(b, ref)
}

var errHeartbeatTimeout = errors.New("heartbeat timeout")

func (c *rtConn) heartbeat() {
	c.mu.Lock()
	if c.byClient {
		c.mu.Unlock()
		return
	}
	if c.hbRef != "" {
		c.failure = errHeartbeatTimeout
		c.mu.Unlock()
		c.nc.Close()
		return
	}
	ref := c.nextRef()
	c.hbRef = ref
	c.hbTimer.Reset(c.hbEvery)
	c.mu.Unlock()
	if err := c.send("", ref, "phoenix", "heartbeat", nil); err != nil {
		c.nc.Close()
	}
}

// joinPayloadFor is exactly what supabase-js sends for the product snippet.
func joinPayloadFor(referenceID, accessToken string) []byte {
	type binding struct {
		Event  string `json:"event"`
		Schema string `json:"schema"`
		Table  string `json:"table"`
		Filter string `json:"filter"`
	}
	var p struct {
		Config struct {
			Broadcast struct {
				Ack  bool `json:"ack"`
				Self bool `json:"self"`
			} `json:"broadcast"`
			Presence struct {
				Key     string `json:"key"`
				Enabled bool   `json:"enabled"`
			} `json:"presence"`
			PostgresChanges []binding `json:"postgres_changes"`
			Private         bool      `json:"private"`
		} `json:"config"`
		AccessToken string `json:"access_token"`
	}
	p.Config.PostgresChanges = []binding{{Event: "*", Schema: dollr.PublicSchema, Table: dollr.PublicStatusTable, Filter: "reference_id=eq." + referenceID}}
	p.AccessToken = accessToken
	b, _ := json.Marshal(p) // fixed shape: cannot fail
	return b
}

// join joins realtime:payment-intent:<session>:<reference> as the product
// snippet does. The outcome arrives at the handler.
func (c *rtConn) join(sub int, sessionID int64, referenceID, accessToken string) (*rtChan, error) {
	topic := "realtime:payment-intent:" + strconv.FormatInt(sessionID, 10) + ":" + referenceID
	ch := &rtChan{conn: c, topic: topic, sub: sub}
	c.mu.Lock()
	if c.byClient {
		c.mu.Unlock()
		return nil, errors.New("connection closed")
	}
	if c.channels[topic] != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s joined twice on one socket", topic)
	}
	ch.joinRef = c.nextRef()
	c.channels[topic] = ch
	c.mu.Unlock()
	if err := c.send(ch.joinRef, ch.joinRef, topic, "phx_join", joinPayloadFor(referenceID, accessToken)); err != nil {
		return nil, err
	}
	return ch, nil
}

// close ends the socket; the handler's connClosed gets a nil error.
func (c *rtConn) close() {
	c.mu.Lock()
	if c.byClient {
		c.mu.Unlock()
		return
	}
	c.byClient = true
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	c.mu.Unlock()
	c.wmu.Lock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.wmu.Unlock()
	c.nc.Close()
}

func (c *rtConn) readLoop() {
	defer close(c.done)
	rd := &wsutil.Reader{Source: c.src, State: ws.StateClientSide, MaxMessageSize: 16 << 20}
	rd.OnIntermediate = c.control
	buf := make([]byte, 0, 2048)
	ids := make([]int64, 0, 4)
	var err error
	for {
		var hdr ws.Header
		if hdr, err = rd.NextFrame(); err != nil {
			break
		}
		if hdr.OpCode.IsControl() {
			if err = c.control(hdr, rd); err != nil {
				break
			}
			continue
		}
		if hdr.OpCode != ws.OpText {
			if err = rd.Discard(); err != nil {
				break
			}
			continue
		}
		buf, err = readAll(rd, buf[:0])
		if err != nil {
			break
		}
		at := time.Now()
		c.handle(buf, at, ids)
		if cap(buf) > 256<<10 {
			buf = make([]byte, 0, 2048)
		}
	}
	c.mu.Lock()
	byClient, failure := c.byClient, c.failure
	if c.hbTimer != nil {
		c.hbTimer.Stop()
	}
	c.mu.Unlock()
	c.nc.Close()
	switch {
	case byClient:
		err = nil
	case failure != nil:
		err = failure
	case err == nil || errors.Is(err, io.EOF):
		err = io.ErrUnexpectedEOF
	}
	c.handler.connClosed(c, err)
}

// readAll appends the rest of the current message to buf.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

type closeFrameError struct {
	code   ws.StatusCode
	reason string
}

func (e *closeFrameError) Error() string {
	return fmt.Sprintf("socket closed by server: %d %s", e.code, e.reason)
}

func (c *rtConn) control(h ws.Header, r io.Reader) error {
	p, err := io.ReadAll(io.LimitReader(r, 125))
	if err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		c.wmu.Lock()
		err = ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewPongFrame(p)))
		c.wmu.Unlock()
		return err
	case ws.OpClose:
		code, reason := ws.ParseCloseFrameData(p)
		return &closeFrameError{code: code, reason: reason}
	}
	return nil
}

// handle dispatches one text frame.
func (c *rtConn) handle(b []byte, at time.Time, ids []int64) {
	f, err := parseFrame(b)
	if err != nil {
		c.handler.badFrame(c, b, err)
		return
	}
	if string(f.topic) == "phoenix" {
		if string(f.event) == "phx_reply" {
			c.mu.Lock()
			if c.hbRef != "" && string(f.ref) == c.hbRef {
				c.hbRef = ""
			}
			c.mu.Unlock()
		}
		return
	}
	c.mu.Lock()
	ch := c.channels[string(f.topic)]
	c.mu.Unlock()
	if ch == nil || ch.failed || (f.joinRef != nil && string(f.joinRef) != ch.joinRef) {
		return
	}
	switch string(f.event) {
	case "postgres_changes":
		rc, err := parseChange(f.payload, ids)
		if err != nil {
			c.handler.badFrame(c, b, err)
			return
		}
		if !ch.joined || !ch.hasID || !containsID(rc.ids, ch.bindID) {
			// supabase-js would not fire the callback either.
			c.handler.badFrame(c, b, errUnmatched)
			return
		}
		c.handler.change(ch, &rc, at)
	case "phx_reply":
		if string(f.ref) != ch.joinRef || ch.joined {
			return
		}
		ok, id, reason := readJoinReply(f.payload)
		if !ok {
			ch.failed = true
			c.handler.channelEvent(ch, chanFailed, "join refused: "+reason)
			return
		}
		ch.joined, ch.bindID, ch.hasID = true, id, true
		c.handler.channelEvent(ch, chanJoinedOK, "")
	case "system":
		var m struct {
			Extension string `json:"extension"`
			Status    string `json:"status"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(f.payload, &m) != nil {
			return
		}
		if m.Status != "ok" {
			ch.failed = true
			c.handler.channelEvent(ch, chanFailed, "system: "+m.Message)
			return
		}
		if m.Extension == "postgres_changes" && !ch.subscribed {
			ch.subscribed = true
			c.handler.channelEvent(ch, chanSubscribed, "")
		}
	case "phx_close", "phx_error":
		ch.failed = true
		c.handler.channelEvent(ch, chanFailed, string(f.event))
	}
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// readJoinReply checks a join reply the way supabase-js does for our single
// binding: status ok, and the echoed binding carries an integer id.
func readJoinReply(payload []byte) (ok bool, id int64, reason string) {
	var r struct {
		Status   string `json:"status"`
		Response struct {
			Reason          string `json:"reason"`
			PostgresChanges []struct {
				Event  string          `json:"event"`
				Schema string          `json:"schema"`
				Table  string          `json:"table"`
				ID     json.RawMessage `json:"id"`
			} `json:"postgres_changes"`
		} `json:"response"`
	}
	if err := json.Unmarshal(payload, &r); err != nil {
		return false, 0, "bad join reply: " + err.Error()
	}
	if r.Status != "ok" {
		return false, 0, r.Response.Reason
	}
	pc := r.Response.PostgresChanges
	if len(pc) != 1 || pc[0].Event != "*" || pc[0].Schema != dollr.PublicSchema || pc[0].Table != dollr.PublicStatusTable {
		return false, 0, "mismatch between server and client bindings for postgres changes"
	}
	// The id must be a JSON integer: events carry it as one, and supabase-js
	// matches the two by type as well as value.
	n, ok := parseInt(bytes.TrimSpace(pc[0].ID))
	if !ok {
		return false, 0, "binding id is not an integer"
	}
	return true, n, ""
}
