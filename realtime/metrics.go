package realtime

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors, all prefixed dollr_realtime_.
type metrics struct {
	connections prometheus.Gauge
	refused     prometheus.Counter
	channels    prometheus.Gauge
	joins       *prometheus.CounterVec
	published   prometheus.Counter
	delivered   prometheus.Counter
	lag         prometheus.Histogram
	slow        prometheus.Counter
	snapshots   *prometheus.CounterVec
}

// Join outcomes, the values of the joins counter's "outcome" label.
const (
	outcomeOK           = "ok"
	outcomeUnauthorized = "unauthorized"
	outcomeInvalidToken = "invalid_token"
	outcomeBadTopic     = "bad_topic"
	outcomeLimit        = "limit"
	outcomeError        = "error"
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_realtime_connections", Help: "Open realtime WebSocket connections."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_realtime_connections_refused_total",
			Help: "WebSocket upgrades refused because MaxConnections sockets were open."}),
		channels: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_realtime_channels", Help: "Joined realtime channels."}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_realtime_joins_total", Help: "Channel joins by outcome."}, []string{"outcome"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_realtime_changes_published_total", Help: "Committed changes handed to the realtime server."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_realtime_events_delivered_total", Help: "postgres_changes events written to sockets."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dollr_realtime_delivery_lag_seconds",
			Help:    "Time from a change's commit to its write on a subscriber's socket.",
			Buckets: []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_realtime_slow_client_disconnects_total",
			Help: "Connections closed because they did not keep up with their events."}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dollr_realtime_snapshots_total", Help: "Snapshot reads for new subscriptions by result."}, []string{"result"}),
	}
	for _, o := range []string{outcomeOK, outcomeUnauthorized, outcomeInvalidToken, outcomeBadTopic, outcomeLimit, outcomeError} {
		m.joins.WithLabelValues(o)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connections, m.refused, m.channels, m.joins, m.published, m.delivered, m.lag, m.slow, m.snapshots} {
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
