package cluster

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
	"github.com/skiff-mq/skiff/internal/raftutil"
)

// drainDecommissioned is the meta leader's share of a decommission: move
// replicas off every node being decommissioned, a few partitions at a
// time, and once a node holds none, remove it from the meta group.
//
// Moves are bounded by Config.MaxConcurrentMoves: a move adds a replica
// that copies the partition from its leader, and many at once would
// compete with produce traffic for disk and network. A partition counts as
// moving while its leader's in-sync set lacks one of its assigned
// replicas. A move that cannot be placed (too few nodes) is skipped here
// and explained by ListNodes (NodeInfo.Blocked).
func (n *Node) drainDecommissioned(ctx context.Context) {
	st := n.meta.fsm.State()
	servers, err := n.meta.servers(ctx)
	if err != nil {
		return
	}
	// A decommissioned node keeps its mode until recommissioned; once it
	// holds nothing and is out of the meta group there is nothing to do
	// (and no status round to pay for) every tick.
	var draining []string
	for id, m := range st.NodeModes {
		inMeta := slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == id })
		if m.Decommission && (inMeta || len(st.PartitionsOn(id)) > 0) {
			draining = append(draining, id)
		}
	}
	if len(draining) == 0 {
		return
	}
	sort.Strings(draining)
	statuses := n.gatherPartitionStatus(ctx, st)
	budget := n.cfg.MaxConcurrentMoves - movesInFlight(st, statuses, n.isAlive)
	targets := n.drainTargets(st)
	for _, id := range draining {
		for _, ref := range st.PartitionsOn(id) {
			if budget <= 0 || ctx.Err() != nil {
				return
			}
			replicas, changed, err := placement.Replace(ref.Replicas, targets, st.Load())
			if err != nil || !changed {
				continue
			}
			if _, err := n.proposeMeta(ctx, metadata.ReassignPartition{Topic: ref.Topic, TopicID: ref.TopicID,
				Partition: ref.Partition, Replicas: replicas}); err != nil {
				n.logger.Warn("decommission: move replica", "node", id, "topic", ref.Topic, "partition", ref.Partition, "error", err)
				return
			}
			n.logger.Info("decommission: moving replica", "node", id, "topic", ref.Topic, "partition", ref.Partition, "replicas", replicas)
			budget--
			st = n.meta.fsm.State()
		}
		if len(st.PartitionsOn(id)) == 0 && !hostsReplicas(statuses, id) {
			n.removeFromMeta(ctx, id)
		}
	}
}

// movesInFlight counts partitions whose leader does not yet have every
// assigned replica in sync where the missing replica is on a live node:
// those are catching up, with the bandwidth a new move would take. A
// replica missing because its node is dead copies nothing, and must not
// hold moves up (self-healing replaces it after --replace-after).
func movesInFlight(st *metadata.State, statuses []PartitionStatus, alive func(id string) bool) int {
	leaders := reportedLeaders(statuses)
	n := 0
	for _, ref := range st.Partitions() {
		l, ok := leaders[partitionID{ref.TopicID, ref.Partition}]
		if !ok {
			continue // offline: no leader to copy from, nothing moves
		}
		for _, id := range ref.Replicas {
			if !slices.Contains(l.InSync, id) && alive(id) {
				n++
				break
			}
		}
	}
	return n
}

// hostsReplicas reports whether a node still reports running replicas.
func hostsReplicas(statuses []PartitionStatus, id string) bool {
	return slices.ContainsFunc(statuses, func(s PartitionStatus) bool { return s.Node == id })
}

// removeFromMeta takes a drained node out of the meta group's
// configuration (manageMetaMembers no longer adds a decommissioning node
// back, and promotes another voter if it was one).
func (n *Node) removeFromMeta(ctx context.Context, id string) {
	if id == n.id {
		return // handMetaLeadershipOff moves leadership first
	}
	servers, err := n.meta.servers(ctx)
	if err != nil || !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == id }) {
		return
	}
	if err := raftutil.WaitFuture(ctx, n.meta.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second)); err != nil {
		n.logger.Warn("decommission: remove from meta group", "node", id, "error", err)
		return
	}
	n.logger.Info("decommission: removed from meta group", "node", id)
}

// handMetaLeadershipOff transfers meta leadership away from this node when
// it is in maintenance or being decommissioned, and reports whether it
// tried (the caller then skips the leader's duties for this round).
func (n *Node) handMetaLeadershipOff(ctx context.Context) bool {
	st := n.meta.fsm.State()
	if st.Mode(n.id).Active() {
		return false
	}
	servers, err := n.meta.servers(ctx)
	if err != nil {
		return false
	}
	for _, s := range servers {
		id := string(s.ID)
		if s.Suffrage != raft.Voter || id == n.id || !st.Mode(id).Active() || !n.isAlive(id) {
			continue
		}
		if err := raftutil.WaitFuture(ctx, n.meta.raft.LeadershipTransferToServer(s.ID, s.Address)); err != nil {
			n.logger.Warn("meta leadership handover", "to", id, "error", err)
			return true
		}
		n.logger.Info("meta leadership handed over", "to", id, "mode", st.Mode(n.id))
		return true
	}
	// No voter can take it: keep leading rather than leave the cluster
	// without a controller.
	return false
}
