package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
)

// Node modes as skiff node list shows them.
const (
	ModeActive          = "active"
	ModeMaintenance     = "maintenance"
	ModeDecommissioning = "decommissioning"
	ModeDecommissioned  = "decommissioned"
	// ModeDegraded is a node whose disk is (nearly) full: it refuses
	// writes, takes no new replicas and leads nothing.
	ModeDegraded = "degraded"
)

// NodeInfo is one registered node for operators (skiff node list).
type NodeInfo struct {
	ID       string `json:"id"`
	GRPCAddr string `json:"grpc_addr"`
	Rack     string `json:"rack,omitempty"`
	// State is what gossip says: alive, suspect, dead, left, or unknown
	// for a node gossip has not heard of.
	State string `json:"state"`
	// Mode is active, maintenance, degraded (disk nearly full),
	// decommissioning or decommissioned (no replica left and out of the
	// meta group).
	Mode string `json:"mode"`
	// Maintenance is set while leadership is kept off the node (also
	// while it is decommissioned).
	Maintenance bool `json:"maintenance"`
	// Replicas counts the partition replicas the metadata assigns to the
	// node; Leaders the partitions it leads now.
	Replicas int `json:"replicas"`
	Leaders  int `json:"leaders"`
	// Meta is the node's role in the meta group: voter, nonvoter, or ""
	// when it is not a member.
	Meta string `json:"meta,omitempty"`
	// Blocked says why a decommission cannot move the node's remaining
	// replicas ("" while it progresses or when nothing is asked).
	Blocked string `json:"blocked,omitempty"`
}

// ErrMetadataUnavailable: this node is in contact with no metadata leader,
// so its view of the nodes may be stale. It is cut off, or out of the
// metadata group after a decommission: a removed node never hears of its
// removal and would go on listing itself as a member, so that a watch of
// the decommission asking it would never see the end. The client asks
// another node.
var ErrMetadataUnavailable = errors.New("this node knows no metadata leader (cut off, or decommissioned and out of the metadata group): ask another node")

// ListNodes returns every registered node, by id, with its mode and load.
func (n *Node) ListNodes(ctx context.Context) ([]NodeInfo, error) {
	if id, _ := n.meta.leader(); id == "" {
		return nil, fmt.Errorf("list nodes on %s: %w", n.id, ErrMetadataUnavailable)
	}
	st := n.meta.fsm.State()
	gossip := map[string]string{}
	for _, m := range n.members.Members() {
		gossip[m.Meta.ID] = m.State.String()
	}
	role := map[string]string{}
	if servers, err := n.metaServers(ctx); err == nil {
		for _, s := range servers {
			role[string(s.ID)] = strings.ToLower(s.Suffrage.String())
		}
	}
	leaders := leaderCounts(st, n.gatherPartitionStatus(ctx, st))
	load := st.Load()
	out := make([]NodeInfo, 0, len(st.Brokers))
	for _, id := range st.BrokerIDs() {
		b := st.Brokers[id]
		m := st.Mode(id)
		ni := NodeInfo{ID: id, GRPCAddr: b.GRPCAddr, Rack: b.Rack, State: "unknown", Mode: ModeActive,
			Maintenance: m.Maintenance, Replicas: load.Replicas[id], Leaders: leaders[id], Meta: role[id]}
		if s, ok := gossip[id]; ok {
			ni.State = s
		}
		switch {
		case m.Decommission && ni.Replicas == 0 && ni.Meta == "":
			ni.Mode = ModeDecommissioned
		case m.Decommission:
			ni.Mode = ModeDecommissioning
			ni.Blocked = n.decommissionBlocked(st, id)
		case m.Maintenance:
			ni.Mode = ModeMaintenance
		case m.DiskDegraded:
			ni.Mode = ModeDegraded
		}
		out = append(out, ni)
	}
	return out, nil
}

// metaServers is the meta group's configuration as this node knows it.
func (n *Node) metaServers(ctx context.Context) ([]raft.Server, error) {
	return n.meta.servers(ctx)
}

// partitionID names a partition by its topic's id.
type partitionID struct {
	topic uint64
	p     int32
}

// reportedLeaders picks, per partition, the replica status that claims
// leadership; the newest term wins where two replicas claim a partition
// during an election.
func reportedLeaders(statuses []PartitionStatus) map[partitionID]*PartitionStatus {
	best := map[partitionID]*PartitionStatus{}
	for i := range statuses {
		s := &statuses[i]
		if s.State != "Leader" {
			continue
		}
		k := partitionID{s.TopicID, s.Partition}
		if b, ok := best[k]; !ok || s.Term > b.Term {
			best[k] = s
		}
	}
	return best
}

// leaderCounts counts, per node, the partitions it leads.
func leaderCounts(st *metadata.State, statuses []PartitionStatus) map[string]int {
	best := reportedLeaders(statuses)
	out := map[string]int{}
	for _, t := range st.Topics {
		for _, pa := range t.Partitions {
			if s, ok := best[partitionID{t.ID, pa.Partition}]; ok {
				out[s.Node]++
			}
		}
	}
	return out
}

