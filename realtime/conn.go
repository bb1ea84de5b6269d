package realtime

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// outMsg is one WebSocket message waiting in a connection's queue.
type outMsg struct {
	op     ws.OpCode
	data   []byte
	event  bool      // a postgres_changes event, counted as delivered
	commit time.Time // for change events: the commit, to measure delivery lag
	last   bool      // close the socket once this is written
	raw    bool      // data is the unwritten rest of a frame, header included
}

// transport is what a conn writes to and closes: a net.Conn read by the
// conn's own goroutine, or a socket the server's poller reads (Linux).
type transport interface {
	Write(b []byte) (int, error)
	// Close ends the socket; the reader then tears the connection down.
	Close() error
	RemoteAddr() net.Addr
}

// releaser is a transport that holds a descriptor until the connection is
// torn down and its writer is done.
type releaser interface{ release() }

// conn is one client socket. The server's poller reads it (Linux), or else a
// goroutine of its own; a writer goroutine runs only while the queue holds
// something, so an idle connection costs no goroutine (one without the
// poller) and no buffers.
type conn struct {
	s      *Server
	nc     transport
	vsn    version
	apikey *Token

	chanMu   sync.Mutex
	channels []*channel // joined channels, one per topic (at most MaxChannels)
	gone     bool       // torn down: no more joins

	mu       sync.Mutex // guards the fields below
	queue    []outMsg
	queued   int  // bytes of the frames queued or being written (Config.SendQueueBytes)
	writing  bool // a writer has the socket (writeLoop or sendNow)
	closed   bool
	draining bool // a closing frame is queued; the writer closes the socket after it
	corked   bool // messages queue without starting the writer (see cork)
	readDone bool // the reader is done: the transport may be released once shut
	tornDown bool // teardown has closed the channels
	detached bool // removed from the server: torn down and no writer left

	refusing atomic.Int32 // refused joins whose delayed error reply is pending

	// The sweeper's clocks (sweep.go), in Server.mono time.
	lastRead   atomic.Int64 // when the client's last message arrived
	writeStart atomic.Int64 // when the write in progress began; 0: none
	// No channel's token expires before this (unix ns): a lower bound, so the
	// sweeper looks at a socket's channels only when one may have expired.
	// Lowered under chanMu; raised only by the sweeper, also under chanMu.
	expiresAfter atomic.Int64

	hdr [ws.MaxHeaderSize - 2]byte // reader-owned
}

// maxPendingRefusals bounds the delayed join error replies one connection may
// have waiting (each holds a timer and a frame).
const maxPendingRefusals = 100

func newConn(s *Server, nc transport, v version, apikey *Token) *conn {
	c := &conn{s: s, nc: nc, vsn: v, apikey: apikey}
	c.lastRead.Store(s.mono())
	c.expiresAfter.Store(math.MaxInt64)
	return c
}

// readLoop reads a socket on its own goroutine: the transport where the
// server's poller is not used (see poller_linux.go).
func (c *conn) readLoop(nc io.Reader, pre []byte) {
	defer c.teardown()
	var src = nc
	if len(pre) > 0 {
		src = io.MultiReader(bytes.NewReader(pre), nc)
	}
	// A small buffer lets one read syscall carry a frame's header with its
	// payload (a heartbeat fits whole); a join's larger payload is read
	// straight into its own slice. Unbuffered, each frame took three or four
	// reads. 128 bytes keep an idle connection's memory low.
	r := bufio.NewReaderSize(src, 128)
	var asm assembler
	for {
		h, err := ws.ReadHeaderBuffer(r, c.hdr[:])
		if err != nil {
			return
		}
		if !c.checkHeader(h, &asm) {
			return
		}
		payload, err := readPayload(r, h.Length)
		if err != nil {
			return
		}
		c.lastRead.Store(c.s.mono())
		ws.Cipher(payload, h.Mask, 0)
		op, msg, complete, stop := c.takeFrame(&asm, h, payload, true)
		if stop {
			return
		}
		if complete {
			c.handleOnReader(op, msg)
		}
	}
}

