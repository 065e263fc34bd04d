package placement

import (
	"fmt"
	"slices"
	"sort"
)

// Helpers shared by the tests of this package.

func nodesN(n int) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{ID: fmt.Sprintf("n%02d", i)}
	}
	return out
}

// counts tallies replicas and preferred leaderships per node id.
func counts(assign [][]string) (replicas, leaders map[string]int) {
	replicas, leaders = map[string]int{}, map[string]int{}
	for _, r := range assign {
		for k, id := range r {
			replicas[id]++
			if k == 0 {
				leaders[id]++
			}
		}
	}
	return replicas, leaders
}

// spread is max-min of m over the given nodes (absent ids count 0).
func spread(m map[string]int, nodes []Node) int {
	lo, hi := int(^uint(0)>>1), -1
	for _, n := range nodes {
		v := m[n.ID]
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi - lo
}

func distinct(ids []string) bool {
	s := slices.Clone(ids)
	sort.Strings(s)
	return len(slices.Compact(s)) == len(ids)
}

func domainOf(n Node) string {
	if n.Rack == "" {
		return "node:" + n.ID
	}
	return "rack:" + n.Rack
}

func domainsOf(nodes []Node) map[string]string {
	m := map[string]string{}
	for _, n := range nodes {
		m[n.ID] = domainOf(n)
	}
	return m
}

func countDistinct(ids []string, f func(string) string) int {
	seen := map[string]bool{}
	for _, id := range ids {
		seen[f(id)] = true
	}
	return len(seen)
}
