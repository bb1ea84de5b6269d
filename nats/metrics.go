package nats

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bus's Prometheus collectors, all prefixed dollr_nats_.
type metrics struct {
	published *prometheus.CounterVec
	received  prometheus.Counter
	stale     prometheus.Counter
	errors    *prometheus.CounterVec

	capturing     prometheus.Gauge
	lastPublished prometheus.Gauge
	lastDelivered prometheus.Gauge
	sinceRead     prometheus.GaugeFunc
}

// Values of the errors counter's "op" label.
const (
	opPublish  = "publish"  // a batch not stored in the stream (the capture retries it)
	opEncode   = "encode"   // a batch that cannot be rendered as JSON (skipped)
	opDecode   = "decode"   // a message that is not a batch (skipped)
	opFollow   = "follow"   // the stream's consumer failed (Follow returns; the caller resumes)
	opGap      = "gap"      // retention removed messages this server had not read
	opReset    = "reset"    // the stream was deleted or recreated under a follower
	opOversize = "oversize" // a change larger than a NATS message (not published)
	// NATS did not answer a server about to capture; counted once per outage.
	opUnreachable = "unreachable"
)

// Values of the published counter's "result" label.
const (
	resultStored    = "stored"
	resultDuplicate = "duplicate" // the stream already had this batch (a re-capture after failover)
)

func newMetrics(reg prometheus.Registerer, b *Bus) *metrics {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_nats_batches_published_total",
			Help: "Captured batches acknowledged by the JetStream stream, by result."}, []string{"result"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_nats_batches_received_total",
			Help: "Batches read from the JetStream stream and handed to the realtime server."}),
		stale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_nats_batches_stale_total",
			Help: "Batches read from the stream and dropped because their changes were already handed on."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_nats_errors_total", Help: "NATS bus errors by operation."}, []string{"op"}),
		capturing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_nats_capturing",
			Help: "1 while this server publishes captured changes (its last publish succeeded and no other publisher was seen since), else 0."}),
		lastPublished: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_nats_last_published_seq",
			Help: "Seq of the last change this server published to the stream (a PostgreSQL commit LSN; 0: none yet)."}),
		lastDelivered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_nats_last_delivered_seq",
			Help: "Seq of the last change this server read from the stream and handed to its realtime server (0: none yet)."}),
		sinceRead: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "dollr_nats_seconds_since_last_batch",
			Help: "Seconds since this server last read a message from the stream (since it connected, if none)."},
			func() float64 { return time.Since(time.Unix(0, b.lastRead.Load())).Seconds() }),
	}
	m.published.WithLabelValues(resultStored)
	m.published.WithLabelValues(resultDuplicate)
	for _, op := range []string{opPublish, opEncode, opDecode, opFollow, opGap, opReset, opOversize, opUnreachable} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published, m.received, m.stale, m.errors,
			m.capturing, m.lastPublished, m.lastDelivered, m.sinceRead} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					panic(err) // a programming error: a clashing collector
				}
			}
		}
	}
	return m
}
