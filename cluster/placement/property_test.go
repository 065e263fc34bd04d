package placement

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// genNodes draws 1..maxNodes nodes with distinct ids; with racks, each node
// gets one of a few racks or none.
func genNodes(t *rapid.T, maxNodes int, racks bool) []Node {
	n := rapid.IntRange(1, maxNodes).Draw(t, "nodes")
	nodes := nodesN(n)
	if racks {
		for i := range nodes {
			nodes[i].Rack = rapid.SampledFrom([]string{"", "a", "b", "c"}).Draw(t, fmt.Sprintf("rack%d", i))
		}
	}
	return nodes
}

func genLoad(t *rapid.T, nodes []Node) Load {
	l := Load{Replicas: map[string]int{}, Leaders: map[string]int{}}
	for i, n := range nodes {
		l.Replicas[n.ID] = rapid.IntRange(0, 30).Draw(t, fmt.Sprintf("replicas%d", i))
		l.Leaders[n.ID] = rapid.IntRange(0, l.Replicas[n.ID]).Draw(t, fmt.Sprintf("leaders%d", i))
	}
	return l
}

func TestPropertyAssignUniformIsBalanced(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 12, false)
		rf := rapid.IntRange(1, min(7, len(nodes))).Draw(t, "rf")
		partitions := rapid.IntRange(1, 60).Draw(t, "partitions")
		got, err := AssignTopic(nodes, Load{}, partitions, rf)
		if err != nil {
			t.Fatal(err)
		}
		for p, r := range got {
			if len(r) != rf || !distinct(r) {
				t.Fatalf("partition %d: %v", p, r)
			}
		}
		replicas, leaders := counts(got)
		if s := spread(replicas, nodes); s > 1 {
			t.Fatalf("replica spread %d: %v", s, replicas)
		}
		if s := spread(leaders, nodes); s > 1 {
			t.Fatalf("leader spread %d: %v", s, leaders)
		}
	})
}

func TestPropertyAssignEqualRacksIsBalanced(t *testing.T) {
	// Racks of equal size: rack spread and balance do not conflict.
	rapid.Check(t, func(t *rapid.T) {
		racks := rapid.IntRange(2, 4).Draw(t, "racks")
		perRack := rapid.IntRange(1, 3).Draw(t, "perRack")
		var nodes []Node
		for r := range racks {
			for i := range perRack {
				nodes = append(nodes, Node{ID: fmt.Sprintf("r%dn%d", r, i), Rack: fmt.Sprintf("rack%d", r)})
			}
		}
		rf := rapid.IntRange(1, min(racks, 7)).Draw(t, "rf")
		partitions := rapid.IntRange(1, 40).Draw(t, "partitions")
		got, err := AssignTopic(nodes, Load{}, partitions, rf)
		if err != nil {
			t.Fatal(err)
		}
		dom := domainsOf(nodes)
		for p, r := range got {
			if n := countDistinct(r, func(id string) string { return dom[id] }); n != rf {
				t.Fatalf("partition %d: %v spans %d racks, want %d", p, r, n, rf)
			}
		}
		replicas, leaders := counts(got)
		if s := spread(replicas, nodes); s > 1 {
			t.Fatalf("replica spread %d: %v", s, replicas)
		}
		if s := spread(leaders, nodes); s > 1 {
			t.Fatalf("leader spread %d: %v", s, leaders)
		}
	})
}

func TestPropertyAssignRackSpreadIsMaximal(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 10, true)
		rf := rapid.IntRange(1, min(7, len(nodes))).Draw(t, "rf")
		load := genLoad(t, nodes)
		got, err := AssignTopic(nodes, load, rapid.IntRange(1, 30).Draw(t, "partitions"), rf)
		if err != nil {
			t.Fatal(err)
		}
		dom := domainsOf(nodes)
		domains := countDistinct(func() []string {
			ids := make([]string, len(nodes))
			for i, n := range nodes {
				ids[i] = n.ID
			}
			return ids
		}(), func(id string) string { return dom[id] })
		for p, r := range got {
			if len(r) != rf || !distinct(r) {
				t.Fatalf("partition %d: %v", p, r)
			}
			if n := countDistinct(r, func(id string) string { return dom[id] }); n != min(rf, domains) {
				t.Fatalf("partition %d: %v spans %d domains, want %d", p, r, n, min(rf, domains))
			}
		}
	})
}

func TestPropertyAssignIsDeterministic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 10, true)
		rf := rapid.IntRange(1, len(nodes)).Draw(t, "rf")
		load := genLoad(t, nodes)
		partitions := rapid.IntRange(1, 30).Draw(t, "partitions")
		a, errA := AssignTopic(nodes, load, partitions, rf)
		shuffled := rapid.Permutation(nodes).Draw(t, "shuffled")
		b, errB := AssignTopic(shuffled, load.Clone(), partitions, rf)
		if !reflect.DeepEqual(a, b) || (errA == nil) != (errB == nil) {
			t.Fatalf("same input, different output:\n%v %v\n%v %v", a, errA, b, errB)
		}
	})
}

