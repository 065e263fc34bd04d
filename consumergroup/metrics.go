package consumergroup

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg           prometheus.Registerer
	members       *prometheus.GaugeVec
	rebalances    *prometheus.CounterVec
	committed     *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
	lagSeconds    *prometheus.GaugeVec
	commitSeconds prometheus.Histogram
	checkpoints   prometheus.Counter
	// malformed counts offsets-log records skipped on replay (see
	// entry_check.go).
	malformed prometheus.Counter

	shareInFlight     *prometheus.GaugeVec
	shareAvailable    *prometheus.GaugeVec
	shareLag          *prometheus.GaugeVec
	shareLagSeconds   *prometheus.GaugeVec
	shareOldestUnack  *prometheus.GaugeVec
	sharePaused       *prometheus.GaugeVec
	shareAcked        *prometheus.CounterVec
	shareRedeliveries *prometheus.CounterVec
	shareDeadLetters  *prometheus.CounterVec
	sharePauses       *prometheus.CounterVec
	// Group commit of share commands: operations answered per append,
	// and the append's latency (replicated, applied).
	shareCommitOps     prometheus.Histogram
	shareCommitSeconds prometheus.Histogram

	collectors []prometheus.Collector
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
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "skiff_group_lag_seconds",
			Help: "Age of the oldest record the group has not committed (0 when caught up; the record's timestamp, so producer clocks count)."},
			[]string{"group", "topic", "partition"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "skiff_group_commit_seconds",
			Help: "Offset commit latency, until replicated.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "skiff_group_offsets_checkpoints_total",
			Help: "Checkpoints written to compact the offsets log."}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{Name: "skiff_group_offsets_malformed_total",
			Help: "Records of the offsets log skipped because they are not entries this version can apply (bad JSON, unknown kind, invalid fields)."}),
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"group"})
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"group"})
	}
	m.shareInFlight = gauge("skiff_share_in_flight", "Records delivered and locked, not yet acknowledged, per share group.")
	m.shareAvailable = gauge("skiff_share_available", "Records waiting for delivery (not done, not in flight) per share group.")
	m.shareLag = gauge("skiff_share_lag", "Records not yet acknowledged or dead-lettered per share group (queue depth).")
	m.shareLagSeconds = gauge("skiff_share_lag_seconds", "Age of the oldest record not yet done per share group.")
	m.shareOldestUnack = gauge("skiff_share_oldest_unacked_age_seconds", "Age of the oldest delivered record not yet acknowledged per share group.")
	m.sharePaused = gauge("skiff_share_paused", "1 while the dead-letter flood breaker pauses a share group.")
	m.shareAcked = counter("skiff_share_acked_total", "Records acknowledged per share group.")
	m.shareRedeliveries = counter("skiff_share_redeliveries_total", "Deliveries beyond the first per share group.")
	m.shareDeadLetters = counter("skiff_share_dead_letters_total", "Records written to the dead-letter topic per share group.")
	m.sharePauses = counter("skiff_share_flood_pauses_total", "Times the dead-letter flood breaker paused a share group.")
	m.shareCommitOps = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "skiff_share_commit_operations",
		Help: "Share operations (fetches, acks, upkeep) answered by one group commit to the offsets log.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)})
	m.shareCommitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "skiff_share_commit_seconds",
		Help: "Latency of one share group commit, until replicated and applied.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)})
	m.collectors = []prometheus.Collector{m.shareCommitOps, m.shareCommitSeconds, m.members, m.rebalances, m.committed, m.lag, m.lagSeconds, m.commitSeconds, m.checkpoints, m.malformed,
		m.shareInFlight, m.shareAvailable, m.shareLag, m.shareLagSeconds, m.shareOldestUnack, m.sharePaused,
		m.shareAcked, m.shareRedeliveries, m.shareDeadLetters, m.sharePauses}
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

func (m *metrics) observeOffsets(ctx context.Context, d GroupDescription, ages *lagAges, now time.Time) {
	for _, o := range d.Offsets {
		p := strconv.Itoa(int(o.Partition))
		if o.Committed >= 0 {
			m.committed.WithLabelValues(d.Group, o.Topic, p).Set(float64(o.Committed))
		}
		if o.Lag >= 0 {
			m.lag.WithLabelValues(d.Group, o.Topic, p).Set(float64(o.Lag))
		}
		// An unknown age keeps the last value rather than dropping the
		// series: a failed read is no reason for an alert to resolve.
		if s := ages.seconds(ctx, o, now); s >= 0 {
			m.lagSeconds.WithLabelValues(d.Group, o.Topic, p).Set(s)
		}
	}
}

func (m *metrics) forgetGroup(id string) {
	l := prometheus.Labels{"group": id}
	m.members.DeletePartialMatch(l)
	m.rebalances.DeletePartialMatch(l)
	m.committed.DeletePartialMatch(l)
	m.lag.DeletePartialMatch(l)
	m.lagSeconds.DeletePartialMatch(l)
}
