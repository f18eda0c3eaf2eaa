package pgwire

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors (names prefixed pgwarden_).
type metrics struct {
	conns       prometheus.Gauge
	connsTotal  prometheus.Counter
	sessions    *prometheus.GaugeVec // by profile
	ended       *prometheus.CounterVec
	authFail    *prometheus.CounterVec
	bytesC2S    prometheus.Counter
	bytesS2C    prometheus.Counter
	msgsC2S     prometheus.Counter
	msgsS2C     prometheus.Counter
	mintSeconds *prometheus.HistogramVec // by profile
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgwarden_relayed_bytes_total", Help: "Bytes relayed between clients and PostgreSQL, by direction.",
	}, []string{"direction"})
	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgwarden_relayed_messages_total", Help: "Protocol messages relayed between clients and PostgreSQL, by direction.",
	}, []string{"direction"})
	m := &metrics{
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgwarden_connections", Help: "Open client connections (handshaking or in session).",
		}),
		connsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pgwarden_connections_total", Help: "Client connections accepted.",
		}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgwarden_sessions", Help: "Authenticated sessions currently relaying, by connection profile.",
		}, []string{"profile"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_sessions_ended_total", Help: "Sessions ended, by outcome.",
		}, []string{"outcome"}),
		authFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgwarden_auth_failures_total", Help: "Refused authentications, by reason.",
		}, []string{"reason"}),
		bytesC2S: bytes.WithLabelValues("client_to_server"),
		bytesS2C: bytes.WithLabelValues("server_to_client"),
		msgsC2S:  msgs.WithLabelValues("client_to_server"),
		msgsS2C:  msgs.WithLabelValues("server_to_client"),
		mintSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pgwarden_credential_mint_seconds", Help: "Latency of minting a session credential, by connection profile.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"profile"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.conns, m.connsTotal, m.sessions, m.ended, m.authFail, bytes, msgs, m.mintSeconds} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("pgwire: metrics already registered on this Registerer (one Server per registry)")
			}
			return nil, err
		}
	}
	return m, nil
}
