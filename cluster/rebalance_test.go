package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// replicasOn counts the replicas the metadata assigns to id.
func replicasOn(n *Node, id string) int {
	return n.Metadata().Load().Replicas[id]
}

func TestJoiningNodeTakesItsShareThroughAutoRebalance(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "ar", 6, 2)
	a := &acked{}
	for p := int32(0); p < 6; p++ {
		res, err := c.produce(ctx, "ar", p, batchOf(t, int64(p), 0))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s0", p), p, res.BaseOffset)
	}
	total := 0
	for _, ref := range c.anyNode().Metadata().Partitions() {
		total += len(ref.Replicas)
	}
	joined := c.addNode()
	id := joined.cfg.ID
	c.waitReady(30 * time.Second)
	// Even share: total/4 rounded down at least (internal topics count too).
	waitFor(t, 90*time.Second, "the new node to take its share of replicas", func() bool {
		return replicasOn(c.anyNode(), id) >= total/4
	})
	c.waitAllLed("ar", 60*time.Second)
	waitFor(t, 60*time.Second, "the new node to lead a partition", func() bool {
		return nodeInfoOf(t, c.anyNode(), id).Leaders > 0
	})
	c.verifyAcked("ar", a)
}

func TestRebalanceDryRunChangesNothingAndApplyEvensLoad(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.AutoRebalance = false })
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "rb", 8, 2)
	joined := c.addNode()
	joined.cfg.AutoRebalance = false
	id := joined.cfg.ID
	c.waitReady(30 * time.Second)
	waitFor(t, 30*time.Second, "the new node registered", func() bool {
		_, ok := c.anyNode().Metadata().Brokers[id]
		return ok
	})
	if got := replicasOn(c.anyNode(), id); got != 0 {
		t.Fatalf("with auto-rebalance off the new node got %d replicas", got)
	}
	before := c.anyNode().Metadata().Index
	plan, err := c.anyNode().Rebalance(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Applying || len(plan.Moves) == 0 {
		t.Fatalf("dry run: %+v", plan)
	}
	toNew := 0
	for _, m := range plan.Moves {
		for _, r := range m.To {
			if r == id {
				toNew++
			}
		}
	}
	if toNew < 4 {
		t.Fatalf("plan gives the new node %d replicas, want at least 4 of 16: %+v", toNew, plan.Moves)
	}
	if replicasOn(c.anyNode(), id) != 0 || c.anyNode().Metadata().Index != before {
		t.Fatal("a dry run changed the metadata")
	}
	plan, err = c.nodes[1].node().Rebalance(ctx, false)
	if err != nil || !plan.Applying {
		t.Fatalf("apply: %+v %v", plan, err)
	}
	waitFor(t, 90*time.Second, "the plan applied", func() bool {
		return replicasOn(c.anyNode(), id) >= toNew
	})
	c.waitAllLed("rb", 60*time.Second)
	waitFor(t, 30*time.Second, "nothing left to rebalance", func() bool {
		moves, err := c.anyNode().PlanRebalance()
		return err == nil && len(moves) == 0
	})
}

func TestMovesInFlightCountsOnlyLiveReplicasCatchingUp(t *testing.T) {
	st := metadata.NewState()
	st.Topics["t"] = &metadata.Topic{Name: "t", ID: 7, Partitions: []metadata.PartitionAssignment{
		{Partition: 0, Replicas: []string{"a", "b", "c"}}, // c catching up
		{Partition: 1, Replicas: []string{"a", "b", "d"}}, // d dead: not a move
		{Partition: 2, Replicas: []string{"a", "b", "c"}}, // in sync
		{Partition: 3, Replicas: []string{"a", "b", "c"}}, // no leader
	}}
	statuses := []PartitionStatus{
		{TopicID: 7, Partition: 0, Node: "a", State: "Leader", Term: 2, InSync: []string{"a", "b"}},
		{TopicID: 7, Partition: 0, Node: "b", State: "Leader", Term: 1, InSync: []string{"a", "b", "c"}}, // stale leader
		{TopicID: 7, Partition: 1, Node: "a", State: "Leader", Term: 1, InSync: []string{"a", "b"}},
		{TopicID: 7, Partition: 2, Node: "a", State: "Leader", Term: 1, InSync: []string{"a", "b", "c"}},
		{TopicID: 7, Partition: 3, Node: "a", State: "Follower", Term: 1},
	}
	alive := func(id string) bool { return id != "d" }
	if got := movesInFlight(st, statuses, alive); got != 1 {
		t.Fatalf("moves in flight %d, want 1 (partition 0)", got)
	}
}
