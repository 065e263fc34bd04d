package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
	"github.com/skiff-mq/skiff/partition"
)

// TopicSpec asks for a new topic.
type TopicSpec struct {
	Name              string
	Partitions        int
	ReplicationFactor int
	Configs           map[string]string // Kafka-style keys: retention.ms, segment.bytes, durability, ...
}

// CreateTopic validates spec, places its replicas on live nodes (spreading
// replicas and preferred leaders, rack-aware) and records it. It returns once
// this node's metadata has the topic.
func (n *Node) CreateTopic(ctx context.Context, spec TopicSpec) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(spec.Name); err != nil {
		return nil, err
	}
	limits := n.cfg.Limits
	if err := limits.ValidatePartitions(spec.Partitions); err != nil {
		return nil, err
	}
	if err := limits.ValidateReplicationFactor(spec.ReplicationFactor); err != nil {
		return nil, err
	}
	cfg, err := metadata.ParseTopicConfig(metadata.DefaultTopicConfig(), spec.Configs)
	if err != nil {
		return nil, err
	}
	st := n.awaitRegistrations(ctx)
	if _, ok := st.Topics[spec.Name]; ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrTopicExists, spec.Name)
	}
	// Early answer from this node's copy; the FSM checks again with the
	// limits the command carries, against the state the entry meets.
	if err := limits.CheckCapacity(st, spec.Partitions); err != nil {
		return nil, err
	}
	nodes := n.placeableNodes(st)
	assign, err := placement.AssignTopic(nodes, st.Load(), spec.Partitions, spec.ReplicationFactor)
	var few *placement.NotEnoughNodesError
	if errors.As(err, &few) {
		return nil, &metadata.InvalidArgumentError{Field: "replication_factor",
			Reason: fmt.Sprintf("%d exceeds the %d live nodes; lower it or start more nodes", few.Want, few.Have)}
	}
	if err != nil {
		return nil, err
	}
	parts := make([]metadata.PartitionAssignment, len(assign))
	for i, replicas := range assign {
		parts[i] = metadata.PartitionAssignment{Partition: int32(i), Replicas: replicas}
	}
	if _, err := n.proposeMeta(ctx, metadata.CreateTopic{Name: spec.Name, Config: cfg, Partitions: parts,
		MaxTopics: limits.MaxTopics, MaxTotalPartitions: limits.MaxTotalPartitions}); err != nil {
		return nil, err
	}
	return n.waitTopic(ctx, spec.Name, func(t *metadata.Topic) bool { return t != nil })
}

// DeleteTopic removes a topic; every node deletes its replicas' files.
// The meta leader decides whether the topic exists: this node's copy of the
// metadata may trail it.
func (n *Node) DeleteTopic(ctx context.Context, name string) error {
	res, err := n.proposeMeta(ctx, metadata.DeleteTopic{Name: name})
	if err != nil {
		return err
	}
	_, err = n.waitTopic(ctx, name, func(*metadata.Topic) bool { return n.meta.fsm.State().Index >= res.Index })
	return err
}

// AlterTopicConfig sets and deletes (back to default) topic config keys.
func (n *Node) AlterTopicConfig(ctx context.Context, name string, set map[string]string, del []string) (*metadata.Topic, error) {
	res, err := n.proposeMeta(ctx, metadata.AlterTopicConfig{Name: name, Set: set, Delete: del})
	if err != nil {
		return nil, err
	}
	return n.waitTopic(ctx, name, func(t *metadata.Topic) bool { return t != nil && n.meta.fsm.State().Index >= res.Index })
}

// Topics lists the topics in this node's metadata, by name.
func (n *Node) Topics() []*metadata.Topic {
	st := n.meta.fsm.State()
	out := make([]*metadata.Topic, 0, len(st.Topics))
	for _, name := range st.TopicNames() {
		out = append(out, st.Topics[name])
	}
	return out
}

// waitTopic waits until this node's metadata satisfies done for the topic.
func (n *Node) waitTopic(ctx context.Context, name string, done func(*metadata.Topic) bool) (*metadata.Topic, error) {
	for {
		changed := n.meta.fsm.Changed()
		t := n.meta.fsm.State().Topics[name]
		if done(t) {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for topic %s in local metadata: %w", name, ctx.Err())
		case <-changed:
		}
	}
}

// registrationWait bounds how long placement waits for nodes gossip sees
// but this node's metadata does not list yet.
const registrationWait = 3 * time.Second

// awaitRegistrations returns the metadata once every live gossip member is
// registered in it (or after registrationWait): this node's copy may trail
// the meta leader by a moment, and a topic created then would leave a fresh
// node out of its placement.
func (n *Node) awaitRegistrations(ctx context.Context) *metadata.State {
	deadline := time.NewTimer(registrationWait)
	defer deadline.Stop()
	for {
		changed := n.meta.fsm.Changed()
		st := n.meta.fsm.State()
		missing := false
		for _, m := range n.members.Alive() {
			if _, ok := st.Brokers[m.Meta.ID]; !ok {
				missing = true
			}
		}
		if !missing {
			return st
		}
		select {
		case <-changed:
		case <-deadline.C:
			return st
		case <-ctx.Done():
			return st
		}
	}
}

