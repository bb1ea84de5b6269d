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
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
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
	DefaultMaxAge         = time.Hour
	DefaultPublishTimeout = 10 * time.Second
	// duplicateWindow is how long the stream remembers message ids: a batch
	// re-captured within it after a failover is stored once.
	duplicateWindow = 2 * time.Minute
)

// Config configures a Bus.
type Config struct {
	// URL is the NATS server URL, e.g. nats://127.0.0.1:4222 (a comma-separated
	// list names several servers of a cluster).
	URL string
	// StoreID names the installation: servers sharing a database share it,
	// and it is the last token of the subject. It must not contain '.', '*',
	// '>' or white space.
	StoreID string
	// MaxAge bounds how long the stream keeps a batch when Connect creates
	// it (an existing stream keeps its own limits). Default DefaultMaxAge.
	MaxAge time.Duration
	// PublishTimeout bounds one Publish's wait for the stream's
	// acknowledgement. Default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts; default 1s.
	// The connection retries forever.
	ReconnectWait time.Duration
	// Name is the connection's name as NATS monitoring shows it.
	Name       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer // dollr_nats_* counters; nil: not registered
}

// Bus is one server's connection to the change stream. Publish may be called
// concurrently with Follow; Follow calls run one at a time.
type Bus struct {
	nc      *natsgo.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
	timeout time.Duration
	log     *slog.Logger
	m       *metrics
	closed  chan struct{} // closed by the connection's ClosedHandler

	followMu sync.Mutex
	next     uint64 // the stream sequence Follow reads next; guarded by followMu
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
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = time.Second
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{subject: subjectPrefix + c.StoreID, timeout: c.PublishTimeout, log: log,
		m: newMetrics(c.Registerer), closed: make(chan struct{})}
	nc, err := natsgo.Connect(c.URL,
		natsgo.Name(c.Name),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(c.ReconnectWait),
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
		return nil, fmt.Errorf("nats: connect %s: %w", c.URL, err)
	}
	b.nc = nc
	if err := b.open(ctx, c.MaxAge); err != nil {
		nc.Close()
		return nil, err
	}
	log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "stream", StreamName, "subject", b.subject)
	return b, nil
}

func (b *Bus) open(ctx context.Context, maxAge time.Duration) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	b.js = js
	s, err := js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName,
			Description: "dollr committed changes, one message per change-feed batch",
			Subjects:    []string{subjectPrefix + ">"},
			Storage:     jetstream.FileStorage,
			MaxAge:      maxAge,
			Duplicates:  min(duplicateWindow, maxAge),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another server created it first
			s, err = js.Stream(ctx, StreamName)
		}
	}
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", StreamName, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("nats: stream %s: %w", StreamName, err)
	}
	b.stream = s
	b.next = info.State.LastSeq + 1
	return nil
}

