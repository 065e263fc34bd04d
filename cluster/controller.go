package cluster

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
	"github.com/skiff-mq/skiff/internal/raftutil"
)

// controllerInterval is how often the meta leader checks for dead nodes and
// meta voters to replace.
const controllerInterval = time.Second

// runController does the meta leader's duties: keep every node in the meta
// group (voters up to MetaVoters, the rest non-voters, dead voters replaced)
// and move replicas off nodes dead longer than ReplaceAfter.
func (n *Node) runController() {
	tick := time.NewTicker(controllerInterval)
	defer tick.Stop()
	var known map[string]bool // brokers seen while leading (autoRebalance)
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if !n.meta.isLeader() {
			known = nil
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if !n.handMetaLeadershipOff(ctx) {
			n.manageMetaMembers(ctx)
			n.healPartitions(ctx)
			n.drainDecommissioned(ctx)
			known = n.autoRebalance(ctx, known)
		}
		cancel()
	}
}

// deadSince returns, per node id gossip reports dead or left, since when.
func (n *Node) deadSince() map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range n.members.Members() {
		if m.State == membership.StateDead || m.State == membership.StateLeft {
			out[m.Meta.ID] = m.Since
		}
	}
	return out
}

func (n *Node) isAlive(id string) bool {
	for _, m := range n.members.Alive() {
		if m.Meta.ID == id {
			return true
		}
	}
	return false
}

// manageMetaMembers adds registered brokers to the meta group as
// non-voters, promotes non-voters while voters are fewer than MetaVoters,
// and replaces voters dead longer than ReplaceAfter.
func (n *Node) manageMetaMembers(ctx context.Context) {
	servers, err := n.meta.servers(ctx)
	if err != nil {
		return
	}
	st := n.meta.fsm.State()
	dead := n.deadSince()
	inConfig := map[string]raft.Server{}
	voters := 0
	for _, s := range servers {
		inConfig[string(s.ID)] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	// Candidates: registered brokers only. A registration reaches the
	// leader over the peer channel, where the node proved its id (its
	// certificate, with TLS), so gossip alone never makes a member of the
	// meta group. A new node registers before it is in the group by
	// forwarding through any live member (forwardToLeader).
	addrs := map[string]string{}
	for id, b := range st.Brokers {
		addrs[id] = b.RaftAddr
	}
	for _, id := range sortedKeys(addrs) {
		if st.Decommissioning(id) {
			continue // drainDecommissioned takes it out
		}
		addr := addrs[id]
		if s, ok := inConfig[id]; ok && string(s.Address) == addr {
			continue
		}
		if _, isDead := dead[id]; isDead {
			continue
		}
		s, known := inConfig[id]
		var f raft.IndexFuture
		if known && s.Suffrage == raft.Voter {
			f = n.meta.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second)
		} else {
			f = n.meta.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 5*time.Second)
		}
		if err := raftutil.WaitFuture(ctx, f); err != nil {
			n.logger.Warn("meta: add member", "broker", id, "error", err)
			return
		}
		suffrage := raft.Nonvoter
		if known {
			suffrage = s.Suffrage
		}
		inConfig[id] = raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: suffrage}
	}
	// Replace voters that have been dead too long, then top voters up.
	for id, s := range inConfig {
		since, isDead := dead[id]
		if s.Suffrage != raft.Voter || !isDead || time.Since(since) < n.cfg.ReplaceAfter || id == n.id || n.answersProbe(ctx, id) {
			continue
		}
		if err := raftutil.WaitFuture(ctx, n.meta.raft.RemoveServer(raft.ServerID(id), 0, 5*time.Second)); err != nil {
			n.logger.Warn("meta: remove dead voter", "broker", id, "error", err)
			return
		}
		n.logger.Info("meta: removed dead voter", "broker", id)
		delete(inConfig, id)
		voters--
	}
	for _, id := range sortedKeys(inConfig) {
		if voters >= n.cfg.MetaVoters {
			break
		}
		s := inConfig[id]
		if s.Suffrage == raft.Voter || !n.isAlive(id) || !st.Mode(id).Active() {
			continue
		}
		if err := raftutil.WaitFuture(ctx, n.meta.raft.AddVoter(s.ID, s.Address, 0, 5*time.Second)); err != nil {
			n.logger.Warn("meta: promote voter", "broker", id, "error", err)
			return
		}
		n.logger.Info("meta: promoted voter", "broker", id)
		voters++
	}
}

