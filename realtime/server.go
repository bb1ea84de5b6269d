// Package realtime is a server that speaks the Supabase Realtime protocol
// (realtime-protocol.md), so the unmodified supabase-js client can subscribe
// to postgres_changes of the tables it serves. It knows schemas, tables,
// columns, JWT claims and row policies; what the rows mean is the caller's.
//
// The caller hands it committed changes in commit order (Publish); it
// matches each change against an index of subscriptions, encodes it once,
// and queues one frame per subscribed channel on each socket's bounded queue.
package realtime

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/internal/ratelog"
)

// Config configures a Server. Only Secret is required.
type Config struct {
	// Secret is the HS256 key that signs anon keys and access tokens.
	Secret []byte
	// Tables are the tables served.
	Tables []Table
	// Policy authorizes joins and restricts rows; nil allows everything.
	Policy Policy
	// Snapshot, if set, is read after each new subscription so it starts from
	// the current rows (the "no gap" guarantee, see docs/realtime.md).
	Snapshot Snapshotter
	// JoinErrorDelay delays every error join reply, as the real server does
	// to slow down the client's endless retries. 0 means 5s; negative means none.
	JoinErrorDelay time.Duration
	// SendQueue bounds the frames waiting on one connection; a client that
	// lets it fill is disconnected. 0 means 1024.
	SendQueue int
	// SendQueueBytes bounds the bytes of the frames waiting on one connection
	// (queued or being written), so a client that does not read cannot make
	// the server hold SendQueue frames of up to MaxMessageSize each; a client
	// that lets it fill is disconnected as for SendQueue. One frame larger
	// than the budget still goes out when nothing else waits. 0 means 4 MiB.
	SendQueueBytes int
	// IdleTimeout closes a socket that sent nothing for this long (clients
	// heartbeat every 25s). 0 means 60s.
	IdleTimeout time.Duration
	// WriteTimeout bounds one socket write. 0 means 10s.
	WriteTimeout time.Duration
	// MaxConnections bounds open sockets: past it an upgrade is refused with
	// 429 {"error":"Too many connected users"}, as the real server refuses a
	// tenant's connections past its limit, so a flood of sockets cannot take
	// the descriptors that the API (and the clients' polling fallback) need.
	// 0 means no bound.
	MaxConnections int
	// MaxChannels bounds channels per connection. 0 means 100.
	MaxChannels int
	// MaxMessageSize bounds one client message. 0 means 1 MiB.
	MaxMessageSize int
	// MaxBroadcastPayload bounds the payload of one broadcast (websocket or
	// REST); a larger one is dropped, and with broadcast.ack the sender gets
	// the error reply "payload_size_exceeded", as the real server does past
	// its tenant's max_payload_size_in_kb. 0 means 256 KiB, the Free plan's
	// published limit (realtime-protocol.md §15.1).
	MaxBroadcastPayload int
	// SnapshotTimeout bounds one Snapshot call. 0 means 10s.
	SnapshotTimeout time.Duration
	// Registerer receives the dollr_realtime_* metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// NoPoller reads each socket on its own goroutine even where the epoll
	// poller is available (Linux); elsewhere that is the only way.
	NoPoller bool
}

type tableKey struct{ schema, name string }

