package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
)

// RebalanceMove is one partition of a rebalance plan.
type RebalanceMove struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	From      []string `json:"from"`
	To        []string `json:"to"`
	// LeaderOnly moves change only the preferred leader (the order of the
	// same replicas): no data is copied.
	LeaderOnly bool `json:"leader_only"`
}

// RebalancePlan is what Rebalance computed and, unless it was a dry run,
// started to apply.
type RebalancePlan struct {
	Moves []RebalanceMove `json:"moves"`
	// Applying is set when the moves are being applied in the background.
	Applying bool `json:"applying"`
}

// PlanRebalance computes the moves that even replicas and preferred
// leaders over the live nodes that may hold replicas (not dead, not being
// decommissioned), rack-aware and with as few replica moves as the
// greedy placement.Rebalance finds. Partitions with a replica on a dead
// node are left to self-healing.
func (n *Node) PlanRebalance() ([]RebalanceMove, error) {
	st := n.meta.fsm.State()
	refs := st.Partitions()
	parts := make([]placement.Partition, len(refs))
	for i, r := range refs {
		parts[i] = r.Placement()
	}
	moves, err := placement.Rebalance(parts, n.placeableNodes(st))
	if err != nil {
		return nil, err
	}
	out := make([]RebalanceMove, 0, len(moves))
	for _, m := range moves {
		t := st.Topics[m.Topic]
		from := t.Partitions[m.Partition].Replicas
		out = append(out, RebalanceMove{Topic: m.Topic, Partition: m.Partition, From: slices.Clone(from), To: m.Replicas,
			LeaderOnly: sameIDs(from, m.Replicas)})
	}
	return out, nil
}

// Rebalance plans a rebalance and, unless dryRun, applies it in the
// background on this node: leader-only moves at once, replica moves at
// most Config.MaxConcurrentMoves partitions catching up at a time. A move
// whose partition changed since the plan is skipped. Refused while a
// rebalance this node started is still being applied.
func (n *Node) Rebalance(ctx context.Context, dryRun bool) (RebalancePlan, error) {
	moves, err := n.PlanRebalance()
	if err != nil {
		return RebalancePlan{}, err
	}
	plan := RebalancePlan{Moves: moves}
	if dryRun || len(moves) == 0 {
		return plan, nil
	}
	if err := n.rebal.start(n, moves); err != nil {
		return plan, err
	}
	plan.Applying = true
	return plan, nil
}

// rebalancer runs at most one rebalance of a node at a time.
type rebalancer struct {
	mu      sync.Mutex
	running bool // guarded by mu
	closed  bool // guarded by mu: the node is shutting down
}

func (r *rebalancer) start(n *Node, moves []RebalanceMove) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return metadata.Refused("node %s is shutting down", n.id)
	}
	if r.running {
		return metadata.Refused("a rebalance started through node %s is still being applied: wait for it (skiff node list shows the load) or use --dry-run", n.id)
	}
	r.running = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() {
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
		}()
		n.applyMoves(moves)
	}()
	return nil
}

// close keeps new rebalances from starting; shutdown calls it before it
// waits for the node's goroutines.
func (r *rebalancer) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// moveWait is how often applyMoves looks whether catch-up capacity freed.
const moveWait = time.Second

func (n *Node) applyMoves(moves []RebalanceMove) {
	ctx, cancel := n.stopContext()
	defer cancel()
	// Leader-only moves first: they copy nothing and even the load at once.
	ordered := slices.Clone(moves)
	slices.SortStableFunc(ordered, func(a, b RebalanceMove) int {
		switch {
		case a.LeaderOnly == b.LeaderOnly:
			return 0
		case a.LeaderOnly:
			return -1
		}
		return 1
	})
	for _, m := range ordered {
		for !m.LeaderOnly && ctx.Err() == nil {
			st := n.meta.fsm.State()
			sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
			inFlight := movesInFlight(st, n.gatherPartitionStatus(sctx, st), n.isAlive)
			scancel()
			if inFlight < n.cfg.MaxConcurrentMoves {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(moveWait):
			}
		}
		if ctx.Err() != nil {
			return
		}
		st := n.meta.fsm.State()
		t, ok := st.Topics[m.Topic]
		if !ok || int(m.Partition) >= len(t.Partitions) || !slices.Equal(t.Partitions[m.Partition].Replicas, m.From) {
			n.logger.Info("rebalance: partition changed since the plan; skipped", "topic", m.Topic, "partition", m.Partition)
			continue
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := n.proposeMeta(pctx, metadata.ReassignPartition{Topic: m.Topic, TopicID: t.ID, Partition: m.Partition, Replicas: m.To})
		pcancel()
		if err != nil {
			n.logger.Warn("rebalance: move", "topic", m.Topic, "partition", m.Partition, "error", err)
			continue
		}
		n.logger.Info("rebalance: moved", "topic", m.Topic, "partition", m.Partition, "from", m.From, "to", m.To)
	}
}

// autoRebalance is the controller's reaction to a node joining: with
// Config.AutoRebalance, a broker registered since the last round (and
// alive) starts a rebalance, so the new node takes its share of replicas
// and leaders. known is the controller goroutine's memory of the brokers
// it has seen; nil after this node was not the leader (a new leader only
// takes note of the brokers, so leadership changes alone move nothing).
// The members of the meta group's configuration count as known too: the
// nodes that bootstrapped the cluster register a moment after it forms,
// and their registrations are not joins.
func (n *Node) autoRebalance(ctx context.Context, known map[string]bool) map[string]bool {
	st := n.meta.fsm.State()
	if known == nil {
		servers, err := n.meta.servers(ctx)
		if err != nil {
			return nil // try again next round
		}
		known = map[string]bool{}
		for _, s := range servers {
			known[string(s.ID)] = true
		}
		for id := range st.Brokers {
			known[id] = true
		}
		return known
	}
	joined := false
	for id := range st.Brokers {
		if !known[id] && n.isAlive(id) {
			known[id] = true
			joined = true
			n.logger.Info("node joined", "node", id, "auto_rebalance", n.cfg.AutoRebalance)
		}
	}
	if !joined || !n.cfg.AutoRebalance {
		return known
	}
	moves, err := n.PlanRebalance()
	if err != nil || len(moves) == 0 {
		return known
	}
	if err := n.rebal.start(n, moves); err != nil {
		n.logger.Info("auto rebalance not started", "reason", err)
	}
	return known
}

// sameIDs reports whether a and b hold the same ids (each free of
// duplicates), in any order.
func sameIDs(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(id string) bool { return !slices.Contains(b, id) })
}