// placeableNodes are the registered brokers gossip does not report dead or
// gone, that are not being decommissioned and whose disk is not (nearly)
// full. A broker this node's gossip
// has not heard of yet (gossip still converging after a join) counts as
// live: it registered through the meta leader, so it was alive moments ago.
func (n *Node) placeableNodes(st *metadata.State) []placement.Node {
	dead := n.deadSince()
	var out []placement.Node
	for _, id := range st.BrokerIDs() {
		if _, gone := dead[id]; gone || st.Decommissioning(id) || st.DiskDegraded(id) {
			continue
		}
		b := st.Brokers[id]
		out = append(out, placement.Node{ID: b.ID, Rack: b.Rack})
	}
	return out
}

// PartitionStatus is one replica's view of its partition.
type PartitionStatus struct {
	Topic          string   `json:"topic"`
	TopicID        uint64   `json:"topic_id"`
	Partition      int32    `json:"partition"`
	Node           string   `json:"node"`
	State          string   `json:"state"`
	Term           uint64   `json:"term"`
	LeaderID       string   `json:"leader_id"`
	InSync         []string `json:"in_sync,omitempty"` // leaders only
	HighWatermark  int64    `json:"high_watermark"`
	LogStartOffset int64    `json:"log_start_offset"`
	SizeBytes      int64    `json:"size_bytes"`
}

func (n *Node) localPartitionStatus(ctx context.Context) []PartitionStatus {
	// One snapshot of the replicas: a replica started between two looks
	// would have a key and no replica.
	all := n.replicas.all()
	out := make([]PartitionStatus, 0, len(all))
	for _, key := range sortedPartitionKeys(all) {
		r := all[key]
		s := r.Status()
		ps := PartitionStatus{Topic: key.Topic, TopicID: key.TopicID, Partition: key.Partition, Node: n.id,
			State: s.State, Term: s.Term, LeaderID: s.LeaderID, HighWatermark: s.HighWatermark,
			LogStartOffset: s.LogStartOffset, SizeBytes: s.SizeBytes}
		if s.State == "Leader" {
			ps.InSync, _ = r.InSync(ctx)
		}
		out = append(out, ps)
	}
	return out
}

// PartitionInfo describes a partition as clients need it.
type PartitionInfo struct {
	Partition      int32    `json:"partition"`
	Leader         string   `json:"leader"` // node id, "" while offline
	Replicas       []string `json:"replicas"`
	InSync         []string `json:"in_sync"`
	HighWatermark  int64    `json:"high_watermark"`
	LogStartOffset int64    `json:"log_start_offset"`
}

// TopicDescription is a topic with its partitions' live state.
type TopicDescription struct {
	Topic      *metadata.Topic `json:"topic"`
	Partitions []PartitionInfo `json:"partitions"`
}

// DescribeTopic returns the topic with, per partition, its leader, in-sync
// replicas and offsets, gathered from the nodes hosting it.
func (n *Node) DescribeTopic(ctx context.Context, name string) (TopicDescription, error) {
	st := n.meta.fsm.State()
	t, ok := st.Topics[name]
	if !ok {
		return TopicDescription{}, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, name)
	}
	statuses := n.gatherPartitionStatus(ctx, st)
	desc := TopicDescription{Topic: t, Partitions: make([]PartitionInfo, len(t.Partitions))}
	for i, pa := range t.Partitions {
		info := PartitionInfo{Partition: pa.Partition, Replicas: pa.Replicas, HighWatermark: -1, LogStartOffset: -1}
		var best *PartitionStatus
		for j := range statuses {
			s := &statuses[j]
			if s.TopicID != t.ID || s.Partition != pa.Partition || s.State != "Leader" {
				continue
			}
			if best == nil || s.Term > best.Term {
				best = s
			}
		}
		if best != nil {
			info.Leader, info.InSync = best.Node, best.InSync
			info.HighWatermark, info.LogStartOffset = best.HighWatermark, best.LogStartOffset
		}
		desc.Partitions[i] = info
	}
	return desc, nil
}

// gatherPartitionStatus asks every live registered node (itself directly)
// for its replicas' status, concurrently.
func (n *Node) gatherPartitionStatus(ctx context.Context, st *metadata.State) []PartitionStatus {
	var (
		mu  sync.Mutex
		out = n.localPartitionStatus(ctx)
		wg  sync.WaitGroup
	)
	for _, m := range n.members.Alive() {
		if m.Meta.ID == n.id {
			continue
		}
		b, ok := st.Brokers[m.Meta.ID]
		if !ok {
			continue
		}
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			// One unreachable peer must not hold the whole answer up, and
			// one that just failed to answer (killed, cut off: gossip has
			// not declared it dead yet) gets a short wait for a while, so
			// that metadata answers stay fast during a failover.
			timeout := statusProbeTimeout
			if at, ok := n.peerFailed.Load(b.ID); ok && time.Since(at.(time.Time)) < suspectFor {
				timeout = suspectProbeTimeout
			}
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			got, err := n.fetchPartitionStatus(pctx, addr)
			if err != nil {
				n.peerFailed.Store(b.ID, time.Now())
				n.logger.Debug("partition status", "node", b.ID, "error", err)
				return
			}
			n.peerFailed.Delete(b.ID)
			mu.Lock()
			out = append(out, got...)
			mu.Unlock()
		}(b.RaftAddr)
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		if out[i].Partition != out[j].Partition {
			return out[i].Partition < out[j].Partition
		}
		return out[i].Node < out[j].Node
	})
	return out
}