// Server is a Supabase-Realtime-compatible WebSocket server.
type Server struct {
	cfg    Config
	policy Policy
	log    *slog.Logger
	m      *metrics
	tables map[tableKey]*table
	list   []*table
	idx    *index
	now    func() time.Time

	// Publish state, owned by whoever holds pubMu.
	pubMu   sync.Mutex
	rv      rowView
	gen     uint64
	touched []*channel

	admitted atomic.Int64 // sockets counted against MaxConnections, from admit until removeConn

	connMu    sync.Mutex
	conns     map[*conn]struct{}
	closing   bool
	sweeping  bool      // the sweeper runs (sweep.go)
	poller    *poller   // reads the sockets (poller_linux.go); started with the first
	pollerOff bool      // no poller: it could not start, or the server closed
	epoch     time.Time // origin of mono
	wg        sync.WaitGroup
	workers   *workers // run handed-off messages (workers.go)

	topicMu sync.Mutex
	topics  map[string][]*channel

	seed   maphash.Seed
	keyMu  sync.Mutex
	apikey map[string]*Token // verified apikeys: connections with the same key share one

	// Errors that clients' retries repeat (a policy or snapshot failing for
	// everyone while the database is down), logged at most once a second.
	policyErrors   ratelog.Limiter
	snapshotErrors ratelog.Limiter
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.JoinErrorDelay == 0 {
		cfg.JoinErrorDelay = 5 * time.Second
	} else if cfg.JoinErrorDelay < 0 {
		cfg.JoinErrorDelay = 0
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 1024
	}
	if cfg.SendQueueBytes <= 0 {
		cfg.SendQueueBytes = 4 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = 100
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 1 << 20
	}
	if cfg.MaxBroadcastPayload <= 0 {
		cfg.MaxBroadcastPayload = 256 << 10
	}
	if cfg.SnapshotTimeout <= 0 {
		cfg.SnapshotTimeout = 10 * time.Second
	}
	s := &Server{
		cfg:     cfg,
		policy:  cfg.Policy,
		log:     cfg.Logger,
		m:       newMetrics(cfg.Registerer),
		tables:  make(map[tableKey]*table),
		idx:     newIndex(),
		now:     time.Now,
		epoch:   time.Now(),
		conns:   make(map[*conn]struct{}),
		topics:  make(map[string][]*channel),
		seed:    maphash.MakeSeed(),
		apikey:  make(map[string]*Token),
		workers: newWorkers(maxWorkers),
	}
	if s.policy == nil {
		s.policy = allowAll
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range cfg.Tables {
		tb := newTable(t)
		s.tables[tableKey{t.Schema, t.Name}] = tb
		s.list = append(s.list, tb)
	}
	return s
}

// ServeHTTP upgrades a request to a realtime socket. Mount it at
// /realtime/v1/websocket (and, for the real server's own path, /socket/websocket).
// The apikey query parameter (or x-api-key header) must be a valid token, or
// the upgrade is refused with 401 and {"error": "..."}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key := r.Header.Get("x-api-key")
	if key == "" {
		key = q.Get("apikey")
	}
	if key == "" {
		refuse(w, http.StatusUnauthorized, errAPIKeyMissing.Upgrade)
		return
	}
	tok, err := s.verifyAPIKey(key)
	if err != nil {
		refuse(w, http.StatusUnauthorized, err.(*TokenError).Upgrade)
		return
	}
	s.connMu.Lock()
	closing := s.closing
	s.connMu.Unlock()
	if closing {
		refuse(w, http.StatusServiceUnavailable, "Realtime is restarting, please standby")
		return
	}
	if !s.admit() {
		s.m.refused.Inc()
		refuse(w, http.StatusTooManyRequests, "Too many connected users")
		return
	}
	nc, rw, _, err := ws.HTTPUpgrader{Timeout: s.cfg.WriteTimeout}.Upgrade(r, w)
	if err != nil {
		s.admitted.Add(-1)
		if nc != nil {
			nc.Close()
		}
		return
	}
	// Bytes the client sent right behind its handshake are already buffered.
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		pre, _ = rw.Reader.Peek(n)
		pre = append([]byte(nil), pre...)
	}
	var tr transport = nc
	ps := s.pollSocket(nc)
	if ps != nil {
		tr = ps
	}
	c := newConn(s, tr, parseVersion(q.Get("vsn")), tok)
	s.connMu.Lock()
	if s.closing {
		s.connMu.Unlock()
		s.admitted.Add(-1)
		c.kill()
		if ps != nil {
			ps.release()
		}
		return
	}
	s.conns[c] = struct{}{}
	s.startSweeper()
	s.wg.Add(1)
	s.connMu.Unlock()
	s.m.connections.Inc()
	if ps != nil {
		ps.start(c, pre)
		return
	}
	// A fresh goroutine reads the socket, so the HTTP server's goroutine, its
	// buffers and the request can be freed.
	go c.readLoop(nc, pre)
}

// verifyAPIKey verifies an apikey, sharing one *Token among the connections
// that present the same key (typically every client of an installation).
func (s *Server) verifyAPIKey(raw string) (*Token, error) {
	now := s.now()
	s.keyMu.Lock()
	tok := s.apikey[raw]
	s.keyMu.Unlock()
	if tok != nil && tok.Exp.After(now) {
		return tok, nil
	}
	tok, err := VerifyToken(s.cfg.Secret, strings.Clone(raw), now) // not a view into the request
	if err != nil {
		return nil, err
	}
	s.keyMu.Lock()
	if len(s.apikey) >= 64 {
		clear(s.apikey)
	}
	s.apikey[tok.Raw] = tok
	s.keyMu.Unlock()
	return tok, nil
}