// Decommission asks the controller to move every replica off node id and
// then remove it from the meta group. Asking again for a node being
// decommissioned is a no-op, so an interrupted `skiff node decommission`
// is resumed by running it again. Refused (*metadata.PreconditionError)
// when no other node could take the node's replicas.
func (n *Node) Decommission(ctx context.Context, id string) (NodeInfo, error) {
	st := n.meta.fsm.State()
	if _, ok := st.Brokers[id]; !ok {
		return NodeInfo{}, unknownNode(st, id)
	}
	if !st.Decommissioning(id) {
		if err := n.canDecommission(st, id); err != nil {
			return NodeInfo{}, err
		}
	}
	yes := true
	return n.setNodeMode(ctx, metadata.SetNodeMode{Node: id, Decommission: &yes})
}

// Recommission cancels a decommission: the node may take replicas again
// and rejoins the meta group. Replicas already moved off stay where they
// are until a rebalance or a reassignment moves some back.
func (n *Node) Recommission(ctx context.Context, id string) (NodeInfo, error) {
	st := n.meta.fsm.State()
	if _, ok := st.Brokers[id]; !ok {
		return NodeInfo{}, unknownNode(st, id)
	}
	no := false
	return n.setNodeMode(ctx, metadata.SetNodeMode{Node: id, Decommission: &no})
}

// SetMaintenance turns maintenance mode on or off. While on, the node
// hands partition and meta leadership to other replicas and takes none
// back (a leadership it wins in an election is handed on again within a
// reconcile interval). Refused when turning it on would leave no node to
// lead.
func (n *Node) SetMaintenance(ctx context.Context, id string, on bool) (NodeInfo, error) {
	st := n.meta.fsm.State()
	if _, ok := st.Brokers[id]; !ok {
		return NodeInfo{}, unknownNode(st, id)
	}
	if on && !st.InMaintenance(id) {
		others := 0
		for _, b := range st.BrokerIDs() {
			if b != id && !st.InMaintenance(b) && !st.Decommissioning(b) && n.isAlive(b) {
				others++
			}
		}
		if others == 0 {
			return NodeInfo{}, metadata.Refused("node %s is the last live node able to lead partitions: "+
				"maintenance would leave none; start another node or end maintenance elsewhere first", id)
		}
	}
	return n.setNodeMode(ctx, metadata.SetNodeMode{Node: id, Maintenance: &on})
}

func (n *Node) setNodeMode(ctx context.Context, cmd metadata.SetNodeMode) (NodeInfo, error) {
	res, err := n.proposeMeta(ctx, cmd)
	if err != nil {
		return NodeInfo{}, err
	}
	if err := n.waitMetaIndex(ctx, res.Index); err != nil {
		return NodeInfo{}, err
	}
	nodes, err := n.ListNodes(ctx)
	if err != nil {
		return NodeInfo{}, err
	}
	for _, ni := range nodes {
		if ni.ID == cmd.Node {
			return ni, nil
		}
	}
	return NodeInfo{}, fmt.Errorf("node %s vanished from the metadata", cmd.Node)
}

func unknownNode(st *metadata.State, id string) error {
	return fmt.Errorf("%w %q: the registered nodes are %s", metadata.ErrUnknownBroker, id, strings.Join(st.BrokerIDs(), ", "))
}

// drainTargets are the nodes that may take a replica moved off a
// decommissioned node: registered, not dead, not being decommissioned.
func (n *Node) drainTargets(st *metadata.State) []placement.Node {
	return n.placeableNodes(st)
}

// canDecommission refuses to start a decommission that could never end:
// the node is the last one able to hold replicas, or one of its
// partitions needs more distinct nodes than would remain.
func (n *Node) canDecommission(st *metadata.State, id string) error {
	targets := slices.DeleteFunc(n.drainTargets(st), func(p placement.Node) bool { return p.ID == id })
	if len(targets) == 0 {
		return metadata.Refused("node %s is the last node able to hold replicas: start another node before decommissioning it", id)
	}
	for _, ref := range st.PartitionsOn(id) {
		if len(ref.Replicas) > len(targets) {
			return metadata.Refused("partition %s/%d has %d replicas but only %d other nodes (%s) could hold them once %s is gone: "+
				"start another node first", ref.Topic, ref.Partition, len(ref.Replicas), len(targets), nodeIDs(targets), id)
		}
	}
	return nil
}

// decommissionBlocked says why the controller cannot move a replica off
// a decommissioning node, or "" when it can.
func (n *Node) decommissionBlocked(st *metadata.State, id string) string {
	targets := n.drainTargets(st)
	for _, ref := range st.PartitionsOn(id) {
		if _, _, err := placement.Replace(ref.Replicas, targets, st.Load()); err != nil {
			return fmt.Sprintf("partition %s/%d needs %d replicas on distinct nodes but only %d nodes can take one (%s): start another node",
				ref.Topic, ref.Partition, len(ref.Replicas), len(targets), nodeIDs(targets))
		}
	}
	return ""
}

func nodeIDs(nodes []placement.Node) string {
	ids := make([]string, len(nodes))
	for i, p := range nodes {
		ids[i] = p.ID
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}
