package cluster

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the node-level gauges, refreshed after each
// reconciliation.
type nodeMetrics struct {
	reg             *prometheus.Registry
	replicas        prometheus.Gauge
	leaders         prometheus.Gauge
	underReplicated prometheus.Gauge
	offline         prometheus.Gauge
	metaLeader      prometheus.Gauge
	// leaderChanges counts local replicas seen to gain or lose leadership
	// between two refreshes; wasLeader is the last refresh's view, used
	// only by observeReplicas (the reconcile loop).
	leaderChanges prometheus.Counter
	wasLeader     map[partitionKey]bool
	// fastElections counts the Raft groups in which this node stood for
	// election at once because their leader's process was seen to die
	// (liveness.go) or a majority of the voters heard no leader
	// (silence.go).
	fastElections prometheus.Counter
	// peerRefused counts connections the Raft mux dropped, by reason.
	peerRefused *prometheus.CounterVec
	// tls are the certificate gauges, present when the node has TLS.
	tls []prometheus.Collector
}

func newNodeMetrics(n *Node) *nodeMetrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "node", Name: name, Help: help})
	}
	m := &nodeMetrics{
		reg:      n.reg,
		replicas: g("replicas", "Partition replicas hosted by this node."),
		leaders:  g("leader_replicas", "Partitions this node leads."),
		underReplicated: g("under_replicated_partitions",
			"Partitions led by this node whose in-sync replicas are fewer than their assigned replicas (sum over nodes for the cluster)."),
		offline: g("offline_partitions",
			"Partitions with a majority of replicas on dead nodes, so no leader can be elected (reported by the meta leader; 0 elsewhere)."),
		metaLeader: g("meta_leader", "1 if this node leads the meta group."),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "node", Name: "leader_changes_total",
			Help: "Partition replicas of this node seen to become or stop being Raft leader (sampled at each reconciliation, about once a second)."}),
		wasLeader: map[partitionKey]bool{},
		fastElections: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "node", Name: "fast_elections_total",
			Help: "Raft groups (partitions and meta) in which this node stood for election at once, because the leader's process was seen to die (its connections reset, its port refused) or because a majority of the voters heard from no leader for the heartbeat timeout, instead of waiting for Raft's randomised timers."}),
		peerRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "peer", Name: "connections_refused_total",
			Help: "Connections to the Raft port refused: handshake (no or untrusted certificate, bad header), identity (header names another node than the certificate), unauthorized (plaintext: unknown node), unknown_group."},
			[]string{"reason"}),
	}
	if r := n.cfg.TLS; r != nil {
		m.tls = []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "tls", Name: "certificate_expiry_timestamp_seconds",
				Help: "When this node's certificate expires (Unix seconds); rotate it before then (files are reloaded on SIGHUP and on change)."},
				func() float64 { return float64(r.NotAfter().Unix()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "tls", Name: "reloads_total",
				Help: "Certificate reloads that changed the node's certificate or CA."}, func() float64 { return float64(r.Reloads()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "tls", Name: "reload_failures_total",
				Help: "Certificate reloads refused (unreadable or mismatched files); the previous certificate stays in use."}, func() float64 { return float64(r.Failures()) }),
		}
	}
	for _, c := range m.collectors() {
		n.reg.MustRegister(c)
	}
	return m
}

func (m *nodeMetrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{m.replicas, m.leaders, m.underReplicated, m.offline, m.metaLeader, m.leaderChanges, m.fastElections, m.peerRefused}, m.tls...)
}

func (m *nodeMetrics) unregister() {
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}

// observeReplicas refreshes the gauges from the node's replicas and the
// metadata.
func (m *nodeMetrics) observeReplicas(s *replicaSet) {
	n := s.n
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := n.meta.fsm.State()
	all := s.all()
	leaders, under := 0, 0
	changes := 0
	for key, r := range all {
		isLeader := r.Status().State == "Leader"
		if isLeader != m.wasLeader[key] {
			changes++
		}
		m.wasLeader[key] = isLeader
		if !isLeader {
			continue
		}
		leaders++
		t, ok := st.Topics[key.Topic]
		if !ok || t.ID != key.TopicID {
			continue
		}
		isr, err := r.InSync(ctx)
		if err == nil && len(isr) < len(t.Partitions[key.Partition].Replicas) {
			under++
		}
	}
	for key, was := range m.wasLeader {
		if _, ok := all[key]; !ok {
			if was {
				changes++ // a leader replica removed from this node
			}
			delete(m.wasLeader, key)
		}
	}
	m.leaderChanges.Add(float64(changes))
	m.replicas.Set(float64(len(all)))
	m.leaders.Set(float64(leaders))
	m.underReplicated.Set(float64(under))
	offline := 0
	if n.meta.isLeader() {
		m.metaLeader.Set(1)
		for _, t := range st.Topics {
			for _, pa := range t.Partitions {
				alive := 0
				for _, id := range pa.Replicas {
					if n.isAlive(id) {
						alive++
					}
				}
				if alive*2 <= len(pa.Replicas) {
					offline++
				}
			}
		}
	} else {
		m.metaLeader.Set(0)
	}
	m.offline.Set(float64(offline))
}
