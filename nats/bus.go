// Package nats carries committed changes between `dollr serve` processes over
// a NATS JetStream stream, so that every server's realtime clients get live
// events, not only those of the server that captures changes (docs/nats.md).
//
// The capturing server calls Publish for each batch its store's change feed
// delivers; every server (the capturer included) runs Follow and hands the
// batches to its realtime server.
package nats

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dollr/dollr"
	"github.com/dollr/dollr/nats/internal/wire"
)

// StreamName is the JetStream stream the bus uses, created if missing.
const StreamName = "DOLLR_CHANGES"

// subjectPrefix starts the subject of every installation's changes:
// dollr.changes.<store id>.
const subjectPrefix = "dollr.changes."

// Defaults for Config's zero values.
const (
	DefaultMaxAge = time.Hour
	// DefaultMaxBytes bounds the stream's size on the JetStream store: the
	// oldest batches are discarded beyond it. Followers never replay old
	// batches, so only a follower cut off for long can miss what it drops.
	DefaultMaxBytes            = 1 << 30
	DefaultPublishTimeout      = 10 * time.Second
	DefaultStreamCheckInterval = 5 * time.Second
	// DefaultPingInterval is how often the connection pings NATS; after
	// maxPingsOut unanswered pings it is declared dead and re-established
	// (with a cluster, on another server). NATS's own 2 minutes and 2 pings
	// would leave a link that drops packets looking connected for 4 minutes.
	DefaultPingInterval = 10 * time.Second
	maxPingsOut         = 3
	// duplicateWindow is how long the stream remembers message ids: a batch
	// re-captured within it after a failover is stored once.
	duplicateWindow = 2 * time.Minute
	// headroom is what a message leaves of the connection's max payload for
	// its headers (message id, expected stream, part offset, publisher).
	headroom = 1024
)

// Message headers besides Nats-Msg-Id.
const (
	// hdrOffset, on a message carrying part of one transaction (one that
	// does not fit in a message), is the index within the transaction of the
	// message's first change. Absent: the message holds whole transactions.
	hdrOffset = "Dollr-Offset"
	// hdrPublisher names the server that published the message.
	hdrPublisher = "Dollr-Publisher"
)

const streamDescription = "dollr committed changes, one message per change-feed batch"

// Config configures a Bus.
type Config struct {
	// URL is the NATS server URL, e.g. nats://127.0.0.1:4222 (a comma-separated
	// list names several servers of a cluster).
	URL string
	// StoreID names the installation: servers sharing a database share it,
	// and it is the last token of the subject. It must not contain '.', '*',
	// '>' or white space.
	StoreID string
	// MaxAge bounds how long the stream keeps a batch. Default DefaultMaxAge.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest batches are discarded
	// beyond it. Default DefaultMaxBytes; negative: unlimited.
	//
	// Both limits apply when the bus creates the stream. An existing stream
	// keeps its limits (a difference is logged), except that one the bus
	// created without a size limit gets MaxBytes.
	MaxBytes int64
	// PublishTimeout bounds one message's wait for the stream's
	// acknowledgement. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// StreamCheckInterval is how often Follow checks that the stream was not
	// deleted or recreated under it. Default DefaultStreamCheckInterval.
	StreamCheckInterval time.Duration
	// ReconnectWait is the pause between reconnect attempts; default 1s.
	// The connection retries forever.
	ReconnectWait time.Duration
	// PingInterval is how often the connection checks that NATS still
	// answers. Default DefaultPingInterval.
	PingInterval time.Duration
	// Name is the connection's name as NATS monitoring shows it.
	Name       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer // dollr_nats_* metrics; nil: not registered
}

// position is how far a follower has handed changes on: every change of
// transactions before seq, and the first off changes of transaction seq
// (math.MaxInt: all of them).
type position struct {
	seq uint64
	off int
}

