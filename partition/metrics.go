package partition

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"time"
)

// metrics are the replica's Prometheus collectors, labelled with the
// partition's group name and registered on the registry the caller passes
// (never the global one).
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	produceLatency  prometheus.Histogram
	producedBytes   prometheus.Counter
	producedRecords prometheus.Counter
	fetchedBytes    prometheus.Counter
	appendErrors    *prometheus.CounterVec
	watchdog        prometheus.Counter
}

func newMetrics(r *Replica, reg prometheus.Registerer) *metrics {
	labels := prometheus.Labels{"partition": r.cfg.Group}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "partition", Name: name, Help: help, ConstLabels: labels}, f)
	}
	m := &metrics{
		reg: reg,
		produceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "skiff", Subsystem: "partition", Name: "produce_latency_seconds",
			Help:        "Time from handing a batch to Raft until it is committed and applied on the leader.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		producedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "produced_bytes_total",
			Help: "Bytes of batches acknowledged by this leader.", ConstLabels: labels}),
		producedRecords: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "produced_records_total",
			Help: "Records acknowledged by this leader.", ConstLabels: labels}),
		fetchedBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "fetched_bytes_total",
			Help: "Bytes of batches served by this replica.", ConstLabels: labels}),
		appendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "append_errors_total",
			Help: "Produce requests that failed, by reason.", ConstLabels: labels}, []string{"reason"}),
		watchdog: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "watchdog_fired_total",
			Help: "Times the stalled-leader watchdog handed leadership away.", ConstLabels: labels}),
	}
	m.collectors = []prometheus.Collector{
		m.produceLatency, m.producedBytes, m.producedRecords, m.fetchedBytes, m.appendErrors, m.watchdog,
		gauge("high_watermark", "Offset the next appended record will get (all applied records are committed).", func() float64 {
			return float64(r.fsm.log().NextOffset())
		}),
		gauge("log_start_offset", "First offset still in the log.", func() float64 { return float64(r.fsm.log().LogStartOffset()) }),
		gauge("size_bytes", "Bytes of log data on disk.", func() float64 { return float64(r.fsm.log().Size()) }),
		gauge("share_unacked_records", "Records not yet done by the share group furthest behind on this partition, as its coordinator last reported (every record held when no group has reported); what overflow.policy=reject-unacked bounds by max.messages.", func() float64 {
			n, _ := r.ShareBacklog()
			return float64(n)
		}),
		gauge("is_leader", "1 if this replica leads the partition and has caught up in its term.", func() float64 {
			if r.IsLeader() {
				return 1
			}
			return 0
		}),
	}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				r.logger.Warn("register metric", "error", err)
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m == nil || m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func (m *metrics) produced(bytes, records int, d time.Duration) {
	m.produceLatency.Observe(d.Seconds())
	m.producedBytes.Add(float64(bytes))
	m.producedRecords.Add(float64(records))
}

func (m *metrics) fetched(bytes int) { m.fetchedBytes.Add(float64(bytes)) }

func (m *metrics) watchdogFired() { m.watchdog.Inc() }

func (m *metrics) produceError(err error) {
	reason := "other"
	switch {
	case errors.Is(err, ErrOutOfOrderSequence):
		reason = "out_of_order_sequence"
	case errors.Is(err, ErrProducerFenced):
		reason = "producer_fenced"
	case errors.Is(err, ErrInvalidBatch):
		reason = "invalid_batch"
	case errors.Is(err, ErrIndeterminate):
		reason = "indeterminate"
	case errors.Is(err, ErrFull):
		reason = "full"
	case errors.Is(err, ErrKeyRequired):
		reason = "key_required"
	}
	m.appendErrors.WithLabelValues(reason).Inc()
}