// healPartitions moves replicas off nodes dead longer than ReplaceAfter so
// every partition regains its replication factor. Without enough live
// nodes a partition stays under-replicated until its node returns.
func (n *Node) healPartitions(ctx context.Context) {
	st := n.meta.fsm.State()
	dead := n.deadSince()
	gone := map[string]bool{}
	for id, since := range dead {
		if time.Since(since) >= n.cfg.ReplaceAfter && !n.answersProbe(ctx, id) {
			gone[id] = true
		}
	}
	if len(gone) == 0 {
		return
	}
	var alive []placement.Node
	for _, m := range n.members.Alive() {
		if _, ok := st.Brokers[m.Meta.ID]; ok && !st.Decommissioning(m.Meta.ID) && !st.DiskDegraded(m.Meta.ID) {
			alive = append(alive, placement.Node{ID: m.Meta.ID, Rack: m.Meta.Rack})
		}
	}
	load := st.Load()
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, pa := range t.Partitions {
			if !slices.ContainsFunc(pa.Replicas, func(id string) bool { return gone[id] }) {
				continue
			}
			replicas, changed, err := placement.Replace(pa.Replicas, alive, load)
			if err != nil || !changed {
				continue
			}
			_, err = n.proposeMeta(ctx, metadata.ReassignPartition{Topic: t.Name, TopicID: t.ID, Partition: pa.Partition, Replicas: replicas})
			if err != nil {
				n.logger.Warn("reassign partition", "topic", t.Name, "partition", pa.Partition, "error", err)
				return
			}
			n.logger.Info("reassigned partition off dead node", "topic", t.Name, "partition", pa.Partition, "replicas", replicas)
			// Later decisions in this pass see the new load.
			st = n.meta.fsm.State()
			load = st.Load()
		}
	}
}

// probeTimeout bounds the HTTP probe that confirms a node's death.
const probeTimeout = time.Second

// statusProbeTimeout bounds the question for a peer's partition status
// when a metadata answer is gathered. A peer that failed to answer gets
// suspectProbeTimeout instead for suspectFor after the failure.
//
// Why 400 ms: clients give one broker half their request timeout (1 s at
// the 2 s default); a node that waited a second for a cut-off peer
// answered no client during a network partition, each node in turn, for
// the whole first second after the cut (minority-partition: every
// metadata answer of the three nodes came too late).
const (
	statusProbeTimeout  = 400 * time.Millisecond
	suspectProbeTimeout = 150 * time.Millisecond
	suspectFor          = 5 * time.Second
)

// answersProbe reports whether a node gossip calls dead still answers on
// its peer channel. Gossip can be cut while Raft and HTTP traffic flow (a
// firewall rule on the gossip port, a broken UDP path); moving replicas off
// a node that is in fact serving them would churn data for nothing, so a
// death is acted on only when the node is unreachable by both.
func (n *Node) answersProbe(ctx context.Context, id string) bool {
	addr := n.peerAddrOf(id)
	if addr == "" {
		return false
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, peerURL(addr, "/internal/v1/healthz"), nil)
	if err != nil {
		return false
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// bootstrapVoters picks the meta group's first voters from the members gossip
// sees: the first `count` ids in order, so every node picks the same set.
func bootstrapVoters(alive []membership.Member, count int) []raft.Server {
	sort.Slice(alive, func(i, j int) bool { return alive[i].Meta.ID < alive[j].Meta.ID })
	var out []raft.Server
	for _, m := range alive {
		if len(out) == count {
			break
		}
		out = append(out, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.Meta.ID), Address: raft.ServerAddress(m.Meta.RaftAddr)})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