// Bus is one server's connection to the change stream. Publish may be called
// concurrently with Follow; Follow calls run one at a time.
type Bus struct {
	nc         *natsgo.Conn
	js         jetstream.JetStream
	streamCfg  jetstream.StreamConfig // what the bus creates when the stream is missing
	subject    string
	timeout    time.Duration
	checkEvery time.Duration
	publisher  string // the hdrPublisher value of this bus's messages
	log        *slog.Logger
	m          *metrics
	closed     chan struct{} // closed by the connection's ClosedHandler

	streamMu sync.Mutex
	stream   jetstream.Stream // replaced when the stream is recreated

	pubMu     sync.Mutex
	capturing bool // the last Publish succeeded and no other publisher was seen since; guarded by pubMu

	lastRead atomic.Int64 // unix nanoseconds of the last message Follow read (Connect at first)

	watchProbed func(error) // tests: told of each WatchReachable probe

	followMu sync.Mutex
	next     atomic.Uint64 // the stream sequence Follow reads next; written under followMu
	pos      position      // guarded by followMu
	created  time.Time     // creation time of the stream Follow reads; guarded by followMu
}

var _ dollr.ChangeFeed = (*Bus)(nil)

// Connect connects to NATS, creates the stream if it does not exist, and
// fixes the position Follow starts from: the first message published after
// Connect returns. A NATS server that cannot be reached now is an error;
// once connected, the connection is re-established forever.
func Connect(ctx context.Context, c Config) (*Bus, error) {
	if c.StoreID == "" || strings.ContainsAny(c.StoreID, ".*> \t\r\n") {
		return nil, fmt.Errorf("nats: store id %q is not a subject token", c.StoreID)
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	switch {
	case c.MaxBytes == 0:
		c.MaxBytes = DefaultMaxBytes
	case c.MaxBytes < 0:
		c.MaxBytes = -1
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.StreamCheckInterval <= 0 {
		c.StreamCheckInterval = DefaultStreamCheckInterval
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{subject: subjectPrefix + c.StoreID, timeout: c.PublishTimeout, checkEvery: c.StreamCheckInterval,
		publisher: strings.TrimSpace(c.Name + " " + rand.Text()[:10]), log: log, closed: make(chan struct{}),
		streamCfg: jetstream.StreamConfig{
			Name:        StreamName,
			Description: streamDescription,
			Subjects:    []string{subjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			MaxAge:      c.MaxAge,
			MaxBytes:    c.MaxBytes,
			Discard:     jetstream.DiscardOld,
			Duplicates:  min(duplicateWindow, c.MaxAge),
		}}
	b.lastRead.Store(time.Now().UnixNano())
	b.m = newMetrics(c.Registerer, b)
	nc, err := natsgo.Connect(c.URL,
		natsgo.Name(c.Name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(c.ReconnectWait),
		natsgo.PingInterval(c.PingInterval),
		natsgo.MaxPingsOutstanding(maxPingsOut),
		natsgo.DrainTimeout(5*time.Second),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			log.Warn("nats disconnected; reconnecting", "err", err)
		}),
		natsgo.ReconnectHandler(func(nc *natsgo.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, _ *natsgo.Subscription, err error) {
			log.Warn("nats error", "err", err)
		}),
		natsgo.ClosedHandler(func(*natsgo.Conn) { close(b.closed) }),
	)
	if err != nil {
		return nil, fmt.Errorf("nats: connect %s: %w", RedactURL(c.URL), err)
	}
	b.nc = nc
	if err := b.open(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "stream", StreamName, "subject", b.subject,
		"max_payload", nc.MaxPayload())
	return b, nil
}

func (b *Bus) open(ctx context.Context) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	b.js = js
	s, err := b.ensureStream(ctx, false)
	if err != nil {
		return err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", StreamName, err)
	}
	b.checkLimits(ctx, info)
	b.next.Store(info.State.LastSeq + 1)
	b.created = info.Created
	return nil
}

// ensureStream returns the stream, creating it if it is missing (logged if
// missing is true: it existed before, NATS lost it).
func (b *Bus) ensureStream(ctx context.Context, missing bool) (jetstream.Stream, error) {
	s, err := b.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if missing {
			b.log.Warn("nats: the stream is missing (NATS lost its store?); recreating it. Changes published before are lost to realtime on the servers that had not read them",
				"stream", StreamName)
		}
		s, err = b.createStream(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %s: %w", StreamName, err)
	}
	b.streamMu.Lock()
	b.stream = s
	b.streamMu.Unlock()
	return s, nil
}

// createStream creates the stream, or takes the one another server created
// first. Several servers recreating a lost stream at once can get a transient
// server error from JetStream ("error creating store for stream"), so those
// are retried a few times.
func (b *Bus) createStream(ctx context.Context) (jetstream.Stream, error) {
	for attempt := 1; ; attempt++ {
		s, err := b.js.CreateStream(ctx, b.streamCfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return b.js.Stream(ctx, StreamName)
		}
		var apiErr *jetstream.APIError
		if err == nil || !errors.As(err, &apiErr) || apiErr.Code < 500 || attempt == 5 {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
		if s, err := b.js.Stream(ctx, StreamName); err == nil {
			return s, nil // created by another server meanwhile
		}
	}
}

func (b *Bus) currentStream() jetstream.Stream {
	b.streamMu.Lock()
	defer b.streamMu.Unlock()
	return b.stream
}

// checkLimits gives a stream the bus created before it had a size limit
// (MaxBytes unlimited) the configured one; other differences from the
// configured limits are logged, and the stream is used as it is (servers
// configured differently would otherwise undo each other's changes).
func (b *Bus) checkLimits(ctx context.Context, info *jetstream.StreamInfo) {
	have, want := info.Config, b.streamCfg
	if have.MaxBytes <= 0 && want.MaxBytes > 0 && have.Description == streamDescription {
		cfg := have
		cfg.MaxBytes, cfg.Discard = want.MaxBytes, jetstream.DiscardOld
		if _, err := b.js.UpdateStream(ctx, cfg); err != nil {
			b.log.Warn("nats: cannot bound the stream's size; using it as it is", "stream", StreamName, "err", err)
		} else {
			b.log.Info("nats: bounded the stream's size", "stream", StreamName, "max_bytes", cfg.MaxBytes)
			have = cfg
		}
	}
	if have.MaxAge != want.MaxAge || have.MaxBytes != want.MaxBytes || have.Discard != want.Discard {
		b.log.Warn("nats: the stream exists with other limits than configured; using it as it is",
			"stream", StreamName, "max_age", have.MaxAge, "max_bytes", have.MaxBytes, "discard", have.Discard.String(),
			"configured_max_age", want.MaxAge, "configured_max_bytes", want.MaxBytes)
	}
}

// Close drains the connection: pending publishes are flushed, then it closes.
// Call it after Publish and Follow have returned.
func (b *Bus) Close() error {
	b.setCapturing(false, stopping, "")
	if err := b.nc.Drain(); err != nil {
		// Not connected (or already closing): nothing left to flush.
		b.nc.Close()
		return nil
	}
	select {
	case <-b.closed:
	case <-time.After(10 * time.Second): // DrainTimeout closes it well before
		b.nc.Close()
	}
	return nil
}

// Publish stores a batch (one or more transactions' changes, in order) in
// the stream and returns once the stream has acknowledged it, so a change
// feed that acknowledges its source after handle returns (a replication
// slot) does so only once the batch is durable.
//
// A batch that does not fit in one message (the connection's max payload,
// less room for headers) is cut into several, in order, each acknowledged
// before the next is sent: whole transactions where they fit, else one
// transaction's changes over several messages. A message of whole
// transactions has the id <store id>:<last Seq>; a part of one transaction
// <store id>:<Seq>:<offset>+<count>, offset being the index of its first
// change within the transaction. The same message published again within the
// stream's duplicate window (two minutes), as a new capturer does after a
// failover, is stored once; Follow drops what it already handed on.
//
// If the stream is missing (NATS restarted with an empty store), Publish
// recreates it and publishes again.
func (b *Bus) Publish(ctx context.Context, batch []dollr.Change) error {
	if len(batch) == 0 {
		return nil
	}
	msgs := b.split(batch)
	stored := false
	for _, m := range msgs {
		dup, err := b.publishMsg(ctx, m)
		if err != nil {
			b.m.errors.WithLabelValues(opPublish).Inc()
			b.setCapturing(false, "publishing failed", "")
			return fmt.Errorf("nats: publish seq %d: %w", m.seq, err)
		}
		stored = stored || !dup
	}
	if len(msgs) > 0 {
		if stored {
			b.m.published.WithLabelValues(resultStored).Inc()
		} else {
			b.m.published.WithLabelValues(resultDuplicate).Inc()
		}
		b.m.lastPublished.Set(float64(msgs[len(msgs)-1].seq))
		b.setCapturing(true, "", "")
	}
	return nil
}

// setCapturing logs when this server starts or stops publishing captured
// changes (holding the change feed: on PostgreSQL, the replication slot).
func (b *Bus) setCapturing(on bool, why, other string) {
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	if b.capturing == on {
		return
	}
	b.capturing = on
	if on {
		b.m.capturing.Set(1)
		b.log.Info("capturing: this server holds the change feed and publishes its changes to NATS", "subject", b.subject)
		return
	}
	b.m.capturing.Set(0)
	if why == stopping {
		b.log.Info("stopped capturing: the server is stopping", "subject", b.subject)
	} else if other != "" {
		b.log.Info("stopped capturing: another server publishes the changes now", "publisher", other)
	} else {
		b.log.Info("stopped capturing: "+why+"; the change feed is retried and may move to another server", "subject", b.subject)
	}
}

const stopping = "the server is stopping"

// reachableProbeTimeout bounds one probe of WaitReachable and
// WatchReachable; reachableRetry is WaitReachable's pause after a probe that
// failed at once (NATS reconnecting); DefaultWatchInterval is WatchReachable's
// pause between probes, and watchFailures how many failed probes in a row
// mean that NATS is gone (one could be a passing stall).
const (
	reachableProbeTimeout = 5 * time.Second
	reachableRetry        = time.Second
	DefaultWatchInterval  = 5 * time.Second
	watchFailures         = 2
)

// probe asks JetStream for the stream's info: nil if it answers. The bus
// needs the right to ask anyway (Connect does); "stream not found" counts as
// an answer (Publish recreates the stream), while JetStream's "not
// available" (no responders) does not.
func (b *Bus) probe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, min(b.timeout, reachableProbeTimeout))
	defer cancel()
	_, err := b.js.Stream(pctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}

// WatchReachable probes JetStream every interval (DefaultWatchInterval if
// 0) until ctx ends, and calls lost, then returns, once watchFailures probes
// in a row went unanswered. A server runs it while it follows the change
// feed to publish: waiting for the slot, or holding it with nothing to
// publish, it would otherwise learn that it lost NATS only from a publish
// timing out after taking the slot.
func (b *Bus) WatchReachable(ctx context.Context, interval time.Duration, lost func(error)) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
		err := b.probe(ctx)
		if ctx.Err() != nil {
			return
		}
		if b.watchProbed != nil {
			b.watchProbed(err)
		}
		if err == nil {
			failed = 0
			continue
		}
		if failed++; failed == watchFailures {
			b.log.Warn("NATS stopped answering; this server gives the change feed up", "err", err)
			lost(err)
			return
		}
	}
}

