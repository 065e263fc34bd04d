package placement

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

func loadOf(parts []Partition) (replicas, leaders map[string]int) {
	replicas, leaders = map[string]int{}, map[string]int{}
	for _, p := range parts {
		for i, id := range p.Replicas {
			replicas[id]++
			if i == 0 {
				leaders[id]++
			}
		}
	}
	return replicas, leaders
}

func applyMoves(parts []Partition, moves []Move) []Partition {
	out := make([]Partition, len(parts))
	for i, p := range parts {
		out[i] = Partition{Topic: p.Topic, Partition: p.Partition, Replicas: slices.Clone(p.Replicas)}
		for _, m := range moves {
			if m.Topic == p.Topic && m.Partition == p.Partition {
				out[i].Replicas = slices.Clone(m.Replicas)
			}
		}
	}
	return out
}

func rackSpread(ids []string, nodes []Node) int {
	rack := map[string]string{}
	for _, n := range nodes {
		rack[n.ID] = "node:" + n.ID
		if n.Rack != "" {
			rack[n.ID] = "rack:" + n.Rack
		}
	}
	seen := map[string]bool{}
	for _, id := range ids {
		seen[rack[id]] = true
	}
	return len(seen)
}

func TestRebalanceSpreadsReplicasOntoANewNode(t *testing.T) {
	nodes := nodesN(3)
	assign, err := AssignTopic(nodes, Load{}, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	var parts []Partition
	for i, r := range assign {
		parts = append(parts, Partition{Topic: "t", Partition: int32(i), Replicas: r})
	}
	// A fourth node joins with nothing: 18 replicas over 4 nodes is 4 or 5
	// each, so 4 replicas move to it, and no more.
	nodes = nodesN(4)
	moves, err := Rebalance(parts, nodes)
	if err != nil {
		t.Fatal(err)
	}
	after := applyMoves(parts, moves)
	replicas, leaders := loadOf(after)
	if replicas["n03"] != 4 {
		t.Fatalf("new node got %d replicas, want 4: %v", replicas["n03"], replicas)
	}
	changedSets := 0
	for i := range parts {
		if !sameMembers(parts[i].Replicas, after[i].Replicas) {
			changedSets++
		}
	}
	if changedSets != 4 {
		t.Fatalf("%d partitions changed members, want the minimal 4", changedSets)
	}
	for id, n := range leaders {
		if n < 1 || n > 2 {
			t.Fatalf("leaders %v: want 1 or 2 each over 6 partitions and 4 nodes (node %s)", leaders, id)
		}
	}
	again, _ := Rebalance(after, nodes)
	if len(again) != 0 {
		t.Fatalf("a balanced cluster is rebalanced again: %v", again)
	}
}

func sameMembers(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(id string) bool { return !slices.Contains(b, id) })
}

func TestRebalanceLeavesPartitionsOnUnknownNodesAlone(t *testing.T) {
	parts := []Partition{
		{Topic: "t", Partition: 0, Replicas: []string{"n00", "gone"}},
		{Topic: "t", Partition: 1, Replicas: []string{"n00", "n01"}},
		{Topic: "t", Partition: 2, Replicas: []string{"n00", "n01"}},
	}
	moves, err := Rebalance(parts, nodesN(3))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range moves {
		if m.Partition == 0 {
			t.Fatalf("moved a partition with a replica on an unknown node: %v", m)
		}
	}
	if _, err := Rebalance(parts, []Node{{ID: "n00"}, {ID: "n00"}}); err == nil {
		t.Fatal("duplicate nodes accepted")
	}
}

func TestRebalanceNeverNarrowsRackSpread(t *testing.T) {
	nodes := []Node{{ID: "a1", Rack: "a"}, {ID: "a2", Rack: "a"}, {ID: "b1", Rack: "b"}, {ID: "b2", Rack: "b"}}
	// Everything on a1 and b1: a2 and b2 are empty, and each move must
	// stay within the rack it leaves.
	var parts []Partition
	for p := int32(0); p < 8; p++ {
		parts = append(parts, Partition{Topic: "t", Partition: p, Replicas: []string{"a1", "b1"}})
	}
	moves, err := Rebalance(parts, nodes)
	if err != nil {
		t.Fatal(err)
	}
	after := applyMoves(parts, moves)
	for _, p := range after {
		if rackSpread(p.Replicas, nodes) != 2 {
			t.Fatalf("partition %d on %v: both replicas in one rack", p.Partition, p.Replicas)
		}
	}
	replicas, _ := loadOf(after)
	for _, n := range nodes {
		if replicas[n.ID] != 4 {
			t.Fatalf("replicas %v: want 4 each", replicas)
		}
	}
}

func TestPropertyRebalanceEvensReplicasAndIsAFixpoint(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 8, rapid.Bool().Draw(t, "racks"))
		rf := rapid.IntRange(1, len(nodes)).Draw(t, "rf")
		n := rapid.IntRange(0, 40).Draw(t, "partitions")
		var parts []Partition
		for p := 0; p < n; p++ {
			// Any distinct replicas: the cluster may be as lopsided as
			// history made it.
			perm := rapid.Permutation(nodes).Draw(t, fmt.Sprintf("perm%d", p))
			var ids []string
			for _, nd := range perm[:rf] {
				ids = append(ids, nd.ID)
			}
			parts = append(parts, Partition{Topic: "t", Partition: int32(p), Replicas: ids})
		}
		moves, err := Rebalance(parts, nodes)
		if err != nil {
			t.Fatal(err)
		}
		after := applyMoves(parts, moves)
		for i, p := range after {
			if len(p.Replicas) != rf || len(slices.Compact(slices.Sorted(slices.Values(p.Replicas)))) != rf {
				t.Fatalf("partition %d: replicas %v (rf %d)", i, p.Replicas, rf)
			}
			if rackSpread(p.Replicas, nodes) < rackSpread(parts[i].Replicas, nodes) {
				t.Fatalf("partition %d: spread narrowed %v -> %v", i, parts[i].Replicas, p.Replicas)
			}
		}
		for _, m := range moves {
			if slices.Equal(m.Replicas, parts[m.Partition].Replicas) {
				t.Fatalf("a move that changes nothing: %v", m)
			}
		}
		hasRacks := slices.ContainsFunc(nodes, func(n Node) bool { return n.Rack != "" })
		if !hasRacks {
			replicas, _ := loadOf(after)
			lo, hi := n*rf, 0
			for _, nd := range nodes {
				lo, hi = min(lo, replicas[nd.ID]), max(hi, replicas[nd.ID])
			}
			if hi-lo > 1 {
				t.Fatalf("replicas %v: spread %d..%d", replicas, lo, hi)
			}
		}
		again, err := Rebalance(after, nodes)
		if err != nil || len(again) != 0 {
			t.Fatalf("not a fixpoint: %v %v", again, err)
		}
	})
}