// assembler joins a message's fragments (RFC 6455 section 5.4).
type assembler struct {
	msg   []byte
	op    ws.OpCode
	inMsg bool
}

// checkHeader refuses a frame the protocol forbids, or one that would make
// the message too big, queueing the close frame; false means stop reading.
func (c *conn) checkHeader(h ws.Header, asm *assembler) bool {
	if h.Rsv != 0 || !h.Masked || h.OpCode.IsReserved() ||
		(h.OpCode.IsControl() && (h.Length > 125 || !h.Fin)) {
		c.goAway(ws.StatusProtocolError, "")
		return false
	}
	limit := int64(c.s.cfg.MaxMessageSize)
	if h.Length > limit || int64(len(asm.msg))+h.Length > limit {
		c.goAway(ws.StatusMessageTooBig, "")
		return false
	}
	return true
}

// takeFrame applies one checked, unmasked frame: control frames are answered
// here, and a frame that completes a text or binary message returns it.
// owned says payload may be kept; otherwise what is kept is copied. stop
// means the socket is done (its close frame is queued).
func (c *conn) takeFrame(asm *assembler, h ws.Header, payload []byte, owned bool) (op ws.OpCode, msg []byte, complete, stop bool) {
	keep := func(b []byte) []byte {
		if owned {
			return b
		}
		return append([]byte(nil), b...)
	}
	switch h.OpCode {
	case ws.OpPing:
		c.send(outMsg{op: ws.OpPong, data: keep(payload)})
	case ws.OpPong:
	case ws.OpClose:
		c.closeWith(closeReply(payload))
		return 0, nil, false, true
	case ws.OpText, ws.OpBinary:
		if asm.inMsg {
			c.goAway(ws.StatusProtocolError, "")
			return 0, nil, false, true
		}
		if h.Fin {
			if h.OpCode == ws.OpText && !utf8.Valid(payload) {
				c.goAway(ws.StatusInvalidFramePayloadData, "")
				return 0, nil, false, true
			}
			return h.OpCode, payload, true, false
		}
		asm.msg, asm.op, asm.inMsg = keep(payload), h.OpCode, true
	case ws.OpContinuation:
		if !asm.inMsg {
			c.goAway(ws.StatusProtocolError, "")
			return 0, nil, false, true
		}
		asm.msg = append(asm.msg, payload...)
		if h.Fin {
			op, msg = asm.op, asm.msg
			*asm = assembler{}
			if op == ws.OpText && !utf8.Valid(msg) {
				c.goAway(ws.StatusInvalidFramePayloadData, "")
				return 0, nil, false, true
			}
			return op, msg, true, false
		}
	}
	return 0, nil, false, false
}

// closeReply is the body of the Close frame that answers a client's Close
// (RFC 6455 §5.5.1: "When sending a Close frame in response, the endpoint
// typically echos the status code it received"): its status code, none for
// none, and 1002 (protocol error) for a body no valid Close frame has: one
// byte, a code that may not be sent (§7.4), or a reason that is not UTF-8.
func closeReply(p []byte) []byte {
	if len(p) == 0 {
		return nil
	}
	if len(p) < 2 || !sendableCloseCode(ws.StatusCode(binary.BigEndian.Uint16(p))) || !utf8.Valid(p[2:]) {
		return ws.NewCloseFrameBody(ws.StatusProtocolError, "")
	}
	return []byte{p[0], p[1]} // payload may be a view of a read buffer
}

// sendableCloseCode reports whether an endpoint may put code in a Close
// frame (RFC 6455 §7.4 and the IANA registry): 1000–1003, 1007–1014 and
// the application and private ranges 3000–4999; 1004 is reserved, 1005,
// 1006 and 1015 must not be sent, the rest of 1000–2999 is unassigned.
func sendableCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