// CaptureFeed is feed (the store's change feed) as this server reads it to
// publish to the bus: Follow takes the feed only once NATS answers
// (WaitReachable), and gives it up, returning an error, when NATS stops
// answering while it waits for the replication slot or holds it idle
// (WatchReachable). So a server cut off from NATS leaves the slot to one
// that can publish, rather than taking it back after each failed publish.
func (b *Bus) CaptureFeed(feed dollr.ChangeFeed) dollr.ChangeFeed { return captureFeed{feed, b} }

type captureFeed struct {
	dollr.ChangeFeed
	bus *Bus
}

var errLost = errors.New("nats: NATS stopped answering")

func (f captureFeed) Follow(ctx context.Context, after uint64, handle func([]dollr.Change) error) error {
	if err := f.bus.WaitReachable(ctx); err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		f.bus.WatchReachable(fctx, 0, func(err error) { cancel(fmt.Errorf("%w: %v", errLost, err)) })
	}()
	err := f.ChangeFeed.Follow(fctx, after, handle)
	cause := context.Cause(fctx)
	cancel(nil)
	<-watching
	if ctx.Err() == nil && errors.Is(cause, errLost) {
		return cause // not the caller stopping: it retries, and WaitReachable waits
	}
	return err
}

// WaitReachable returns once JetStream answers a request (one round trip when
// it does), or with ctx's error. A server calls it before it takes the change
// feed to publish: cut off from NATS, it must leave the feed (on PostgreSQL,
// the one replication slot) to a server that can publish, instead of taking
// it back after every failed publish and stalling realtime on every server.
// A connection that sees no reset (a dropped link) still looks connected, so
// only a request proves NATS reachable (probe).
func (b *Bus) WaitReachable(ctx context.Context) error {
	var since time.Time // of the first failed probe
	for {
		err := b.probe(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			if !since.IsZero() {
				b.log.Info("NATS answers again; this server may capture changes", "after", time.Since(since).Round(time.Millisecond))
			}
			return nil
		}
		if since.IsZero() {
			since = time.Now()
			b.m.errors.WithLabelValues(opUnreachable).Inc()
			b.log.Warn("NATS does not answer; leaving the change feed to servers that reach it until it does", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(reachableRetry):
		}
	}
}

// outMsg is one message of a batch.
type outMsg struct {
	body []byte
	id   string
	seq  uint64 // of its last change
	off  int    // for a part of one transaction, the index of its first change; -1 for whole transactions
}

// split cuts a batch into messages that fit the connection's max payload.
// A change that cannot be encoded, or that does not fit in a message on its
// own, is logged, counted and left out: retrying cannot help and would hold
// up every later change.
func (b *Bus) split(batch []dollr.Change) []outMsg {
	store := b.subject[len(subjectPrefix):]
	limit := int(b.nc.MaxPayload()) - headroom
	whole := func(body []byte, last uint64) outMsg {
		return outMsg{body: body, id: store + ":" + strconv.FormatUint(last, 10), seq: last, off: -1}
	}
	each, err := wire.EncodeEach(batch)
	if err == nil {
		if body := wire.Join(each); len(body) <= limit {
			return []outMsg{whole(body, batch[len(batch)-1].Seq)}
		}
	}
	// Slow path: change by change.
	if err != nil {
		each = make([][]byte, len(batch))
		for i := range batch {
			e, err := wire.EncodeEach(batch[i : i+1])
			if err != nil {
				b.m.errors.WithLabelValues(opEncode).Inc()
				b.log.Error("nats: change not published: cannot encode it; realtime clients miss it",
					"seq", batch[i].Seq, "err", err)
				continue
			}
			each[i] = e[0]
		}
	}
	var out []outMsg
	var group [][]byte // whole transactions
	var groupLast uint64
	flush := func() {
		if len(group) > 0 {
			out = append(out, whole(wire.Join(group), groupLast))
			group = nil
		}
	}
	for i := 0; i < len(batch); {
		seq := batch[i].Seq
		j := i
		for j < len(batch) && batch[j].Seq == seq {
			j++
		}
		var txn [][]byte // the transaction's encodable changes
		var idx []int    // their index within the transaction
		for k := i; k < j; k++ {
			if each[k] != nil {
				txn = append(txn, each[k])
				idx = append(idx, k-i)
			}
		}
		i = j
		if len(txn) == 0 {
			continue
		}
		if wire.Size(append(group[:len(group):len(group)], txn...)) <= limit {
			group, groupLast = append(group, txn...), seq
			continue
		}
		flush()
		if wire.Size(txn) <= limit {
			group, groupLast = txn, seq
			continue
		}
		// One transaction over several messages.
		for k := 0; k < len(txn); {
			if wire.Size(txn[k:k+1]) > limit {
				b.m.errors.WithLabelValues(opOversize).Inc()
				b.log.Error("nats: change not published: larger than a NATS message can be; realtime clients miss it",
					"seq", seq, "bytes", len(txn[k]), "max_payload", b.nc.MaxPayload())
				k++
				continue
			}
			n := 1
			for k+n < len(txn) && wire.Size(txn[k:k+n+1]) <= limit && idx[k+n] == idx[k]+n {
				n++
			}
			out = append(out, outMsg{body: wire.Join(txn[k : k+n]), seq: seq, off: idx[k],
				id: store + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.Itoa(idx[k]) + "+" + strconv.Itoa(n)})
			k += n
		}
	}
	flush()
	return out
}

// publishMsg publishes one message and waits for its acknowledgement,
// recreating the stream once if it is missing.
func (b *Bus) publishMsg(ctx context.Context, m outMsg) (duplicate bool, err error) {
	for attempt := 0; ; attempt++ {
		msg := &natsgo.Msg{Subject: b.subject, Data: m.body, Header: natsgo.Header{}}
		msg.Header.Set(hdrPublisher, b.publisher)
		if m.off >= 0 {
			msg.Header.Set(hdrOffset, strconv.Itoa(m.off))
		}
		pctx, cancel := context.WithTimeout(ctx, b.timeout)
		ack, err := b.js.PublishMsg(pctx, msg, jetstream.WithMsgID(m.id), jetstream.WithExpectStream(StreamName))
		cancel()
		if err == nil {
			return ack.Duplicate, nil
		}
		if attempt > 0 || ctx.Err() != nil || !streamMissing(err) {
			return false, err
		}
		sctx, cancel := context.WithTimeout(ctx, b.timeout)
		_, serr := b.ensureStream(sctx, true)
		cancel()
		if serr != nil {
			return false, errors.Join(err, serr)
		}
	}
}

// streamMissing reports whether a publish failed because no stream takes
// the subject (or JetStream is not answering yet: ensureStream tells).
func streamMissing(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrStreamNotFound) ||
		errors.Is(err, natsgo.ErrNoResponders)
}

