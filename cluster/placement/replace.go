package placement

// Replace heals one partition: every replica that is not a live node (or
// appears twice) is replaced by a live node not yet in the list, and every
// surviving replica keeps its slot, so a live preferred leader stays
// preferred.
//
// A replacement goes to a failure domain the list does not use yet if it
// can, then to the node with the fewest replicas; one that lands in slot 0
// becomes preferred leader, so there fewer leaderships come before fewer
// replicas. Ties go to the smaller id. load is not modified; to heal many
// partitions at once use Heal, which threads the load through.
//
// changed is false when every replica is alive (replicas is then current,
// copied). When there are fewer live nodes than len(current), err is a
// *NotEnoughNodesError and replicas is the best partial list: every
// replacement that was possible is made and the remaining dead replicas stay
// in their slots, so the list keeps its replication factor and the dead
// nodes may still come back. Whether to apply a partial list (it restores
// redundancy sooner) or to wait for more nodes is the caller's decision.
func Replace(current []string, alive []Node, load Load) (replicas []string, changed bool, err error) {
	c, err := newCluster(alive, load)
	if err != nil {
		return nil, false, err
	}
	replicas, changed, short := c.replace(current)
	if short {
		return replicas, changed, &NotEnoughNodesError{Want: len(current), Have: len(c.ids)}
	}
	return replicas, changed, nil
}

// replace is Replace on the working counters, which it updates; short
// reports that some dead replica could not be replaced.
func (c *cluster) replace(current []string) (out []string, changed, short bool) {
	out = make([]string, len(current))
	copy(out, current)
	inList := make([]bool, len(c.ids))
	usedDomain := make([]bool, c.nDomains)
	var dead []int // slots to refill
	for slot, id := range current {
		i, ok := c.index[id]
		if !ok || inList[i] {
			dead = append(dead, slot)
			continue
		}
		inList[i] = true
		usedDomain[c.domain[i]] = true
	}
	for _, slot := range dead {
		best := -1
		for i := range c.ids {
			if inList[i] {
				continue
			}
			if best < 0 || c.replacementLess(i, best, slot == 0, usedDomain) {
				best = i
			}
		}
		if best < 0 {
			short = true
			continue
		}
		out[slot] = c.ids[best]
		inList[best] = true
		usedDomain[c.domain[best]] = true
		c.add(best, slot == 0)
		changed = true
	}
	return out, changed, short
}

func (c *cluster) replacementLess(i, j int, leader bool, usedDomain []bool) bool {
	if ui, uj := usedDomain[c.domain[i]], usedDomain[c.domain[j]]; ui != uj {
		return !ui
	}
	if leader && c.leaders[i] != c.leaders[j] {
		return c.leaders[i] < c.leaders[j]
	}
	if c.replicas[i] != c.replicas[j] {
		return c.replicas[i] < c.replicas[j]
	}
	if d := c.domainCmp(i, j); d != 0 {
		return d < 0
	}
	if c.leaders[i] != c.leaders[j] {
		return c.leaders[i] < c.leaders[j]
	}
	return i < j
}

// Heal runs Replace over many partitions (say, every partition of a node
// that died), in the order given, counting each replacement into the load
// the next one sees, so that the dead node's replicas spread over the live
// nodes instead of all landing on the least loaded one. Because a healed
// partition no longer counts against the dead node and does count against
// its new replica, pass the load of the whole cluster as it is now.
//
// It returns a Move for every partition whose list changed, including
// partial ones, and, if any partition could not be fully healed, a
// *NotEnoughNodesError for the largest shortfall (Want is that partition's
// replication factor). load is not modified.
func Heal(parts []Partition, alive []Node, load Load) ([]Move, error) {
	c, err := newCluster(alive, load)
	if err != nil {
		return nil, err
	}
	var moves []Move
	var worst *NotEnoughNodesError
	for _, p := range parts {
		replicas, changed, short := c.replace(p.Replicas)
		if short && (worst == nil || len(p.Replicas) > worst.Want) {
			worst = &NotEnoughNodesError{Want: len(p.Replicas), Have: len(c.ids)}
		}
		if changed {
			moves = append(moves, Move{Topic: p.Topic, Partition: p.Partition, Replicas: replicas})
		}
	}
	if worst != nil {
		return moves, worst
	}
	return moves, nil
}