// readPayload reads n bytes, growing the buffer as bytes arrive rather than
// trusting the peer's declared length for one big allocation.
func readPayload(r io.Reader, n int64) ([]byte, error) {
	const chunk = 32 << 10
	if n <= chunk {
		b := make([]byte, n)
		_, err := io.ReadFull(r, b)
		return b, err
	}
	var buf bytes.Buffer
	_, err := io.CopyN(&buf, r, n)
	return buf.Bytes(), err
}

// handleOnReader answers a heartbeat on the reader goroutine and hands every
// other message to handleOff. Heartbeats are most of what an idle socket
// receives (one per client every 25 s); decoding each with encoding/json on a
// fresh goroutine was about half of an idle server's CPU.
func (c *conn) handleOnReader(op ws.OpCode, data []byte) {
	if reply, ok := c.heartbeat(op, data); ok {
		c.send(reply)
		return
	}
	c.handleOff(op, data)
}

// heartbeat returns the reply to a heartbeat in one of the shapes below,
// found without decoding; any other message is not answered here.
func (c *conn) heartbeat(op ws.OpCode, data []byte) (outMsg, bool) {
	if op != ws.OpText {
		return outMsg{}, false
	}
	ref, ok := heartbeatRef(c.vsn, data)
	if !ok {
		return outMsg{}, false
	}
	return outMsg{op: ws.OpText, data: heartbeatReply(c.vsn, ref)}, true
}

// The heartbeat shapes that supabase-js and the Phoenix client send, around
// the ref (a JSON string). Anything else, such as another key order, spacing,
// a numeric ref or a non-empty payload, takes the full decoder, which answers
// it the same way.
const (
	heartbeatPrefix2 = `[null,`
	heartbeatSuffix2 = `,"phoenix","heartbeat",{}]`
	heartbeatPrefix1 = `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":`
	heartbeatSuffix1 = `}`
	// The same with an explicit null join_ref, as Phoenix's own clients write it.
	heartbeatSuffix1JoinRef = `,"join_ref":null}`
)

// heartbeatReply is the phx_reply to a heartbeat, the frame reply() builds,
// assembled in one allocation so the reader's stack stays shallow.
func heartbeatReply(v version, ref []byte) []byte {
	pre, post := `[null,`, `,"phoenix","phx_reply",{"status":"ok","response":{}}]`
	if v != vsn2 {
		pre, post = `{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":`, `,"join_ref":null}`
	}
	b := make([]byte, 0, len(pre)+len(ref)+len(post))
	return append(append(append(b, pre...), ref...), post...)
}

// heartbeatRef reports whether data is a heartbeat in one of the exact shapes
// above and returns its ref as the raw JSON string the client sent, so the
// reply echoes it byte for byte as the full decoder would.
func heartbeatRef(v version, data []byte) ([]byte, bool) {
	prefix := heartbeatPrefix1
	if v == vsn2 {
		prefix = heartbeatPrefix2
	}
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return nil, false
	}
	rest := data[len(prefix):]
	n := jsonStringLen(rest)
	if n == 0 {
		return nil, false
	}
	ref, tail := rest[:n], string(rest[n:])
	if v == vsn2 {
		return ref, tail == heartbeatSuffix2
	}
	return ref, tail == heartbeatSuffix1 || tail == heartbeatSuffix1JoinRef
}

// jsonStringLen returns the length of the JSON string literal at the start of
// b, or 0 if b does not start with one. It accepts what encoding/json accepts:
// escapes are checked, other bytes from 0x20 up are taken as they are.
func jsonStringLen(b []byte) int {
	if len(b) == 0 || b[0] != '"' {
		return 0
	}
	for i := 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return 0
		case c != '\\':
			i++
		case i+1 >= len(b):
			return 0
		case strings.IndexByte(`"\/bfnrt`, b[i+1]) >= 0:
			i += 2
		case b[i+1] == 'u' && i+6 <= len(b) && isHex4(b[i+2:i+6]):
			i += 6
		default:
			return 0
		}
	}
	return 0
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// handleOff handles a message on one of the server's workers and waits for
// it, so the deep stack a join needs stays off the reader goroutine.
func (c *conn) handleOff(op ws.OpCode, data []byte) {
	c.s.workers.do(func() { c.handleSafely(op, data) })
}

