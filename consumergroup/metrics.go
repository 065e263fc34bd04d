package consumergroup

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg           prometheus.Registerer
	members       *prometheus.GaugeVec
	rebalances    *prometheus.CounterVec
	committed     *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
	commitSeconds prometheus.Histogram
	checkpoints   prometheus.Counter
	collectors    []prometheus.Collector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reg: reg,
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skiff_group_members",
			Help: "Members of each consumer group this node coordinates."}, []string{"group"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "skiff_group_rebalances_total",
			Help: "Group epoch changes (membership, subscription or topic changes) per group."}, []string{"group"}),
		committed: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skiff_group_committed_offset",
			Help: "Committed offset per group and partition."}, []string{"group", "topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skiff_group_lag",
			Help: "Records between the committed offset and the high watermark (the queue depth)."}, []string{"group", "topic", "partition"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "skiff_group_commit_seconds",
			Help: "Offset commit latency, until replicated.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "skiff_group_offsets_checkpoints_total",
			Help: "Checkpoints written to compact the offsets log."}),
	}
	m.collectors = []prometheus.Collector{m.members, m.rebalances, m.committed, m.lag, m.commitSeconds, m.checkpoints}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				// Another coordinator on this registry (tests): keep ours
				// unregistered rather than fail.
				continue
			}
		}
	}
	return m
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

func (m *metrics) observeGroup(g *group) {
	m.members.WithLabelValues(g.id).Set(float64(len(g.members)))
}

func (m *metrics) observeOffsets(d GroupDescription) {
	for _, o := range d.Offsets {
		p := strconv.Itoa(int(o.Partition))
		if o.Committed >= 0 {
			m.committed.WithLabelValues(d.Group, o.Topic, p).Set(float64(o.Committed))
		}
		if o.Lag >= 0 {
			m.lag.WithLabelValues(d.Group, o.Topic, p).Set(float64(o.Lag))
		}
	}
}

func (m *metrics) forgetGroup(id string) {
	l := prometheus.Labels{"group": id}
	m.members.DeletePartialMatch(l)
	m.rebalances.DeletePartialMatch(l)
	m.committed.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
}