// Follow reads the stream in order and calls handle with each batch until
// ctx ends (it then returns ctx.Err()), handle fails (its error), or the
// stream cannot be read (an error; call Follow again to resume). The first
// Follow starts at the first message published after Connect; each later one
// resumes after the last message the previous call read, so nothing is
// skipped between calls. Changes already handed on are dropped: those whose
// Seq is not above after (at first; later, above the last one handed on),
// re-captured duplicates that the stream's duplicate window did not catch.
// A transaction published over several messages is handed on in as many
// batches, in order, each change once.
//
// Across NATS disconnects and server restarts Follow resumes by stream
// sequence; if the stream's limits removed messages it had not yet read (a
// server cut off for longer than the stream's max age), it logs an error
// and counts dollr_nats_errors_total{op="gap"}, then goes on. If the stream
// is deleted or recreated (NATS lost its store), it recreates it if needed,
// logs a warning, counts dollr_nats_errors_total{op="reset"} and reads on
// from the new stream's first message.
func (b *Bus) Follow(ctx context.Context, after uint64, handle func([]dollr.Change) error) error {
	b.followMu.Lock()
	defer b.followMu.Unlock()
	if after > b.pos.seq {
		b.pos = position{seq: after, off: math.MaxInt}
	}
	for {
		err := b.follow(ctx, handle)
		if !errors.Is(err, errStreamReset) {
			return err
		}
	}
}