func TestPropertyAssignFavoursLessLoadedNodes(t *testing.T) {
	// Water-filling: a node that held fewer replicas receives at least as
	// many new ones; equally loaded nodes receive the same ±1.
	rapid.Check(t, func(t *rapid.T) {
		nodes := genNodes(t, 10, false)
		rf := rapid.IntRange(1, min(7, len(nodes))).Draw(t, "rf")
		load := genLoad(t, nodes)
		got, err := AssignTopic(nodes, load, rapid.IntRange(1, 40).Draw(t, "partitions"), rf)
		if err != nil {
			t.Fatal(err)
		}
		added, _ := counts(got)
		for _, x := range nodes {
			for _, y := range nodes {
				rx, ry := load.Replicas[x.ID], load.Replicas[y.ID]
				nx, ny := added[x.ID], added[y.ID]
				if rx < ry && nx < ny {
					t.Fatalf("%s had %d and got %d, %s had %d and got %d", x.ID, rx, nx, y.ID, ry, ny)
				}
				if rx == ry && nx-ny > 1 {
					t.Fatalf("%s and %s both had %d, got %d and %d", x.ID, y.ID, rx, nx, ny)
				}
			}
		}
	})
}

func TestPropertyReplaceKeepsSurvivorsAndAddsLiveNodes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		all := genNodes(t, 10, true)
		rf := rapid.IntRange(1, min(7, len(all))).Draw(t, "rf")
		current := rapid.Permutation(all).Draw(t, "order")[:rf]
		ids := make([]string, rf)
		for i, n := range current {
			ids[i] = n.ID
		}
		var alive []Node
		for i, n := range all {
			if rapid.Bool().Draw(t, fmt.Sprintf("alive%d", i)) {
				alive = append(alive, n)
			}
		}
		live := map[string]bool{}
		for _, n := range alive {
			live[n.ID] = true
		}
		load := genLoad(t, all)
		before := load.Clone()
		got, changed, err := Replace(ids, alive, load)
		if !reflect.DeepEqual(load, before) {
			t.Fatal("Replace modified load")
		}
		if len(got) != len(ids) || !distinct(got) {
			t.Fatalf("got %v from %v", got, ids)
		}
		dead := 0
		for slot, id := range ids {
			if live[id] {
				if got[slot] != id {
					t.Fatalf("survivor %s moved: %v -> %v", id, ids, got)
				}
				continue
			}
			dead++
			if got[slot] != id && (!live[got[slot]] || slices.Contains(ids, got[slot])) {
				t.Fatalf("slot %d: replacement %s is dead or was already a replica: %v -> %v", slot, got[slot], ids, got)
			}
		}
		if changed != (dead > 0 && len(alive) > rf-dead) {
			t.Fatalf("changed=%v with %d dead of %v and %d alive", changed, dead, ids, len(alive))
		}
		var ne *NotEnoughNodesError
		if short := len(alive) < rf; short != errors.As(err, &ne) {
			t.Fatalf("err = %v with %d alive for rf %d", err, len(alive), rf)
		} else if short {
			if *ne != (NotEnoughNodesError{Want: rf, Have: len(alive)}) {
				t.Fatalf("err = %+v", ne)
			}
			// Best partial list: every live node is used.
			for _, n := range alive {
				if !slices.Contains(got, n.ID) {
					t.Fatalf("partial list %v leaves live node %s unused", got, n.ID)
				}
			}
		} else if err != nil {
			t.Fatal(err)
		}
	})
}

func TestPropertyBalanceLeadersIsOptimal(t *testing.T) {
	// Small enough to try every choice of leaders: BalanceLeaders must reach
	// the least sum of squared leader counts, move only within a partition's
	// alive replicas and leave partitions with a dead leader alone.
	rapid.Check(t, func(t *rapid.T) {
		all := genNodes(t, 5, false)
		alive := rapid.SliceOfDistinct(rapid.SampledFrom(all), func(n Node) string { return n.ID }).Draw(t, "alive")
		live := map[string]bool{}
		for _, n := range alive {
			live[n.ID] = true
		}
		var parts []Partition
		for p := range rapid.IntRange(1, 7).Draw(t, "partitions") {
			rf := rapid.IntRange(1, len(all)).Draw(t, fmt.Sprintf("rf%d", p))
			r := rapid.Permutation(all).Draw(t, fmt.Sprintf("p%d", p))[:rf]
			ids := make([]string, rf)
			for i, n := range r {
				ids[i] = n.ID
			}
			parts = append(parts, Partition{Topic: "t", Partition: int32(p), Replicas: ids})
		}
		moves, err := BalanceLeaders(parts, alive)
		if err != nil {
			t.Fatal(err)
		}
		leaderOf := make([]string, len(parts))
		for i, p := range parts {
			leaderOf[i] = p.Replicas[0]
		}
		for _, m := range moves {
			old := parts[m.Partition].Replicas
			if !sameSet(old, m.Replicas) || old[0] == m.Replicas[0] || !live[old[0]] || !live[m.Replicas[0]] {
				t.Fatalf("move %v from %v (alive %v)", m.Replicas, old, live)
			}
			leaderOf[m.Partition] = m.Replicas[0]
		}
		got := sumSquares(leaderOf, live)
		// Brute force over every choice of alive leaders for partitions
		// whose leader is alive.
		best := -1
		choice := make([]string, len(parts))
		var try func(k int)
		try = func(k int) {
			if k == len(parts) {
				if v := sumSquares(choice, live); best < 0 || v < best {
					best = v
				}
				return
			}
			r := parts[k].Replicas
			if !live[r[0]] {
				choice[k] = r[0]
				try(k + 1)
				return
			}
			for _, id := range r {
				if live[id] {
					choice[k] = id
					try(k + 1)
				}
			}
		}
		try(0)
		if got != best {
			t.Fatalf("sum of squares %d, optimum %d; leaders %v", got, best, leaderOf)
		}
	})
}

func sumSquares(leaders []string, live map[string]bool) int {
	n := map[string]int{}
	for _, id := range leaders {
		if live[id] {
			n[id]++
		}
	}
	s := 0
	for _, v := range n {
		s += v * v
	}
	return s
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
