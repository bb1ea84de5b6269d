//go:build linux

package realtime

import (
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/gobwas/ws"
)

// The poller reads every socket of a server from one goroutine with its own
// epoll set, instead of one goroutine per socket parked in a read. An idle
// socket then costs no goroutine: no stack to keep, and none for the garbage
// collector to scan on every cycle (with 5,000 sockets, scanning their
// readers' stacks was most of each cycle's cost: docs/benchmarks.md). A
// heartbeat is read and answered on the poller goroutine; any other message
// goes to a worker, which goes on reading what the socket sent behind it.
//
// Each socket is registered EPOLLONESHOT: exactly one party reads it at a
// time (the poller, or the worker handling its message), and rearms it when
// it is done. A writer that finds the socket buffer full waits for EPOLLOUT
// through the same registration. The server owns a duplicate of the
// accepted descriptor and closes the net.Conn, so Go's own poller never
// wakes for these sockets.

const (
	readEvents  = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLHUP | syscall.EPOLLERR
	writeEvents = syscall.EPOLLOUT | syscall.EPOLLHUP | syscall.EPOLLERR
	oneShot     = syscall.EPOLLONESHOT
	pollReadBuf = 64 << 10
)

type poller struct {
	epfd int
	// The epoll set itself sits in Go's netpoller, so the loop parks like any
	// goroutine waiting to read, instead of blocking an OS thread in
	// epoll_wait: a goroutine in a long system call keeps the runtime's sysmon
	// thread waking every 20 µs to take its processor back, which cost an
	// idle server more than its heartbeats.
	file *os.File
	done chan struct{}
	buf  []byte // the loop's read buffer

	mu    sync.Mutex
	socks []*pollSock // by slot
	free  []int32
}

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, file: os.NewFile(uintptr(epfd), "realtime-epoll"), done: make(chan struct{}), buf: make([]byte, pollReadBuf)}
	rc, err := p.file.SyscallConn()
	if err != nil {
		p.file.Close()
		return nil, err
	}
	go p.loop(rc)
	return p, nil
}

// stop ends the loop and waits for it; the server's sockets must be gone.
func (p *poller) stop() {
	p.file.Close()
	<-p.done
}

func (p *poller) loop(rc syscall.RawConn) {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	for {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && werr != syscall.EINTR) // else park until the set is readable
		})
		if err != nil || werr != nil {
			return // closed
		}
		for _, ev := range events[:n] {
			if ps := p.lookup(ev.Fd, ev.Pad); ps != nil {
				p.handle(ps, ev.Events)
			}
		}
	}
}

// handle runs one socket's event. A panic (a bug) closes that socket, not
// the server, as a worker's panic does.
func (p *poller) handle(ps *pollSock, events uint32) {
	defer func() {
		if v := recover(); v != nil {
			ps.c.s.log.Error("realtime: panic reading a socket; closing it", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			ps.c.kill()
			ps.c.teardown()
		}
	}()
	ps.event(events)
}

func (p *poller) lookup(slot, gen int32) *pollSock {
	p.mu.Lock()
	defer p.mu.Unlock()
	if int(slot) >= len(p.socks) {
		return nil
	}
	if ps := p.socks[slot]; ps != nil && ps.gen == gen {
		return ps
	}
	return nil
}

func (p *poller) add(ps *pollSock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		ps.slot, p.free = p.free[n-1], p.free[:n-1]
	} else {
		ps.slot = int32(len(p.socks))
		p.socks = append(p.socks, nil)
	}
	p.socks[ps.slot] = ps
}

func (p *poller) remove(ps *pollSock) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.socks[ps.slot] == ps {
		p.socks[ps.slot] = nil
		p.free = append(p.free, ps.slot)
	}
}

// pollGen tells a socket from an earlier one in the same slot, whose events
// may still be in flight.
var pollGen atomic.Int32

// pollSock is a socket the poller reads. It is the conn's transport: Write
// blocks (waiting for EPOLLOUT when the socket buffer is full), Close shuts
// the socket down, and release, once the reader is done, closes it.
type pollSock struct {
	p      *poller
	c      *conn
	slot   int32
	gen    int32
	remote net.Addr

	fdMu sync.RWMutex // held shared around each system call on fd, exclusively to close it
	fd   int          // -1 once released

	armMu     sync.Mutex
	readArmed bool // waiting for readEvents for the reader
	writeWait bool // a writer waits for writeEvents

	writable chan struct{} // 1-buffered: EPOLLOUT came
	dead     chan struct{} // closed on release
	deadOnce sync.Once

	// Owned by whoever reads the socket (the poller, or a worker handling
	// one of its messages).
	in  []byte // an incomplete frame's bytes
	asm assembler
}