// errStreamReset ends one consumer of Follow's: the stream was recreated.
var errStreamReset = errors.New("stream reset")

func (b *Bus) follow(ctx context.Context, handle func([]dollr.Change) error) error {
	stream, err := b.checkReset(ctx)
	if err != nil {
		return b.followErr(ctx, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    b.next.Load(),
	})
	if err != nil {
		return b.followErr(ctx, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return b.followErr(ctx, err)
	}
	defer it.Stop()
	// Stop also ends the consumer's reset retries while NATS is away.
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	// Watch for the stream being deleted or recreated: the consumer would
	// then wait forever for sequences the new stream reaches much later.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var reset atomic.Bool
	created := b.created
	go func() {
		t := time.NewTicker(b.checkEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if b.streamChanged(wctx, created) {
				reset.Store(true)
				it.Stop()
				return
			}
		}
	}()
	reconnects := b.nc.Stats().Reconnects
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() == nil && (reset.Load() || b.streamChanged(ctx, created)) {
				return errStreamReset // the next consumer starts after checkReset
			}
			return b.followErr(ctx, err)
		}
		b.lastRead.Store(time.Now().UnixNano())
		meta, err := msg.Metadata()
		if err != nil {
			return b.followErr(ctx, err)
		}
		// The ordered consumer recreates itself (consumer sequence 1 again)
		// after losing its consumer, which deleting the stream does; it then
		// resumes at the old stream sequence, which in a recreated stream
		// would skip its first messages. So a first delivery is handed on
		// only once the stream is known to be the one being read.
		if meta.Sequence.Consumer == 1 && b.streamChanged(ctx, created) {
			return errStreamReset
		}
		if r := b.nc.Stats().Reconnects; r != reconnects {
			reconnects = r
			if meta.Sequence.Stream > b.next.Load() {
				b.checkRetention(ctx, meta.Sequence.Stream)
			}
		}
		if pub := msg.Headers().Get(hdrPublisher); pub != "" && pub != b.publisher {
			b.setCapturing(false, "", pub)
		}
		batch, off, err := decode(msg)
		if err != nil {
			b.m.errors.WithLabelValues(opDecode).Inc()
			b.log.Error("nats: skipping a message that is not a change batch", "stream_seq", meta.Sequence.Stream, "err", err)
			b.next.Store(meta.Sequence.Stream + 1)
			continue
		}
		// Drop what was handed on already: (Seq, index within its
		// transaction) at or below the position.
		i, idx := 0, off
		for i < len(batch) {
			if i > 0 && batch[i].Seq != batch[i-1].Seq {
				idx = 0
			}
			if c := batch[i].Seq; c > b.pos.seq || c == b.pos.seq && idx >= b.pos.off {
				break
			}
			i, idx = i+1, idx+1
		}
		if batch = batch[i:]; len(batch) == 0 {
			b.m.stale.Inc()
			b.next.Store(meta.Sequence.Stream + 1)
			continue
		}
		last := batch[len(batch)-1].Seq
		end := idx + len(batch) // the last change's index + 1 if the batch is one transaction
		for k := len(batch) - 1; k > 0; k-- {
			if batch[k-1].Seq != last {
				end = len(batch) - k
				break
			}
		}
		if err := handle(batch); err != nil {
			return err // position unchanged: the next Follow hands this batch again
		}
		b.m.received.Inc()
		b.m.lastDelivered.Set(float64(last))
		b.pos = position{seq: last, off: end}
		b.next.Store(meta.Sequence.Stream + 1)
	}
}