func (n *Node) fetchPartitionStatus(ctx context.Context, addr string) ([]PartitionStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peerURL(addr, "/internal/v1/partitions"), nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", addr, resp.Status)
	}
	var out []PartitionStatus
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// Replica returns this node's replica of a partition, for serving produce
// and fetch. Errors: metadata.ErrUnknownTopic, an InvalidArgumentError for a
// partition out of range, or *partition.NotLeaderError when the partition
// has no replica here (naming its leader when known).
func (n *Node) Replica(ctx context.Context, topic string, p int32) (*partition.Replica, error) {
	st := n.meta.fsm.State()
	t, ok := st.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, topic)
	}
	if p < 0 || int(p) >= len(t.Partitions) {
		return nil, &metadata.InvalidArgumentError{Field: "partition",
			Reason: fmt.Sprintf("%d out of range: topic %s has partitions 0..%d", p, topic, len(t.Partitions)-1)}
	}
	if r, _, ok := n.replicas.get(topic, p); ok {
		return r, nil
	}
	return nil, &partition.NotLeaderError{}
}

// ClusterStatus summarises the cluster for operators.
type ClusterStatus struct {
	Nodes                    []NodeStatus `json:"nodes"`
	ControllerID             string       `json:"controller"`
	Topics                   int          `json:"topics"`
	Partitions               int          `json:"partitions"`
	UnderReplicatedPartition int          `json:"under_replicated_partitions"`
	OfflinePartitions        int          `json:"offline_partitions"`
}

// NodeStatus is one node as gossip and the metadata see it.
type NodeStatus struct {
	ID       string `json:"id"`
	State    string `json:"state"`
	GRPCAddr string `json:"grpc_addr"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Rack     string `json:"rack,omitempty"`
	// Listeners are the node's named client listeners and their
	// advertised addresses, as registered in the metadata.
	Listeners map[string]string `json:"listeners,omitempty"`
}

// Status gathers the cluster's state.
func (n *Node) Status(ctx context.Context) ClusterStatus {
	st := n.meta.fsm.State()
	cs := ClusterStatus{Topics: len(st.Topics)}
	cs.ControllerID, _ = n.meta.leader()
	for _, m := range n.members.Members() {
		cs.Nodes = append(cs.Nodes, NodeStatus{ID: m.Meta.ID, State: m.State.String(), GRPCAddr: m.Meta.GRPCAddr,
			RaftAddr: m.Meta.RaftAddr, HTTPAddr: m.Meta.HTTPAddr, Rack: m.Meta.Rack, Listeners: st.Brokers[m.Meta.ID].Listeners})
	}
	statuses := n.gatherPartitionStatus(ctx, st)
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, pa := range t.Partitions {
			cs.Partitions++
			var leader *PartitionStatus
			for j := range statuses {
				s := &statuses[j]
				if s.TopicID == t.ID && s.Partition == pa.Partition && s.State == "Leader" && (leader == nil || s.Term > leader.Term) {
					leader = s
				}
			}
			switch {
			case leader == nil:
				cs.OfflinePartitions++
			case len(leader.InSync) < len(pa.Replicas):
				cs.UnderReplicatedPartition++
			}
		}
	}
	return cs
}

// topicLagWait bounds how long a request naming a topic this node does not
// know waits for the metadata to catch up: a topic created through another
// node reaches this one a few milliseconds later, and a client that just
// created it must not be told it does not exist.
const topicLagWait = 2 * time.Second

// MetadataWithTopic returns the metadata once it holds topic, or once this
// node has applied every metadata entry it knows to be committed (plus one
// heartbeat, which brings word of newer commits) without finding it: then
// the topic really is unknown, and the caller hears so in ~100ms, not
// topicLagWait.
func (n *Node) MetadataWithTopic(ctx context.Context, topic string) *metadata.State {
	st := n.meta.fsm.State()
	if _, ok := st.Topics[topic]; ok || n.meta.isLeader() {
		return st
	}
	start := time.Now()
	heartbeat := n.cfg.Partition.Raft.HeartbeatTimeout / 8
	wctx, cancel := context.WithTimeout(ctx, topicLagWait)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		changed := n.meta.fsm.Changed()
		st = n.meta.fsm.State()
		if _, ok := st.Topics[topic]; ok {
			return st
		}
		if time.Since(start) > heartbeat && st.Index >= n.meta.raft.CommitIndex() {
			return st
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-wctx.Done():
			return n.meta.fsm.State()
		}
	}
}
