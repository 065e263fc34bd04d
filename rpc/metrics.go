package rpc

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/record"
)

// metrics are the server's collectors, registered on the node's registry
// (never the global one) and unregistered by Stop.
type metrics struct {
	reg        *prometheus.Registry
	registered []prometheus.Collector

	requests       *prometheus.CounterVec   // method, code
	latency        *prometheus.HistogramVec // method
	streamMessages *prometheus.CounterVec   // method, code
	producedBytes  prometheus.Counter
	fetchedBytes   prometheus.Counter
	asyncPending   prometheus.Gauge
	asyncErrors    prometheus.Counter
	panics         prometheus.Counter
	authFailures   *prometheus.CounterVec // reason
	passwordCache  *prometheus.CounterVec // result

	// Per topic (bounded by the cluster's topic limit; no partition or
	// client label): what clients produced to and fetched from this node.
	topicProducedBytes   *prometheus.CounterVec // topic
	topicProducedRecords *prometheus.CounterVec // topic
	topicFetchedBytes    *prometheus.CounterVec // topic
}

func newMetrics(reg *prometheus.Registry, logger *slog.Logger) *metrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "skiff", Subsystem: "rpc", Name: name, Help: help}
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
			"gRPC calls finished, by method (Service/Method) and status code (a stream counts once, when it ends).")),
			[]string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "skiff", Subsystem: "rpc", Name: "request_duration_seconds",
			Help:    "Time to answer a unary call, or the lifetime of a stream, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17)}, // 0.5ms .. 33s
			[]string{"method"}),
		streamMessages: prometheus.NewCounterVec(prometheus.CounterOpts(opts("stream_responses_total",
			"Responses sent on streams, by method and status code (ProduceStream reports errors per response).")),
			[]string{"method", "code"}),
		producedBytes: prometheus.NewCounter(prometheus.CounterOpts(opts("produced_bytes_total",
			"Bytes of record batches accepted by Produce and ProduceStream (acknowledged, or handed off with ACKS_NONE)."))),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts(opts("fetched_bytes_total",
			"Bytes of record batches sent by Fetch and Subscribe."))),
		asyncPending: prometheus.NewGauge(prometheus.GaugeOpts(opts("async_produces_pending",
			"ACKS_NONE batches answered but not yet written."))),
		asyncErrors: prometheus.NewCounter(prometheus.CounterOpts(opts("async_produce_errors_total",
			"ACKS_NONE batches that failed after their request was answered (logged)."))),
		panics: prometheus.NewCounter(prometheus.CounterOpts(opts("panics_total",
			"Handler panics recovered (answered with INTERNAL)."))),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts(opts("authentication_failures_total",
			"Calls refused for want of an identity, by reason: password (unknown user or wrong password), "+
				"plaintext (a password without TLS), malformed (an unreadable authorization header), no_identity.")),
			[]string{"reason"}),
		passwordCache: prometheus.NewCounterVec(prometheus.CounterOpts(opts("password_cache_total",
			"Password logins of known users, by result: hit (verified recently, no hash computed) or miss (hashed).")),
			[]string{"result"}),
		topicProducedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "topic", Name: "produced_bytes_total",
			Help: "Bytes of record batches accepted by this node for a topic (Produce and ProduceStream)."}, []string{"topic"}),
		topicProducedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "topic", Name: "produced_records_total",
			Help: "Records accepted by this node for a topic (Produce and ProduceStream)."}, []string{"topic"}),
		topicFetchedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "topic", Name: "fetched_bytes_total",
			Help: "Bytes of record batches this node sent for a topic (Fetch and Subscribe)."}, []string{"topic"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.streamMessages, m.producedBytes, m.fetchedBytes,
		m.asyncPending, m.asyncErrors, m.panics, m.authFailures, m.passwordCache,
		m.topicProducedBytes, m.topicProducedRecords, m.topicFetchedBytes} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				logger.Warn("rpc metrics not registered", "error", err)
			}
			// A second server on the same registry still serves; only the
			// first one's metrics are exported.
			continue
		}
		m.registered = append(m.registered, c)
	}
	return m
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
}

func (m *metrics) observe(method string, code codes.Code, d time.Duration) {
	m.requests.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

// produced counts an accepted batch of topic.
func (m *metrics) produced(topic string, batch []byte) {
	m.producedBytes.Add(float64(len(batch)))
	m.topicProducedBytes.WithLabelValues(topic).Add(float64(len(batch)))
	// The batch was validated before it got here; a header that does not
	// parse counts bytes only.
	if h, err := record.ParseHeader(batch); err == nil {
		m.topicProducedRecords.WithLabelValues(topic).Add(float64(h.RecordCount))
	}
}

// fetched counts bytes of topic sent to a client.
func (m *metrics) fetched(topic string, n int) {
	m.fetchedBytes.Add(float64(n))
	m.topicFetchedBytes.WithLabelValues(topic).Add(float64(n))
}