// Close drains the connection: pending publishes are flushed, then it closes.
// Call it after Publish and Follow have returned.
func (b *Bus) Close() error {
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

// Publish stores a batch (one transaction's changes, in order) in the stream
// and returns once the stream has acknowledged it, so a change feed that
// acknowledges its source after handle returns (a replication slot) does so
// only once the batch is durable. The message id is the store id and the
// batch's last Seq: the same batch published again within the stream's
// duplicate window (two minutes when Connect created the stream), as a new
// capturer does after a failover, is stored once.
func (b *Bus) Publish(ctx context.Context, batch []dollr.Change) error {
	if len(batch) == 0 {
		return nil
	}
	data, err := wire.Encode(batch)
	seq := batch[len(batch)-1].Seq
	if err != nil {
		// Retrying cannot help and would hold up every later change.
		b.m.errors.WithLabelValues(opEncode).Inc()
		b.log.Error("nats: batch not published: cannot encode it; other servers' realtime clients miss it",
			"seq", seq, "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	id := b.subject[len(subjectPrefix):] + ":" + strconv.FormatUint(seq, 10)
	ack, err := b.js.PublishMsg(ctx, &natsgo.Msg{Subject: b.subject, Data: data},
		jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName))
	if err != nil {
		b.m.errors.WithLabelValues(opPublish).Inc()
		return fmt.Errorf("nats: publish seq %d: %w", seq, err)
	}
	if ack.Duplicate {
		b.m.published.WithLabelValues(resultDuplicate).Inc()
	} else {
		b.m.published.WithLabelValues(resultStored).Inc()
	}
	return nil
}

// Follow reads the stream in order and calls handle with each batch until
// ctx ends (it then returns ctx.Err()), handle fails (its error), or the
// stream cannot be read (an error; call Follow again to resume). The first
// Follow starts at the first message published after Connect; each later one
// resumes after the last message the previous call read, so nothing is
// skipped between calls. Changes whose Seq is not above the last one handed
// on (at first, after) are dropped: re-captured duplicates that the stream's
// duplicate window did not catch.
//
// Across NATS disconnects and server restarts Follow resumes by stream
// sequence; if the stream's limits removed messages it had not yet read (a
// server cut off for longer than the stream's max age), it logs an error
// and counts dollr_nats_errors_total{op="gap"}, then goes on.
func (b *Bus) Follow(ctx context.Context, after uint64, handle func([]dollr.Change) error) error {
	b.followMu.Lock()
	defer b.followMu.Unlock()
	cons, err := b.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    b.next,
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
	reconnects := b.nc.Stats().Reconnects
	for {
		msg, err := it.Next()
		if err != nil {
			return b.followErr(ctx, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return b.followErr(ctx, err)
		}
		if r := b.nc.Stats().Reconnects; r != reconnects {
			reconnects = r
			if meta.Sequence.Stream > b.next {
				b.checkRetention(ctx, meta.Sequence.Stream)
			}
		}
		batch, err := wire.Decode(msg.Data())
		if err != nil {
			b.m.errors.WithLabelValues(opDecode).Inc()
			b.log.Error("nats: skipping a message that is not a change batch", "stream_seq", meta.Sequence.Stream, "err", err)
			b.next = meta.Sequence.Stream + 1
			continue
		}
		i := 0
		for i < len(batch) && batch[i].Seq <= after {
			i++
		}
		if batch = batch[i:]; len(batch) == 0 {
			b.m.stale.Inc()
			b.next = meta.Sequence.Stream + 1
			continue
		}
		if err := handle(batch); err != nil {
			return err // b.next unchanged: the next Follow hands this batch again
		}
		b.m.received.Inc()
		after = batch[len(batch)-1].Seq
		b.next = meta.Sequence.Stream + 1
	}
}

func (b *Bus) followErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.m.errors.WithLabelValues(opFollow).Inc()
	return fmt.Errorf("nats: follow %s from stream sequence %d: %w", b.subject, b.next, err)
}

// checkRetention is called after a reconnect when the next message read is
// not the one expected: other installations' messages explain the jump,
// unless the stream no longer holds the messages between.
func (b *Bus) checkRetention(ctx context.Context, got uint64) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	info, err := b.stream.Info(ctx)
	if err != nil {
		b.log.Warn("nats: cannot check the stream for lost changes after a reconnect", "err", err)
		return
	}
	if first := info.State.FirstSeq; first > b.next {
		b.m.errors.WithLabelValues(opGap).Inc()
		b.log.Error("nats: changes may have been lost while disconnected: the stream removed messages this server had not read (max age or limits); realtime clients may have missed events, the Status API is unaffected",
			"from_stream_seq", b.next, "to_stream_seq", min(first, got)-1)
	}
}

// Head returns the Seq of the newest change in the stream for this
// installation, 0 if there is none.
func (b *Bus) Head(ctx context.Context) (uint64, error) {
	msg, err := b.stream.GetLastMsgForSubject(ctx, b.subject)
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
