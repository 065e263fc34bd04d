// Package placement decides where partition replicas live.
//
// Every function is pure: no I/O, no clock, no randomness, no dependence on
// map iteration order. The metadata controller runs them on the meta leader
// and proposes the result through Raft, so any leader (or a test) computing
// the same inputs gets the same answer, and a reviewer can reason about the
// output from the inputs alone.
//
// The shared policy, used by every function here:
//
//   - The replicas of one partition are distinct nodes.
//   - They span as many failure domains (racks) as possible, like Kafka's
//     rack-aware assignment. A node without a rack is a failure domain of
//     its own: nothing says it shares a fate with any other node.
//   - Within that constraint, replicas go to the nodes holding the fewest
//     replicas, and preferred leaderships (slot 0 of a replica list) to the
//     nodes leading the fewest partitions. Existing load counts, so a new
//     topic on a busy cluster lands on the idle nodes first.
//   - Remaining ties go to the smaller node id.
package placement

import (
	"fmt"
	"sort"
)

// Node is a live broker that may receive replicas.
type Node struct {
	ID string
	// Rack names the node's failure domain; "" means a domain of its own.
	Rack string
}

// Load is the current number of replicas and preferred leaderships per node
// id, counted over existing topics. Counts for ids that are not among the
// nodes passed alongside are ignored; missing ids count as zero. A zero Load
// (nil maps) is an empty cluster.
type Load struct {
	Replicas map[string]int
	Leaders  map[string]int
}

// Clone returns a deep copy, so a caller can thread load through several
// calls (see Load.Add) without touching the original.
func (l Load) Clone() Load {
	c := Load{Replicas: make(map[string]int, len(l.Replicas)), Leaders: make(map[string]int, len(l.Leaders))}
	for k, v := range l.Replicas {
		c.Replicas[k] = v
	}
	for k, v := range l.Leaders {
		c.Leaders[k] = v
	}
	return c
}

// Add counts one partition with the given replica list (slot 0 is its
// preferred leader); delta -1 uncounts it. Nil maps are allocated. Callers
// that place several topics in a row use it to feed each result into the
// next call.
func (l *Load) Add(replicas []string, delta int) {
	if l.Replicas == nil {
		l.Replicas = make(map[string]int)
	}
	if l.Leaders == nil {
		l.Leaders = make(map[string]int)
	}
	for i, id := range replicas {
		l.Replicas[id] += delta
		if i == 0 {
			l.Leaders[id] += delta
		}
	}
}

// NotEnoughNodesError says a partition needs more distinct nodes than there
// are: Want replicas, Have nodes to put them on.
type NotEnoughNodesError struct {
	Want int
	Have int
}

func (e *NotEnoughNodesError) Error() string {
	return fmt.Sprintf("not enough nodes: want %d distinct replicas, have %d live nodes", e.Want, e.Have)
}

// Partition is one partition's replica list as placement sees it: Topic and
// Partition only identify it in the output.
type Partition struct {
	Topic     string
	Partition int32
	Replicas  []string
}

// Move is a new replica list proposed for one partition.
type Move struct {
	Topic     string
	Partition int32
	Replicas  []string
}

// cluster is the working copy of the nodes and their counters that every
// algorithm here mutates as it places replicas, so that each decision sees
// the ones made before it.
type cluster struct {
	ids      []string // sorted; a node is known by its position in here
	index    map[string]int
	domain   []int // failure domain number per node
	replicas []int
	leaders  []int
	nDomains int
	// domainSize and domainReplicas (per failure domain) let equally loaded
	// nodes be told apart by how loaded their rack is, which keeps racks
	// of equal size evenly filled.
	domainSize     []int
	domainReplicas []int
}

func newCluster(nodes []Node, load Load) (*cluster, error) {
	sorted := make([]Node, len(nodes))
	copy(sorted, nodes)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	c := &cluster{
		ids:      make([]string, len(sorted)),
		index:    make(map[string]int, len(sorted)),
		domain:   make([]int, len(sorted)),
		replicas: make([]int, len(sorted)),
		leaders:  make([]int, len(sorted)),
	}
	domains := make(map[string]int)
	for i, n := range sorted {
		if n.ID == "" {
			return nil, fmt.Errorf("placement: node with an empty id")
		}
		if i > 0 && sorted[i-1].ID == n.ID {
			return nil, fmt.Errorf("placement: node %q listed twice", n.ID)
		}
		c.ids[i] = n.ID
		c.index[n.ID] = i
		key := "node:" + n.ID
		if n.Rack != "" {
			key = "rack:" + n.Rack
		}
		d, ok := domains[key]
		if !ok {
			d = len(domains)
			domains[key] = d
		}
		c.domain[i] = d
		c.replicas[i] = load.Replicas[n.ID]
		c.leaders[i] = load.Leaders[n.ID]
	}
	c.nDomains = len(domains)
	c.domainSize = make([]int, c.nDomains)
	c.domainReplicas = make([]int, c.nDomains)
	for i, d := range c.domain {
		c.domainSize[d]++
		c.domainReplicas[d] += c.replicas[i]
	}
	return c, nil
}

// add counts one new replica on node i, a preferred leadership if leader.
func (c *cluster) add(i int, leader bool) {
	c.replicas[i]++
	c.domainReplicas[c.domain[i]]++
	if leader {
		c.leaders[i]++
	}
}

// domainCmp compares the average replica count of the failure domains of
// nodes i and j: -1 if i's is lower, 1 if higher, 0 if equal.
func (c *cluster) domainCmp(i, j int) int {
	di, dj := c.domain[i], c.domain[j]
	a := c.domainReplicas[di] * c.domainSize[dj]
	b := c.domainReplicas[dj] * c.domainSize[di]
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *cluster) names(set []int) []string {
	out := make([]string, len(set))
	for k, i := range set {
		out[k] = c.ids[i]
	}
	return out
}