// decode parses a message: its changes and, for a part of one transaction,
// the index of its first change within the transaction.
func decode(msg jetstream.Msg) ([]dollr.Change, int, error) {
	batch, err := wire.Decode(msg.Data())
	if err != nil {
		return nil, 0, err
	}
	h := msg.Headers().Get(hdrOffset)
	if h == "" {
		return batch, 0, nil
	}
	off, err := strconv.Atoi(h)
	if err != nil || off < 0 {
		return nil, 0, fmt.Errorf("header %s: %q", hdrOffset, h)
	}
	if batch[0].Seq != batch[len(batch)-1].Seq {
		return nil, 0, fmt.Errorf("a part of one transaction with changes of several (seq %d to %d)", batch[0].Seq, batch[len(batch)-1].Seq)
	}
	return batch, off, nil
}

// streamChanged reports whether the stream is missing or is not the one
// created at created.
func (b *Bus) streamChanged(ctx context.Context, created time.Time) bool {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	info, err := b.currentStream().Info(ctx)
	return errors.Is(err, jetstream.ErrStreamNotFound) || err == nil && b.isReset(info, created)
}

// isReset reports whether the stream is not the one Follow was reading: it
// was created at another time, or holds fewer messages than were read.
func (b *Bus) isReset(info *jetstream.StreamInfo, created time.Time) bool {
	return !info.Created.Equal(created) || info.State.LastSeq+1 < b.next.Load()
}