func (s *Server) tokenHash(raw string) uint64 { return maphash.String(s.seed, raw) }

// logPolicyFailure logs a Policy error other than a *JoinError (the policy
// failed rather than refused): clients retry joins and refreshes in a loop.
func (s *Server) logPolicyFailure(topic string, err error) {
	s.logLimited(&s.policyErrors, "realtime: policy failed", "topic", topic, "err", err)
}

// logLimited logs an error through l: at most once a second, with the number
// of occurrences left out since.
func (s *Server) logLimited(l *ratelog.Limiter, msg string, args ...any) {
	if ok, suppressed := l.Allow(time.Now()); ok {
		s.log.Error(msg, append(args, "suppressed", suppressed)...)
	}
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Close closes every socket, telling clients the server is going away (close
// code 1001, after which supabase-js reconnects), and waits for them until ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.connMu.Lock()
	s.closing = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.connMu.Unlock()
	for _, c := range conns {
		c.goAway(ws.StatusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.workers.stop()
	defer s.stopPoller(done)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range conns {
			c.kill()
		}
		<-done
		return ctx.Err()
	}
}

// stopPoller ends the poller once the sockets it reads are gone.
func (s *Server) stopPoller(gone <-chan struct{}) {
	<-gone
	s.connMu.Lock()
	p := s.poller
	s.poller, s.pollerOff = nil, true // no sockets come after Close
	s.connMu.Unlock()
	if p != nil {
		p.stop()
	}
}

// admit counts one more socket against MaxConnections, if it allows one.
func (s *Server) admit() bool {
	n := s.admitted.Add(1)
	if max := s.cfg.MaxConnections; max > 0 && n > int64(max) {
		s.admitted.Add(-1)
		return false
	}
	return true
}

func (s *Server) removeConn(c *conn) {
	s.connMu.Lock()
	delete(s.conns, c)
	s.connMu.Unlock()
	s.admitted.Add(-1)
	s.m.connections.Dec()
	s.wg.Done()
}

// Publish hands the server committed changes, in commit order. It matches and
// queues them and returns without waiting for any socket. Changes of tables
// the server does not serve are ignored.
func (s *Server) Publish(changes []dollr.Change) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.m.published.Add(float64(len(changes)))
	for i := range changes {
		s.dispatch(&changes[i])
	}
}

func (s *Server) dispatch(c *dollr.Change) {
	t := s.tables[tableKey{c.Schema, c.Table}]
	if t == nil {
		return
	}
	row := testedRow(c)
	if row == nil {
		return
	}
	rv := &s.rv
	rv.reset(t, row)
	s.gen++
	touched := s.touched[:0]
	s.idx.mu.RLock()
	if ti := s.idx.tables[t.id]; ti != nil {
		for _, col := range ti.cols {
			v, null, present := rv.get(col)
			if !present || null {
				continue
			}
			for _, sb := range ti.byCol[col][v.key(t.cols[col].kind)] {
				touched = s.consider(touched, sb, c, rv)
			}
		}
		for _, sb := range ti.scan {
			touched = s.consider(touched, sb, c, rv)
		}
	}
	s.idx.mu.RUnlock()
	if len(touched) > 0 {
		data := encodeChangeData(c, t)
		for _, ch := range touched {
			ch.deliver(c, data)
		}
		clear(touched)
	}
	s.touched = touched[:0]
}

// consider adds sb's channel to touched when the change matches sb. Each
// channel collects the ids of its matching bindings (publisher-owned scratch).
func (s *Server) consider(touched []*channel, sb *sub, c *dollr.Change, rv *rowView) []*channel {
	if snap := sb.snapSeq.Load(); snap != 0 && c.Seq <= snap {
		return touched
	}
	if !sb.matches(c.Type, rv) {
		return touched
	}
	ch := sb.ch
	if ch.gen != s.gen {
		ch.gen = s.gen
		ch.ids = ch.ids[:0]
		ch.hits = ch.hits[:0]
		touched = append(touched, ch)
	}
	ch.hits = append(ch.hits, sb)
	for _, id := range ch.ids {
		if id == sb.id {
			return touched
		}
	}
	ch.ids = append(ch.ids, sb.id)
	return touched
}
