package placement

import (
	"fmt"
	"sort"
)

// AssignTopic places a new topic: it returns one replica list per partition,
// replicas[i][0] being partition i's preferred leader.
//
// Partitions are placed one after the other, each seeing the counters left
// by the ones before (and by load), which is water-filling:
//
//   - Replicas go to failure domains the partition does not use yet first,
//     so a partition spans min(replicationFactor, racks) racks. When racks
//     are uneven this wins over balance (a lone rack gets a replica of every
//     partition), as in Kafka.
//   - Within that, to the nodes holding the fewest replicas, then to nodes
//     of the least loaded rack. Without racks every partition's replicas are
//     thus among the replicationFactor least-loaded nodes: on an empty
//     cluster each node ends up with the same count ±1 (racks of equal size
//     too), and a node that held fewer replicas than another before the call
//     receives at least as many new ones.
//   - The first replica picked, the preferred leader, is the node leading
//     the fewest partitions among those least-loaded candidates; followers
//     prefer nodes that already lead more, keeping leader-poor nodes cheap
//     enough in replicas to stay candidates. A final pass then makes the
//     leader counts optimal for the chosen replica sets (see BalanceLeaders):
//     on an empty cluster every node leads the same number ±1 (3 nodes, 12
//     partitions: 4 each).
//
// Load-awareness has a visible consequence: a topic created right after an
// empty node joined puts a replica, and leadership, of each partition on
// that node until it has caught up with the others' counts.
//
// It fails with *NotEnoughNodesError when replicationFactor exceeds the
// number of nodes, and with a plain error for non-positive arguments or
// duplicate or empty node ids.
func AssignTopic(nodes []Node, load Load, partitions, replicationFactor int) ([][]string, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("placement: partitions %d: must be at least 1", partitions)
	}
	if replicationFactor < 1 {
		return nil, fmt.Errorf("placement: replication factor %d: must be at least 1", replicationFactor)
	}
	c, err := newCluster(nodes, load)
	if err != nil {
		return nil, err
	}
	if replicationFactor > len(c.ids) {
		return nil, &NotEnoughNodesError{Want: replicationFactor, Have: len(c.ids)}
	}
	scratch := make([]int, len(c.ids))
	inSet := make([]bool, len(c.ids))
	usedDomain := make([]bool, c.nDomains)
	sets := make([][]int, partitions)
	for p := range sets {
		set := c.pickSet(replicationFactor, scratch, inSet, usedDomain)
		for k, i := range set {
			c.add(i, k == 0)
			inSet[i] = false
			usedDomain[c.domain[i]] = false
		}
		sets[p] = set
	}
	// The greedy leader choice above is usually even already; this makes
	// it optimal for the replica sets chosen (see balanceLeaders).
	c.balanceLeaders(sets)
	out := make([][]string, partitions)
	for p, set := range sets {
		out[p] = c.names(set)
	}
	return out, nil
}

// pickSet chooses one partition's replicas, leader first. inSet and
// usedDomain must be all false on entry; they are left marked for the
// chosen nodes.
func (c *cluster) pickSet(rf int, scratch []int, inSet, usedDomain []bool) []int {
	// t is the replica count of the rf-th least-loaded node: only nodes at
	// or below it can be in a least-loaded replica set.
	copy(scratch, c.replicas)
	sort.Ints(scratch)
	t := scratch[rf-1]

	leader := -1
	for i := range c.ids {
		if c.replicas[i] > t {
			continue
		}
		if leader < 0 || c.leaders[i] < c.leaders[leader] ||
			(c.leaders[i] == c.leaders[leader] && c.replicas[i] < c.replicas[leader]) {
			leader = i
		}
	}
	set := make([]int, 0, rf)
	set = append(set, leader)
	inSet[leader] = true
	usedDomain[c.domain[leader]] = true
	for len(set) < rf {
		best := -1
		for i := range c.ids {
			if inSet[i] {
				continue
			}
			if best < 0 || c.followerLess(i, best, usedDomain) {
				best = i
			}
		}
		set = append(set, best)
		inSet[best] = true
		usedDomain[c.domain[best]] = true
	}
	return set
}

// followerLess orders follower candidates: unused failure domain first,
// then fewer replicas, then a less loaded rack, then more leaderships (see AssignTopic), then id
// (the index order, since ids are sorted and i != j).
func (c *cluster) followerLess(i, j int, usedDomain []bool) bool {
	if ui, uj := usedDomain[c.domain[i]], usedDomain[c.domain[j]]; ui != uj {
		return !ui
	}
	if c.replicas[i] != c.replicas[j] {
		return c.replicas[i] < c.replicas[j]
	}
	if d := c.domainCmp(i, j); d != 0 {
		return d < 0
	}
	if c.leaders[i] != c.leaders[j] {
		return c.leaders[i] > c.leaders[j]
	}
	return i < j
}
