package placement

import (
	"slices"
	"sort"
)

// BalanceLeaders evens out preferred leaderships among the alive nodes by
// reordering replica lists: it never adds or removes a replica, it swaps a
// follower into slot 0. Only partitions whose preferred leader is alive
// take part, and only alive followers can take over: a dead node keeps its
// preferred leaderships so that it leads them again when it returns (until
// Heal replaces it), as with Kafka's preferred-leader election.
//
// The result is optimal for the given replica sets: no other choice of
// leaders (among alive replicas) has a smaller spread or a smaller sum of
// squared leader counts. parts should hold every partition of the cluster,
// since leader counts are taken from it. The returned moves, one per
// partition whose preferred leader changed, sorted by topic and partition,
// carry the new order; the caller then asks each partition's Raft leader to
// hand leadership to the new slot 0 once it has caught up.
func BalanceLeaders(parts []Partition, alive []Node) ([]Move, error) {
	c, err := newCluster(alive, Load{})
	if err != nil {
		return nil, err
	}
	order := make([]Partition, len(parts))
	copy(order, parts)
	sort.SliceStable(order, func(a, b int) bool {
		if order[a].Topic != order[b].Topic {
			return order[a].Topic < order[b].Topic
		}
		return order[a].Partition < order[b].Partition
	})
	// sets mirrors the lists of movable partitions as node positions, -1
	// for a replica that is not alive; which[k] is its place in order.
	var sets [][]int
	var which []int
	for k, p := range order {
		if len(p.Replicas) == 0 {
			continue
		}
		lead, ok := c.index[p.Replicas[0]]
		if !ok {
			continue
		}
		if len(p.Replicas) == 1 {
			c.leaders[lead]++ // counts, but cannot move
			continue
		}
		set := make([]int, len(p.Replicas))
		for s, id := range p.Replicas {
			i, ok := c.index[id]
			if !ok {
				i = -1
			}
			set[s] = i
		}
		c.leaders[set[0]]++
		sets = append(sets, set)
		which = append(which, k)
	}
	c.balanceLeaders(sets)
	var moves []Move
	for n, set := range sets {
		p := order[which[n]]
		if c.ids[set[0]] == p.Replicas[0] {
			continue
		}
		// Swap the new leader into slot 0; the others keep their slots.
		r := slices.Clone(p.Replicas)
		s := slices.Index(r, c.ids[set[0]])
		r[0], r[s] = r[s], r[0]
		moves = append(moves, Move{Topic: p.Topic, Partition: p.Partition, Replicas: r})
	}
	return moves, nil
}

// balanceLeaders moves preferred leaderships within sets (slot 0 is the
// leader, -1 marks a replica that cannot lead) until the leader counts in
// c.leaders, which must already count sets, are optimal.
//
// Choosing one leader per partition among its replicas is a semi-matching
// of partitions to nodes. Harvey, Ladner, Lovász and Tamir ("Semi-matchings
// for bipartite graphs and load balancing", 2006) show that a semi-matching
// minimises every convex cost of the loads (so the spread and the sum of
// squares) exactly when it admits no cost-reducing path: a chain
// u → p1 → v1 → p2 → … → w in which u leads p1, v1 is a replica of p1 and
// leads p2, and so on, ending at a node w leading at least two fewer than
// u. Shifting every leadership one step along it lowers u by one, raises w
// by one and leaves the nodes between unchanged. Counts that do not come
// from sets (the existing load) are constants and do not change the
// argument. Single swaps alone can get stuck: u may share no partition
// with the node that has too few.
func (c *cluster) balanceLeaders(sets [][]int) {
	if len(sets) == 0 {
		return
	}
	ledBy := make([][]int, len(c.ids)) // set positions, ascending
	for k, set := range sets {
		ledBy[set[0]] = append(ledBy[set[0]], k)
	}
	byCount := make([]int, len(c.ids))
	for i := range byCount {
		byCount[i] = i
	}
	b := &bfs{visited: make([]bool, len(c.ids)), from: make([]int, len(c.ids)), via: make([]int, len(c.ids))}
	for {
		// Most loaded first, so large imbalances are fixed by the first paths.
		sort.SliceStable(byCount, func(x, y int) bool { return c.leaders[byCount[x]] > c.leaders[byCount[y]] })
		low := slices.Min(c.leaders)
		improved := false
		for _, u := range byCount {
			if c.leaders[u]-low < 2 {
				break
			}
			if c.shiftFrom(u, sets, ledBy, b) {
				improved = true
				break
			}
		}
		if !improved {
			return
		}
	}
}

// bfs is the reusable scratch space of shiftFrom.
type bfs struct {
	visited []bool
	from    []int // node that led via[v] when v was reached
	via     []int // set position through which v was reached
	queue   []int
}

// shiftFrom looks for a cost-reducing path starting at u, breadth first so
// that the shortest is taken, and applies it. It reports whether it did.
func (c *cluster) shiftFrom(u int, sets [][]int, ledBy [][]int, b *bfs) bool {
	clear(b.visited)
	b.queue = append(b.queue[:0], u)
	b.visited[u] = true
	best := -1
search:
	for head := 0; head < len(b.queue); head++ {
		x := b.queue[head]
		for _, k := range ledBy[x] {
			for _, v := range sets[k][1:] {
				if v < 0 || b.visited[v] {
					continue
				}
				b.visited[v] = true
				b.from[v], b.via[v] = x, k
				b.queue = append(b.queue, v)
				// Any node two below u ends a cost-reducing path; the
				// first found is on a shortest one.
				if c.leaders[v] <= c.leaders[u]-2 {
					best = v
					break search
				}
			}
		}
	}
	if best < 0 {
		return false
	}
	for v := best; v != u; v = b.from[v] {
		k, x := b.via[v], b.from[v]
		set := sets[k]
		s := slices.Index(set, v)
		set[0], set[s] = set[s], set[0]
		ledBy[x] = slices.DeleteFunc(ledBy[x], func(n int) bool { return n == k })
		at, _ := slices.BinarySearch(ledBy[v], k)
		ledBy[v] = slices.Insert(ledBy[v], at, k)
	}
	c.leaders[u]--
	c.leaders[best]++
	return true
}