// handleSafely handles a message; as net/http does per request, a message
// that trips a bug closes its own socket (1011) instead of the whole server.
func (c *conn) handleSafely(op ws.OpCode, data []byte) {
	defer func() {
		if v := recover(); v != nil {
			c.s.log.Error("realtime: panic handling a message; closing the socket", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			c.goAway(ws.StatusInternalServerError, "")
		}
	}()
	c.handle(op, data)
}

// handle routes one complete client message (realtime-protocol.md §17).
func (c *conn) handle(op ws.OpCode, data []byte) {
	var f frame
	var err error
	if op == ws.OpBinary {
		if c.vsn != vsn2 {
			return
		}
		f, err = decodeBinary(data)
	} else {
		f, err = decodeFrame(c.vsn, data)
	}
	if err != nil {
		c.s.log.Debug("realtime: undecodable message", "err", err)
		return
	}
	if f.topic == "phoenix" && f.event == "heartbeat" {
		f.joinRef = nil // Phoenix answers heartbeats outside any join
		c.reply(f, "ok", emptyObject)
		return
	}
	if f.event == "phx_join" {
		c.join(f)
		return
	}
	ch := c.channel(f.topic)
	if ch == nil || (f.joinRef != nil && !bytes.Equal(f.joinRef, ch.joinRef)) {
		// Not joined, or a message for an earlier join of this topic.
		if f.event == "phx_leave" {
			c.reply(f, "ok", emptyObject)
		} else if ch == nil {
			c.send(outMsg{op: ws.OpText, data: encodeFrame(c.vsn, nil, f.ref, f.topic, "phx_reply",
				[]byte(`{"status":"error","response":{"reason":"unmatched topic"}}`))})
		}
		return
	}
	switch f.event {
	case "phx_leave":
		c.reply(f, "ok", emptyObject)
		if c.removeChannel(ch) {
			ch.close()
			ch.sendClose()
		}
	case "access_token":
		var p struct {
			AccessToken any `json:"access_token"`
		}
		_ = jsonUnmarshal(f.payload, &p)
		if tok, ok := p.AccessToken.(string); ok {
			ch.refresh(tok)
		}
	case "broadcast":
		ch.broadcast(f)
	case "presence":
		ch.presence(f)
	}
}

// reply sends a phx_reply to f with the given status and response.
func (c *conn) reply(f frame, status string, response []byte) {
	joinRef := f.joinRef
	payload := make([]byte, 0, 32+len(response))
	payload = append(payload, `{"status":"`...)
	payload = append(payload, status...)
	payload = append(payload, `","response":`...)
	payload = append(payload, response...)
	payload = append(payload, '}')
	c.send(outMsg{op: ws.OpText, data: encodeFrame(c.vsn, joinRef, f.ref, f.topic, "phx_reply", payload)})
}

func (c *conn) channel(topic string) *channel {
	c.chanMu.Lock()
	defer c.chanMu.Unlock()
	for _, ch := range c.channels {
		if ch.topic == topic {
			return ch
		}
	}
	return nil
}

// noteExpiry lowers the socket's expiry bound to exp (c.chanMu held).
func (c *conn) noteExpiry(exp time.Time) {
	if ns := exp.UnixNano(); ns < c.expiresAfter.Load() {
		c.expiresAfter.Store(ns)
	}
}

// removeChannel unlinks ch if it is still the topic's channel; only the caller
// that unlinks it goes on to close it.
func (c *conn) removeChannel(ch *channel) bool {
	c.chanMu.Lock()
	defer c.chanMu.Unlock()
	for i, x := range c.channels {
		if x == ch {
			c.channels = slices.Delete(c.channels, i, i+1)
			if len(c.channels) == 0 {
				c.channels = nil
			}
			return true
		}
	}
	return false
}

// send queues a message. A full queue means the client does not keep up: it is
// disconnected, so it cannot slow anyone else down.
func (c *conn) send(m outMsg) {
	c.mu.Lock()
	if c.closed || (c.draining && !m.last) {
		c.mu.Unlock()
		return
	}
	// A frame that does not fit is refused whole; one larger than the byte
	// budget still goes when nothing else waits, so no frame is refused forever.
	if !m.last && (len(c.queue) >= c.s.cfg.SendQueue ||
		c.queued > 0 && c.queued+len(m.data) > c.s.cfg.SendQueueBytes) {
		c.mu.Unlock()
		c.overflow()
		return
	}
	if m.last {
		if c.draining {
			c.mu.Unlock()
			return
		}
		c.draining = true
	}
	c.queue = append(c.queue, m)
	c.queued += len(m.data)
	start := !c.writing && !c.corked
	c.writing = c.writing || start
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// cork holds queued messages until uncork, so messages sent together (a
// join's reply, system message and snapshot) leave in one write: a write
// system call costs about as much as everything else a message needs.
func (c *conn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *conn) uncork() {
	c.mu.Lock()
	c.corked = false
	start := !c.writing && len(c.queue) > 0 && !c.closed
	c.writing = c.writing || start
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// sendNow writes m from the calling goroutine with one non-blocking write
// when nothing is queued or being written, sparing a writer goroutine (the
// poller answers heartbeats so); what the socket buffer does not take, and m
// itself when the socket is busy, is queued as send does.
func (c *conn) sendNow(m outMsg, tryWrite func([]byte) (int, error)) {
	c.mu.Lock()
	if c.closed || c.draining || c.writing || c.corked || len(c.queue) > 0 {
		c.mu.Unlock()
		c.send(m)
		return
	}
	c.writing = true
	c.mu.Unlock()
	buf := appendHeader(make([]byte, 0, 10+len(m.data)), m.op, len(m.data))
	buf = append(buf, m.data...)
	n, err := tryWrite(buf)
	if err != nil {
		c.s.log.Debug("realtime: write failed", "err", err)
		c.kill()
		c.stopWriting()
		return
	}
	c.mu.Lock()
	if n < len(buf) && !c.closed {
		c.queue = slices.Insert(c.queue, 0, outMsg{data: buf[n:], raw: true})
		c.queued += len(buf) - n
	}
	start := len(c.queue) > 0 && !c.closed && !c.corked
	detach := false
	if !start {
		detach = c.stopWritingLocked()
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	if detach {
		c.s.removeConn(c)
	}
}

// stopWritingLocked ends the current writer's turn (c.mu held) and reports
// whether the connection must now leave the server: it has been torn down,
// and the server kept it, for the sweeper to bound the write, until its last
// writer was done.
func (c *conn) stopWritingLocked() (detach bool) {
	c.writing = false
	if !c.tornDown || c.detached {
		return false
	}
	c.detached = true
	return true
}

// stopWriting ends the current writer's turn after the socket was killed.
func (c *conn) stopWriting() {
	c.mu.Lock()
	detach := c.stopWritingLocked()
	c.mu.Unlock()
	if detach {
		c.s.removeConn(c)
	}
}

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// writeLoop drains the queue, batching messages into few writes, and exits
// when the queue is empty.
func (c *conn) writeLoop() {
	bp := writeBufPool.Get().(*[]byte)
	buf := (*bp)[:0]
	defer func() {
		if cap(buf) <= 256<<10 {
			*bp = buf[:0]
			writeBufPool.Put(bp)
		}
	}()
	var spare []outMsg
	sent := 0 // bytes of the batch written last, still counted in c.queued
	for {
		c.mu.Lock()
		c.queued -= sent
		sent = 0
		q := c.queue
		if len(q) == 0 || c.closed {
			c.queue = nil
			detach := c.stopWritingLocked()
			c.mu.Unlock()
			if detach {
				c.s.removeConn(c)
			}
			return
		}
		c.queue = spare
		c.mu.Unlock()

		from := 0
		last := false
		for i := range q {
			m := &q[i]
			if !m.raw {
				buf = appendHeader(buf, m.op, len(m.data))
			}
			buf = append(buf, m.data...)
			sent += len(m.data)
			last = last || m.last
			if len(buf) < 32<<10 && i < len(q)-1 && !last {
				continue
			}
			c.writeStart.Store(c.s.mono())
			_, err := c.nc.Write(buf)
			c.writeStart.Store(0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					c.s.log.Debug("realtime: write on closed socket")
				} else {
					c.s.log.Debug("realtime: write failed", "err", err)
				}
				c.kill()
				c.stopWriting()
				return
			}
			buf = buf[:0]
			c.account(q[from : i+1])
			from = i + 1
			if last {
				c.kill()
				c.stopWriting()
				return
			}
		}
		clear(q)
		spare = q[:0]
	}
}

// account records delivered events and their commit-to-write lag.
func (c *conn) account(sent []outMsg) {
	var now time.Time
	for i := range sent {
		m := &sent[i]
		if !m.event {
			continue
		}
		c.s.m.delivered.Inc()
		if !m.commit.IsZero() {
			if now.IsZero() {
				now = time.Now()
			}
			c.s.m.lag.Observe(now.Sub(m.commit).Seconds())
		}
	}
}

// appendHeader appends an unmasked server frame header.
func appendHeader(buf []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n < 126:
		return append(buf, b0, byte(n))
	case n <= 0xFFFF:
		return append(buf, b0, 126, byte(n>>8), byte(n))
	}
	buf = append(buf, b0, 127)
	return binary.BigEndian.AppendUint64(buf, uint64(n))
}

// goAway queues a close frame and closes the socket once it is written.
func (c *conn) goAway(code ws.StatusCode, reason string) {
	c.closeWith(ws.NewCloseFrameBody(code, reason))
}

// closeWith queues a close frame with the given body (nil: no status code)
// and closes the socket once it is written.
func (c *conn) closeWith(body []byte) {
	c.send(outMsg{op: ws.OpClose, data: body, last: true})
}

// kill closes the socket at once; the reader then tears the connection down.
func (c *conn) kill() {
	c.mu.Lock()
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	c.shut()
}

// shut closes the transport, and releases it once the reader is done too.
func (c *conn) shut() {
	c.nc.Close()
	c.mu.Lock()
	done := c.readDone
	c.mu.Unlock()
	if r, ok := c.nc.(releaser); ok && done {
		r.release()
	}
}

// teardown runs when the reader ends: it closes every channel and the socket.
func (c *conn) teardown() {
	c.mu.Lock()
	if c.readDone { // once: the poller's panic guard may call it again
		c.mu.Unlock()
		return
	}
	c.readDone = true
	draining := c.draining && !c.closed && c.writing
	c.mu.Unlock()
	if !draining { // otherwise the writer closes the socket after the close frame
		c.kill()
	}
	c.chanMu.Lock()
	chans := c.channels
	c.channels, c.gone = nil, true
	c.chanMu.Unlock()
	for _, ch := range chans {
		ch.close()
	}
	// The connection leaves the server (and the sweeper) only once no writer
	// has it: a writer still sending the close frame to a client that does not
	// read must stay under the sweeper's WriteTimeout, which then kills it.
	c.mu.Lock()
	c.tornDown = true
	detach := !c.writing && !c.detached
	c.detached = c.detached || detach
	c.mu.Unlock()
	if detach {
		c.s.removeConn(c)
	}
}

// overflow disconnects a client whose pending frames exceed the queue's
// bounds (SendQueue frames, SendQueueBytes bytes). It sends no close frame:
// the client is not reading, so the frame would wait behind everything the
// socket buffer already holds (megabytes), or could not be written at all
// without blocking; and a writer may be half way through a frame, which a
// close frame must not interrupt. The client sees the connection end (1006)
// and reconnects as it does for any close.
func (c *conn) overflow() {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.queue = nil
	c.mu.Unlock()
	if already {
		return
	}
	c.s.m.slow.Inc()
	c.s.log.Warn("realtime: slow client disconnected", "remote", c.nc.RemoteAddr().String())
	c.shut()
}