// pollSocket moves nc to the server's poller, or returns nil (and leaves nc
// as it was) when it cannot.
func (s *Server) pollSocket(nc net.Conn) *pollSock {
	p := s.ensurePoller()
	if p == nil {
		return nil
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(orig uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, orig, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = errno
			return
		}
		fd = int(r)
	}); err != nil || dupErr != nil {
		return nil
	}
	ps := &pollSock{p: p, fd: fd, gen: pollGen.Add(1), remote: nc.RemoteAddr(), writable: make(chan struct{}, 1), dead: make(chan struct{})}
	p.add(ps)
	ev := syscall.EpollEvent{Events: oneShot, Fd: ps.slot, Pad: ps.gen} // registered, not yet armed
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.remove(ps)
		syscall.Close(fd)
		s.log.Warn("realtime: epoll registration failed; reading the socket on its own goroutine", "err", err)
		return nil
	}
	// The duplicate shares the socket, already non-blocking; closing nc takes
	// it out of Go's poller without shutting it down.
	nc.Close()
	return ps
}

// ensurePoller starts the server's poller with its first socket.
func (s *Server) ensurePoller() *poller {
	if s.cfg.NoPoller {
		return nil
	}
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.poller == nil && !s.pollerOff {
		p, err := newPoller()
		if err != nil {
			s.log.Warn("realtime: no epoll; reading each socket on its own goroutine", "err", err)
			s.pollerOff = true
			return nil
		}
		s.poller = p
	}
	return s.poller
}

// start reads what the client sent behind its handshake, then waits for more.
func (ps *pollSock) start(c *conn, pre []byte) {
	ps.c = c
	ps.in = pre
	ps.resume()
}

// event handles what epoll reported; the registration is disarmed now.
func (ps *pollSock) event(bits uint32) {
	ps.armMu.Lock()
	gotIn := ps.readArmed && bits&readEvents != 0
	gotOut := ps.writeWait && bits&writeEvents != 0
	if gotIn {
		ps.readArmed = false
	}
	if gotOut {
		ps.writeWait = false
	}
	ps.rearmLocked()
	ps.armMu.Unlock()
	if gotOut {
		select {
		case ps.writable <- struct{}{}:
		default:
		}
	}
	if gotIn {
		ps.readable()
	}
}

// rearmLocked enables the registration for whatever is still awaited
// (ps.armMu held).
func (ps *pollSock) rearmLocked() {
	var mask uint32
	if ps.readArmed {
		mask |= readEvents
	}
	if ps.writeWait {
		mask |= writeEvents
	}
	if mask == 0 {
		return
	}
	ps.fdMu.RLock()
	defer ps.fdMu.RUnlock()
	if ps.fd < 0 {
		return
	}
	ev := syscall.EpollEvent{Events: mask | oneShot, Fd: ps.slot, Pad: ps.gen}
	syscall.EpollCtl(ps.p.epfd, syscall.EPOLL_CTL_MOD, ps.fd, &ev)
}

func (ps *pollSock) armRead() {
	ps.armMu.Lock()
	ps.readArmed = true
	ps.rearmLocked()
	ps.armMu.Unlock()
}

// readable reads what arrived, on the poller goroutine.
func (ps *pollSock) readable() {
	c := ps.c
	var data []byte
	var n int
	var err error
	if len(ps.in) > 0 { // the rest of a frame: read it behind its start
		ps.in = slices.Grow(ps.in, 4096)
		n, err = ps.read(ps.in[len(ps.in):cap(ps.in)])
		data = ps.in[:len(ps.in)+max(n, 0)]
	} else {
		n, err = ps.read(ps.p.buf)
		data = ps.p.buf[:max(n, 0)]
	}
	if err == syscall.EAGAIN {
		ps.armRead()
		return
	}
	if err != nil || n == 0 {
		c.teardown()
		return
	}
	c.lastRead.Store(c.s.mono())
	ps.consume(data, false)
}

// resume goes on with the bytes left behind a handed-off message.
func (ps *pollSock) resume() {
	ps.consume(ps.in, true)
}

