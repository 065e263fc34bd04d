package placement

import (
	"slices"
	"sort"
)

// Rebalance computes the moves that even out replicas and then preferred
// leaders over nodes (the live nodes that may hold replicas), for a
// cluster whose partitions are parts. It is what `skiff cluster
// rebalance` applies, and what the controller runs when a node joins.
//
// Replicas: each step moves one replica from the most loaded node to the
// least loaded node that is at least two replicas lighter, choosing the
// first partition (by topic, then partition) that the lighter node does
// not hold and whose failure-domain spread the move does not reduce; a
// follower slot is preferred to the leader slot, so leadership moves only
// where it must. Every step lowers the sum of squared loads, so it ends,
// and without racks it ends with replica counts within one of each other
// (a node with more replicas than another always holds a partition the
// other lacks). Leaders: then, within the new replica sets, the preferred
// leader (first replica) is chosen as AssignTopic does, moving as few as
// needed.
//
// Partitions with a replica on a node outside nodes (dead, or being
// decommissioned) are left alone: healing them is Heal's job. The moves
// name only partitions whose replica list changes (members or order).
// Deterministic: the same input gives the same moves.
func Rebalance(parts []Partition, nodes []Node) ([]Move, error) {
	c, err := newCluster(nodes, Load{})
	if err != nil {
		return nil, err
	}
	order := slices.Clone(parts)
	sort.SliceStable(order, func(a, b int) bool {
		if order[a].Topic != order[b].Topic {
			return order[a].Topic < order[b].Topic
		}
		return order[a].Partition < order[b].Partition
	})
	var (
		sets  [][]int
		which []int // position in order of each set
	)
	for k, p := range order {
		set := make([]int, 0, len(p.Replicas))
		movable := len(p.Replicas) > 0
		for _, id := range p.Replicas {
			i, ok := c.index[id]
			if !ok {
				movable = false
				continue
			}
			set = append(set, i)
		}
		for _, i := range set {
			c.replicas[i]++
			c.domainReplicas[c.domain[i]]++
		}
		if movable {
			sets = append(sets, set)
			which = append(which, k)
		}
	}
	for c.moveOneReplica(sets) {
	}
	clear(c.leaders)
	var multi [][]int
	for _, set := range sets {
		c.leaders[set[0]]++
		if len(set) > 1 {
			multi = append(multi, set)
		}
	}
	c.balanceLeaders(multi)
	var moves []Move
	for n, set := range sets {
		p := order[which[n]]
		names := c.names(set)
		if !slices.Equal(names, p.Replicas) {
			moves = append(moves, Move{Topic: p.Topic, Partition: p.Partition, Replicas: names})
		}
	}
	return moves, nil
}

// moveOneReplica makes one replica move (see Rebalance) and reports
// whether it found one.
func (c *cluster) moveOneReplica(sets [][]int) bool {
	byLoad := make([]int, len(c.ids))
	for i := range byLoad {
		byLoad[i] = i
	}
	sort.SliceStable(byLoad, func(a, b int) bool { return c.replicas[byLoad[a]] < c.replicas[byLoad[b]] })
	for x := len(byLoad) - 1; x >= 0; x-- {
		u := byLoad[x]
		for _, v := range byLoad {
			if c.replicas[u]-c.replicas[v] < 2 {
				break
			}
			for _, leaderSlot := range []bool{false, true} {
				for _, set := range sets {
					s := slices.Index(set, u)
					if s < 0 || (s == 0) != leaderSlot || slices.Contains(set, v) || !c.keepsSpread(set, s, v) {
						continue
					}
					set[s] = v
					c.replicas[u]--
					c.replicas[v]++
					c.domainReplicas[c.domain[u]]--
					c.domainReplicas[c.domain[v]]++
					return true
				}
			}
		}
	}
	return false
}

// keepsSpread reports whether putting node v in slot s of set leaves the
// set on at least as many failure domains as before.
func (c *cluster) keepsSpread(set []int, s, v int) bool {
	before, after := map[int]bool{}, map[int]bool{}
	for k, i := range set {
		before[c.domain[i]] = true
		if k == s {
			after[c.domain[v]] = true
		} else {
			after[c.domain[i]] = true
		}
	}
	return len(after) >= len(before)
}