// checkReset returns the stream, recreated if it is missing, after moving
// Follow's position to its first message if it is not the stream Follow
// was reading.
func (b *Bus) checkReset(ctx context.Context) (jetstream.Stream, error) {
	ictx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	stream := b.currentStream()
	info, err := stream.Info(ictx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if stream, err = b.ensureStream(ictx, true); err == nil {
			info, err = stream.Info(ictx)
		}
	}
	if err != nil {
		return nil, err
	}
	if b.isReset(info, b.created) {
		b.m.errors.WithLabelValues(opReset).Inc()
		b.log.Warn("nats: the stream was deleted or recreated; reading on from the new stream's first message. Changes published before the reset that this server had not read are lost to its realtime clients (they fall back to polling the Status API)",
			"stream", StreamName, "was_next_stream_seq", b.next.Load(), "first_seq", info.State.FirstSeq, "last_seq", info.State.LastSeq)
		b.next.Store(max(info.State.FirstSeq, 1))
		b.created = info.Created
	}
	return stream, nil
}

func (b *Bus) followErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.m.errors.WithLabelValues(opFollow).Inc()
	return fmt.Errorf("nats: follow %s from stream sequence %d: %w", b.subject, b.next.Load(), err)
}

// checkRetention is called after a reconnect when the next message read is
// not the one expected: other installations' messages explain the jump,
// unless the stream no longer holds the messages between.
func (b *Bus) checkRetention(ctx context.Context, got uint64) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	info, err := b.currentStream().Info(ctx)
	if err != nil {
		b.log.Warn("nats: cannot check the stream for lost changes after a reconnect", "err", err)
		return
	}
	if first := info.State.FirstSeq; first > b.next.Load() {
		b.m.errors.WithLabelValues(opGap).Inc()
		b.log.Error("nats: changes may have been lost while disconnected: the stream removed messages this server had not read (max age or limits); realtime clients may have missed events, the Status API is unaffected",
			"from_stream_seq", b.next.Load(), "to_stream_seq", min(first, got)-1)
	}
}

// Head returns the Seq of the newest change in the stream for this
// installation, 0 if there is none.
func (b *Bus) Head(ctx context.Context) (uint64, error) {
	msg, err := b.currentStream().GetLastMsgForSubject(ctx, b.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("nats: head: %w", err)
	}
	batch, err := wire.Decode(msg.Data)
	if err != nil {
		return 0, fmt.Errorf("nats: head: %w", err)
	}
	return batch[len(batch)-1].Seq, nil
}

// RedactURL hides the credentials in a NATS URL (or a comma-separated list
// of them) for logs and --help: nats://user:xxxxx@host, and a token given as
// the user part, nats://xxxxx@host.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		scheme, rest, ok := strings.Cut(p, "://")
		if !ok {
			continue
		}
		at := strings.LastIndex(rest, "@")
		if at < 0 {
			continue
		}
		userinfo := rest[:at]
		if user, _, hasPassword := strings.Cut(userinfo, ":"); hasPassword {
			userinfo = user + ":xxxxx"
		} else {
			userinfo = "xxxxx"
		}
		parts[i] = scheme + "://" + userinfo + rest[at:]
	}
	return strings.Join(parts, ",")
}