// consume handles the complete frames in data and keeps the rest. On the
// poller a message other than a heartbeat goes to a worker with the rest of
// data, and the worker carries on; on a worker (onWorker) messages are
// handled in turn. Whoever stops with nothing to handle rearms the socket.
func (ps *pollSock) consume(data []byte, onWorker bool) {
	c := ps.c
	for {
		h, hn, ok := parseHeader(data)
		if !ok {
			c.goAway(ws.StatusProtocolError, "")
			c.teardown()
			return
		}
		if hn == 0 {
			break
		}
		if !c.checkHeader(h, &ps.asm) {
			c.teardown()
			return
		}
		if int64(len(data)-hn) < h.Length {
			break
		}
		end := hn + int(h.Length)
		payload := data[hn:end]
		data = data[end:]
		ws.Cipher(payload, h.Mask, 0)
		op, msg, complete, stop := c.takeFrame(&ps.asm, h, payload, false)
		if stop {
			c.teardown()
			return
		}
		if !complete {
			continue
		}
		if reply, ok := c.heartbeat(op, msg); ok {
			c.sendNow(reply, ps.tryWrite)
			continue
		}
		if h.OpCode != ws.OpContinuation { // still a view of the read buffer
			msg = append([]byte(nil), msg...)
		}
		if onWorker {
			c.handleSafely(op, msg)
			continue
		}
		ps.keep(data)
		c.s.workers.submit(func() {
			c.handleSafely(op, msg)
			ps.resume()
		})
		return
	}
	ps.keep(data)
	ps.armRead()
}

// keep holds rest (an incomplete frame) for the next read.
func (ps *pollSock) keep(rest []byte) {
	if len(rest) == 0 {
		ps.in = nil // an idle socket keeps no buffer
		return
	}
	ps.in = append(ps.in[:0], rest...)
}

// sysIO runs one read or write system call on the descriptor, which cannot
// be closed (and its number reused) meanwhile.
func (ps *pollSock) sysIO(call func(fd int, b []byte) (int, error), b []byte) (int, error) {
	ps.fdMu.RLock()
	defer ps.fdMu.RUnlock()
	if ps.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, err := call(ps.fd, b)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func (ps *pollSock) read(b []byte) (int, error) { return ps.sysIO(syscall.Read, b) }

// tryWrite writes what the socket buffer takes now; a full buffer is not an error.
func (ps *pollSock) tryWrite(b []byte) (int, error) {
	n, err := ps.sysIO(syscall.Write, b)
	switch err {
	case nil:
		return n, nil
	case syscall.EAGAIN:
		return 0, nil
	}
	return 0, err
}

// Write writes all of b, waiting for the socket to drain when it is full.
// The sweeper ends a wait that lasts too long by shutting the socket down.
func (ps *pollSock) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := ps.tryWrite(b)
		if err != nil {
			return written, err
		}
		written += n
		b = b[n:]
		if len(b) > 0 && n == 0 {
			if err := ps.waitWritable(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (ps *pollSock) waitWritable() error {
	ps.armMu.Lock()
	ps.writeWait = true
	ps.rearmLocked()
	ps.armMu.Unlock()
	select {
	case <-ps.writable:
		return nil
	case <-ps.dead:
		return net.ErrClosed
	}
}

// Close shuts the socket down: the client sees it closed, a waiting writer
// wakes to fail, and the reader reads the end and tears the connection down.
func (ps *pollSock) Close() error {
	ps.fdMu.RLock()
	defer ps.fdMu.RUnlock()
	if ps.fd >= 0 {
		syscall.Shutdown(ps.fd, syscall.SHUT_RDWR)
	}
	return nil
}

func (ps *pollSock) RemoteAddr() net.Addr { return ps.remote }

// release closes the descriptor once the connection is torn down.
func (ps *pollSock) release() {
	ps.fdMu.Lock()
	if ps.fd >= 0 {
		syscall.EpollCtl(ps.p.epfd, syscall.EPOLL_CTL_DEL, ps.fd, nil)
		syscall.Close(ps.fd)
		ps.fd = -1
		ps.p.remove(ps)
	}
	ps.fdMu.Unlock()
	ps.deadOnce.Do(func() { close(ps.dead) })
}

// parseHeader reads a client frame's header from the start of b; n == 0
// means b does not hold all of it yet. ok is false for a header no valid
// frame has (a 64-bit length with its top bit set).
func parseHeader(b []byte) (h ws.Header, n int, ok bool) {
	if len(b) < 2 {
		return h, 0, true
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] >> 4) & 0x7
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, true
		}
		h.Length = int64(b[2])<<8 | int64(b[3])
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, true
		}
		if b[2]&0x80 != 0 {
			return h, 0, false
		}
		for _, x := range b[2:10] {
			h.Length = h.Length<<8 | int64(x)
		}
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, true
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, true
}
