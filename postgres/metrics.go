package postgres

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// captureMetrics show change capture's state. Only the server holding the
// replication slot streams, so across an installation the streaming gauges
// should sum to 1; 0 for long means no realtime event is delivered anywhere.
// A nil *captureMetrics records nothing.
type captureMetrics struct {
	streaming     prometheus.Gauge
	interruptions prometheus.Counter
}

func newCaptureMetrics(reg prometheus.Registerer) (*captureMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &captureMetrics{
		streaming: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dollr_capture_streaming",
			Help: "1 while this server streams changes from the replication slot, else 0 (another server holds it, or PostgreSQL is unreachable)."}),
		interruptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dollr_capture_interruptions_total",
			Help: "Times change capture lost its replication connection and reconnected."}),
	}
	// A store opened again on the same registry (a retried Open) keeps
	// counting on the collectors registered first.
	var err error
	if m.streaming, err = register(reg, m.streaming); err != nil {
		return nil, err
	}
	if m.interruptions, err = register(reg, m.interruptions); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *captureMetrics) setStreaming(on bool) {
	if m == nil {
		return
	}
	if on {
		m.streaming.Set(1)
	} else {
		m.streaming.Set(0)
	}
}

func (m *captureMetrics) interrupted() {
	if m != nil {
		m.interruptions.Inc()
	}
}

// register registers c, or returns the equal collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
