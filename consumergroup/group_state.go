package consumergroup

import (
	"maps"
	"slices"
	"time"
)

// groupSnapshot is a group's membership and assignment as written to the
// offsets log (entry kind group-state), so that a new coordinator restores
// the group as it was, as Kafka's KIP-848 coordinator does. The
// coordinator writes one before any answer that hands a member a
// partition: a member can only own partitions some snapshot lists.
type groupSnapshot struct {
	Version    int64            `json:"v"`
	Epoch      int32            `json:"epoch"`
	Topology   string           `json:"topology,omitempty"`
	Rebalances int64            `json:"rebalances,omitempty"`
	Members    []memberSnapshot `json:"members,omitempty"`
}

type memberSnapshot struct {
	ID               string           `json:"id"`
	InstanceID       string           `json:"instance,omitempty"`
	ClientID         string           `json:"client,omitempty"`
	ClientHost       string           `json:"host,omitempty"`
	Epoch            int32            `json:"epoch"`
	PrevEpoch        int32            `json:"prev_epoch"`
	Topics           []string         `json:"topics,omitempty"`
	Pattern          string           `json:"pattern,omitempty"`
	Assigned         []TopicPartition `json:"assigned,omitempty"`
	Target           []TopicPartition `json:"target,omitempty"`
	AssignSeq        int64            `json:"seq,omitempty"`
	RebalanceTimeout time.Duration    `json:"rebalance_timeout,omitempty"`
}

// snapshot captures the group for the log.
func (g *group) snapshot() *groupSnapshot {
	g.version++
	snap := &groupSnapshot{Version: g.version, Epoch: g.epoch, Topology: g.topology, Rebalances: g.rebalances}
	for _, id := range slices.Sorted(maps.Keys(g.members)) {
		m := g.members[id]
		snap.Members = append(snap.Members, memberSnapshot{ID: m.id, InstanceID: m.instanceID, ClientID: m.clientID,
			ClientHost: m.clientHost, Epoch: m.epoch, PrevEpoch: m.prevEpoch, Topics: m.topics, Pattern: m.pattern,
			Assigned: sortedTPs(m.assigned, m.assigned), Target: slices.Clone(g.target[id]), AssignSeq: m.assignSeq,
			RebalanceTimeout: m.rebalanceTimeout})
	}
	return snap
}

// restoreGroup rebuilds a group from its latest snapshot. Every member gets
// a fresh session (the clock starts now) and the epoch moves on, so the
// target is computed again against the current topics.
func restoreGroup(id string, snap *groupSnapshot, cfg *Config, now time.Time) *group {
	g := newGroup(id)
	g.epoch, g.targetEpoch, g.topology, g.rebalances, g.version = snap.Epoch, snap.Epoch, snap.Topology, snap.Rebalances, snap.Version
	for _, ms := range snap.Members {
		m := &member{id: ms.ID, instanceID: ms.InstanceID, clientID: ms.ClientID, clientHost: ms.ClientHost,
			epoch: ms.Epoch, prevEpoch: ms.PrevEpoch, topics: ms.Topics, pattern: ms.Pattern,
			assigned: map[TopicPartition]bool{}, handed: map[TopicPartition]int64{}, assignSeq: ms.AssignSeq,
			lastSeen: now, rebalanceTimeout: ms.RebalanceTimeout}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = cfg.RebalanceTimeout
		}
		if ms.Pattern != "" {
			if matcher, err := ParseSubscription(ms.Pattern); err == nil {
				m.matcher = matcher
			}
		}
		for _, tp := range ms.Assigned {
			if _, taken := g.owner[tp]; !taken {
				m.assigned[tp] = true
				g.owner[tp] = m.id
			}
		}
		m.lastAnswer = sortedTPs(m.assigned, setOf(ms.Target))
		g.members[m.id] = m
		g.target[m.id] = slices.Clone(ms.Target)
	}
	return g
}

func setOf(tps []TopicPartition) map[TopicPartition]bool {
	out := make(map[TopicPartition]bool, len(tps))
	for _, tp := range tps {
		out[tp] = true
	}
	return out
}
