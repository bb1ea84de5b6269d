package nats

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bus's Prometheus collectors, all prefixed dollr_nats_.
type metrics struct {
	published *prometheus.CounterVec
	received  prometheus.Counter
	stale     prometheus.Counter
	errors    *prometheus.CounterVec
}

// Values of the errors counter's "op" label.
const (
	opPublish = "publish" // a batch not stored in the stream (the capture retries it)
	opEncode  = "encode"  // a batch that cannot be rendered as JSON (skipped)
	opDecode  = "decode"  // a message that is not a batch (skipped)
	opFollow  = "follow"  // the stream's consumer failed (Follow returns; the caller resumes)
	opGap     = "gap"     // retention removed messages this server had not read
)

// Values of the published counter's "result" label.
const (
	resultStored    = "stored"
	resultDuplicate = "duplicate" // the stream already had this batch (a re-capture after failover)
)

func newMetrics(reg prometheus.Registerer) *metrics {
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
	}
	m.published.WithLabelValues(resultStored)
	m.published.WithLabelValues(resultDuplicate)
	for _, op := range []string{opPublish, opEncode, opDecode, opFollow, opGap} {
		m.errors.WithLabelValues(op)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.published, m.received, m.stale, m.errors} {
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
