package sessions

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reg                                prometheus.Registerer
	cs                                 []prometheus.Collector
	events, dropped, writeErrors, torn prometheus.Counter
	rotations, sinkErrors              prometheus.Counter
	hookDelivered, hookFailures        prometheus.Counter
	healthy                            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := metrics{
		reg:           reg,
		events:        c("pgwarden_recording_events_total", "Session events written to the store."),
		dropped:       c("pgwarden_recording_dropped_total", "Session events NOT recorded (store unwritable or stalled). Non-zero means an audit gap."),
		writeErrors:   c("pgwarden_recording_write_errors_total", "Failed writes or fsyncs of the session store."),
		torn:          c("pgwarden_recording_torn_lines_total", "Partial last lines cut off at recovery."),
		rotations:     c("pgwarden_recording_rotations_total", "Segment rotations."),
		sinkErrors:    c("pgwarden_recording_sink_errors_total", "Failed writes to the stdout sink."),
		hookDelivered: c("pgwarden_recording_webhook_delivered_total", "Events delivered to webhook sinks."),
		hookFailures:  c("pgwarden_recording_webhook_failures_total", "Failed webhook delivery attempts (retried)."),
		healthy:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgwarden_recording_healthy", Help: "1 when the session store is writable."}),
	}
	m.healthy.Set(1)
	m.cs = []prometheus.Collector{m.events, m.dropped, m.writeErrors, m.torn, m.rotations, m.sinkErrors,
		m.hookDelivered, m.hookFailures, m.healthy,
	}
	if reg != nil {
		for _, x := range m.cs {
			_ = reg.Register(x)
		}
	}
	return m
}

func (m metrics) unregister() {
	if m.reg != nil {
		for _, x := range m.cs {
			m.reg.Unregister(x)
		}
	}
}
