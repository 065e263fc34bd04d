package consumergroup

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// AssignMember is one group member as the assignor sees it.
type AssignMember struct {
	ID      string
	Topics  []string         // subscribed topic names (already resolved from any pattern)
	Current []TopicPartition // the member's previous target assignment (stickiness)
}

// Assign computes the target assignment: every partition of every topic in
// topics (name -> partition count) that at least one member subscribes to is
// given to exactly one subscribed member.
//
// Balanced: no member holds two or more partitions more than another member
// it could hand one of them to, directly or through a chain of members
// swapping partitions. Such an assignment minimises the spread of the counts
// (Harvey et al., "Semi-matchings for bipartite graphs and load balancing",
// 2006), so the counts differ by at most one whenever the subscriptions allow
// it, and always when all members subscribe to the same topics. A member
// subscribed to nothing, or only to topics that do not exist, gets nothing.
//
// Sticky: a partition stays with its current member unless balance requires
// moving it, so a membership change moves as few partitions as possible: a
// member joining a balanced group only takes partitions, and a member
// leaving only gives its own away. Current entries for topics that are gone
// or no longer subscribed, for partitions out of range, and for partitions
// already claimed by a member with a smaller ID are ignored.
//
// Deterministic: the result depends on the input's content, not on the order
// of members, topics or Current entries. Entries with the same ID are merged
// into one member. The result maps every member ID to its partitions sorted
// by (topic, partition), an empty slice for a member with none.
//
// The cost is O(P log M) for P partitions and M members subscribed to the
// same topics; heterogeneous subscriptions add a search over the groups of
// members sharing a subscription for every chain of moves.
func Assign(members []AssignMember, topics map[string]int32) map[string][]TopicPartition {
	s := newAssignState(members, topics)
	s.claimCurrent(members)
	s.placeUnowned()
	for c := range s.classes {
		s.balanceClass(c)
	}
	s.balanceAcrossClasses()
	return s.result()
}

// assignState is one run of Assign. Members, topics and subscription
// classes are named by their index; member and topic indexes follow the
// sorted order of IDs and names, which is what makes ties deterministic.
type assignState struct {
	ids        []string            // member index -> ID, ascending
	class      []int               // member index -> subscription class
	load       []int               // member index -> partitions owned
	owned      []map[int32][]int32 // member index -> topic index -> partitions; the last is handed on first
	topics     []string            // topic index -> name, ascending; subscribed topics only
	topicIndex map[string]int32
	counts     []int32 // topic index -> partition count
	subs       [][]int // topic index -> subscribing classes, ascending
	nsubs      []int   // topic index -> subscribing members
	offset     []int   // topic index -> index of its partition 0 in kept
	kept       []bool  // partition -> kept from a Current entry

	classes []subscriptionClass
}

// subscriptionClass is the set of members with the same subscription. Its
// members can take each other's partitions, so within a class balancing is
// plain counting; only moves between classes need a path search.
type subscriptionClass struct {
	topics  []int32 // subscribed topic indexes, ascending
	owned   []int   // aligned with topics: partitions the class's members own
	members []int   // member indexes, ascending
}

func newAssignState(members []AssignMember, topicCounts map[string]int32) *assignState {
	s := &assignState{}

	// Resolve each distinct subscription once. Members of a group mostly
	// subscribe to the same topics, listed in the same (sorted) order, so
	// comparing with the previous member's list saves 10^7 map lookups for
	// 1000 members reading 10000 topics.
	var (
		classOf   = map[string]int{} // subscription key -> class
		names     [][]string         // class -> sorted topic names
		memberOf  = map[string]int{} // member ID -> class
		prevIn    []string
		prevClass = -1
	)
	classFor := func(subs []string) int {
		var key strings.Builder
		for _, t := range subs {
			key.WriteString(strconv.Itoa(len(t)))
			key.WriteByte(':')
			key.WriteString(t)
		}
		c, ok := classOf[key.String()]
		if !ok {
			c = len(names)
			classOf[key.String()] = c
			names = append(names, subs)
		}
		return c
	}
	for _, m := range members {
		c := prevClass
		if c < 0 || !slices.Equal(m.Topics, prevIn) {
			var subs []string
			for _, t := range m.Topics {
				if topicCounts[t] > 0 {
					subs = append(subs, t)
				}
			}
			slices.Sort(subs)
			c = classFor(slices.Compact(subs))
			prevIn, prevClass = m.Topics, c
		}
		if old, dup := memberOf[m.ID]; dup && old != c {
			// Entries with one ID are one member subscribed to the union.
			subs := slices.Concat(names[old], names[c])
			slices.Sort(subs)
			c = classFor(slices.Compact(subs))
		} else if !dup {
			s.ids = append(s.ids, m.ID)
		}
		memberOf[m.ID] = c
	}
	slices.Sort(s.ids)

	// Topics that someone subscribes to and that have partitions.
	s.topicIndex = map[string]int32{}
	for _, ns := range names {
		for _, t := range ns {
			s.topicIndex[t] = 0
		}
	}
	s.topics = slices.Sorted(maps.Keys(s.topicIndex))
	s.counts = make([]int32, len(s.topics))
	for i, t := range s.topics {
		s.topicIndex[t] = int32(i)
		s.counts[i] = topicCounts[t]
	}

	// Classes renumbered in the order of their first member by ID, so that
	// nothing depends on the order of the input; merges may have left some
	// without members.
	renumber := make([]int, len(names))
	for i := range renumber {
		renumber[i] = -1
	}
	s.class = make([]int, len(s.ids))
	for u, id := range s.ids {
		old := memberOf[id]
		if renumber[old] < 0 {
			renumber[old] = len(s.classes)
			ts := make([]int32, len(names[old]))
			for i, t := range names[old] {
				ts[i] = s.topicIndex[t] // ascending, as names are sorted
			}
			s.classes = append(s.classes, subscriptionClass{topics: ts, owned: make([]int, len(ts))})
		}
		c := renumber[old]
		s.class[u] = c
		s.classes[c].members = append(s.classes[c].members, u)
	}
	s.subs = make([][]int, len(s.topics))
	s.nsubs = make([]int, len(s.topics))
	for c, cl := range s.classes {
		for _, t := range cl.topics {
			s.subs[t] = append(s.subs[t], c)
			s.nsubs[t] += len(cl.members)
		}
	}
	s.load = make([]int, len(s.ids))
	s.owned = make([]map[int32][]int32, len(s.ids))
	return s
}

// topicPos returns the position of topic t in class c's topics, or -1.
func (s *assignState) topicPos(c int, t int32) int {
	i, ok := slices.BinarySearch(s.classes[c].topics, t)
	if !ok {
		return -1
	}
	return i
}

// give records partition p of topic t as owned by member u.
func (s *assignState) give(u int, t, p int32) {
	if s.owned[u] == nil {
		s.owned[u] = map[int32][]int32{}
	}
	s.owned[u][t] = append(s.owned[u][t], p)
	s.load[u]++
	s.classes[s.class[u]].owned[s.topicPos(s.class[u], t)]++
}

// move hands one partition of topic t from member from to member to.
func (s *assignState) move(from, to int, t int32) {
	ps := s.owned[from][t]
	p := ps[len(ps)-1]
	if len(ps) == 1 {
		delete(s.owned[from], t)
	} else {
		s.owned[from][t] = ps[:len(ps)-1]
	}
	s.load[from]--
	s.classes[s.class[from]].owned[s.topicPos(s.class[from], t)]--
	s.give(to, t, p)
}

// claimCurrent keeps every valid entry of the members' previous
// assignments, the first claim in member ID order winning a partition.
func (s *assignState) claimCurrent(members []AssignMember) {
	index := make(map[string]int, len(s.ids))
	for u, id := range s.ids {
		index[id] = u
	}
	// Entries of one member ID, wherever they were in the input.
	current := make([][]TopicPartition, len(s.ids))
	for _, m := range members {
		u := index[m.ID]
		current[u] = append(current[u], m.Current...)
	}
	s.offset = make([]int, len(s.topics)+1)
	for i, n := range s.counts {
		s.offset[i+1] = s.offset[i] + int(n)
	}
	s.kept = make([]bool, s.offset[len(s.topics)])
	for u := range s.ids {
		for _, tp := range current[u] {
			t, ok := s.topicIndex[tp.Topic]
			if !ok || tp.Partition < 0 || tp.Partition >= s.counts[t] || s.topicPos(s.class[u], t) < 0 {
				continue
			}
			if g := s.offset[t] + int(tp.Partition); !s.kept[g] {
				s.kept[g] = true
				s.give(u, t, tp.Partition)
			}
		}
		// Current's order must not decide which partitions move later.
		for _, ps := range s.owned[u] {
			slices.Sort(ps)
		}
	}
}

// placeUnowned gives each partition nobody kept to the least loaded member
// that subscribes to it (ties: smallest ID). Topics with the fewest
// subscribers go first, as they have the fewest places to go; placing them
// last would leave their few subscribers overloaded and force moves later.
func (s *assignState) placeUnowned() {
	order := make([]int32, len(s.topics))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int {
		return cmp.Or(cmp.Compare(s.nsubs[a], s.nsubs[b]), cmp.Compare(a, b))
	})
	less := func(a, b int) bool {
		return s.load[a] < s.load[b] || s.load[a] == s.load[b] && a < b
	}
	// One min-heap of members per class, built on first use.
	heaps := make([][]int, len(s.classes))
	for _, t := range order {
		for p := range s.counts[t] {
			if s.kept[s.offset[t]+int(p)] {
				continue
			}
			best := -1
			for _, c := range s.subs[t] {
				if heaps[c] == nil {
					heaps[c] = slices.Clone(s.classes[c].members)
					heapInit(heaps[c], less)
				}
				if best < 0 || less(heaps[c][0], heaps[best][0]) {
					best = c
				}
			}
			s.give(heaps[best][0], t, p)
			heapDown(heaps[best], 0, less)
		}
	}
}

// busiestTopic is the topic of which member u owns the most partitions
// (ties: smallest index); handing those away first spreads each topic over
// many members.
func (s *assignState) busiestTopic(u int) int32 {
	best, n := int32(-1), 0
	for t, ps := range s.owned[u] {
		if len(ps) > n || len(ps) == n && t < best {
			best, n = t, len(ps)
		}
	}
	return best
}

// balanceClass evens out the loads inside class c to within one, moving as
// few partitions as possible: the members that own the most keep the extra
// partition when the total does not divide evenly.
func (s *assignState) balanceClass(c int) {
	ms := slices.Clone(s.classes[c].members)
	total := 0
	for _, u := range ms {
		total += s.load[u]
	}
	if total == 0 {
		return
	}
	slices.SortFunc(ms, func(a, b int) int {
		return cmp.Or(cmp.Compare(s.load[b], s.load[a]), cmp.Compare(a, b))
	})
	q, r := total/len(ms), total%len(ms)
	target := func(i int) int {
		if i < r {
			return q + 1
		}
		return q
	}
	// ms is sorted by load descending, so the givers (above target) come
	// first, and walking the takers from the back meets them in the middle.
	g := 0
	for i := len(ms) - 1; i >= 0; i-- {
		for s.load[ms[i]] < target(i) {
			for s.load[ms[g]] <= target(g) {
				g++
			}
			s.move(ms[g], ms[i], s.busiestTopic(ms[g]))
		}
	}
}

// classLoads returns the smallest and largest load in class c.
func (s *assignState) classLoads(c int) (lo, hi int) {
	lo, hi = s.load[s.classes[c].members[0]], 0
	for _, u := range s.classes[c].members {
		lo, hi = min(lo, s.load[u]), max(hi, s.load[u])
	}
	return lo, hi
}

// balanceAcrossClasses moves partitions between classes along chains
// (a member of class A gives a partition of a topic class B subscribes to,
// a member of B gives one to C, ...) until no chain leads from a member to
// one owning at least two fewer. With no such chain the assignment is
// optimal (Harvey et al.). Each move along a chain lowers the sum of
// squared loads, so the loop ends.
func (s *assignState) balanceAcrossClasses() {
	if len(s.classes) < 2 {
		return
	}
	for {
		path := s.findChain()
		if path == nil {
			return
		}
		// A chain usually carries many partitions: reuse it while it
		// still improves the balance.
		for s.shift(path) {
		}
	}
}

// findChain searches, from the classes holding the most loaded members
// downwards, for the shortest chain to a class with a member at least two
// below the source's load. It returns the classes along the chain, each
// with the topic it passes on (the last one's topic is unused), or nil.
func (s *assignState) findChain() [][2]int {
	lo, hi := make([]int, len(s.classes)), make([]int, len(s.classes))
	order := make([]int, 0, len(s.classes))
	for c := range s.classes {
		lo[c], hi[c] = s.classLoads(c)
		if len(s.classes[c].topics) > 0 {
			order = append(order, c)
		}
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Or(cmp.Compare(hi[y], hi[x]), cmp.Compare(x, y)) })

	parent := make([][2]int, len(s.classes)) // class -> (previous class, topic received)
	visited := make([]bool, len(s.classes))
	expanded := make([]bool, len(s.topics))
	// Classes reached from a more loaded level only reach classes at most
	// one below that level, so they cannot help a lower level either: the
	// visited sets carry over from level to level, and the whole search
	// costs one pass over the classes' topics.
	var queue []int
	for i := 0; i < len(order); {
		level := hi[order[i]]
		if level < 2 {
			return nil
		}
		for ; i < len(order) && hi[order[i]] == level; i++ {
			if c := order[i]; !visited[c] {
				visited[c] = true
				parent[c] = [2]int{-1, -1}
				queue = append(queue, c)
			}
		}
		for len(queue) > 0 {
			c := queue[0]
			queue = queue[1:]
			cl := &s.classes[c]
			for k, t := range cl.topics {
				if cl.owned[k] == 0 || expanded[t] {
					continue
				}
				expanded[t] = true
				for _, d := range s.subs[t] {
					if visited[d] {
						continue
					}
					visited[d] = true
					parent[d] = [2]int{c, int(t)}
					if lo[d] <= level-2 {
						var path [][2]int
						for x, topic := d, -1; x >= 0; x, topic = parent[x][0], parent[x][1] {
							path = append(path, [2]int{x, topic})
						}
						slices.Reverse(path)
						return path
					}
					queue = append(queue, d)
				}
			}
		}
	}
	return nil
}

// shift moves one partition along path, from the first class's busiest
// member to the last class's least loaded one, if they still differ by two
// or more and every hop still owns a partition to pass on. It reports
// whether it moved.
func (s *assignState) shift(path [][2]int) bool {
	first, last := path[0][0], path[len(path)-1][0]
	_, hi := s.classLoads(first)
	lo, _ := s.classLoads(last)
	if hi < lo+2 {
		return false
	}
	for _, st := range path[:len(path)-1] {
		if s.classes[st[0]].owned[s.topicPos(st[0], int32(st[1]))] == 0 {
			return false
		}
	}
	// Each hop's giver: in the first class the most loaded member owning
	// the topic; in the middle any member owning its topic, which also
	// receives, so its load stays.
	givers := make([]int, len(path)-1)
	for i, st := range path[:len(path)-1] {
		t, g := int32(st[1]), -1
		for _, u := range s.classes[st[0]].members {
			if len(s.owned[u][t]) > 0 && (g < 0 || i == 0 && s.load[u] > s.load[g]) {
				g = u
			}
		}
		givers[i] = g
	}
	taker := -1
	for _, u := range s.classes[last].members {
		if taker < 0 || s.load[u] < s.load[taker] {
			taker = u
		}
	}
	// Back to front, so no giver hands on the partition it just got.
	for i := len(givers) - 1; i >= 0; i-- {
		to := taker
		if i+1 < len(givers) {
			to = givers[i+1]
		}
		s.move(givers[i], to, int32(path[i][1]))
	}
	// The first giver may have been one below its class's busiest member;
	// restore the class's balance with one move inside it.
	if g := givers[0]; s.load[g] < hi-1 {
		busiest := -1
		for _, u := range s.classes[first].members {
			if busiest < 0 || s.load[u] > s.load[busiest] {
				busiest = u
			}
		}
		s.move(busiest, g, s.busiestTopic(busiest))
	}
	return true
}

func (s *assignState) result() map[string][]TopicPartition {
	out := make(map[string][]TopicPartition, len(s.ids))
	for u, id := range s.ids {
		tps := make([]TopicPartition, 0, s.load[u])
		for t, ps := range s.owned[u] {
			for _, p := range ps {
				tps = append(tps, TopicPartition{Topic: s.topics[t], Partition: p})
			}
		}
		slices.SortFunc(tps, func(a, b TopicPartition) int {
			return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		out[id] = tps
	}
	return out
}

// heapInit orders h as a binary min-heap under less.
func heapInit(h []int, less func(a, b int) bool) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		heapDown(h, i, less)
	}
}

// heapDown restores the heap below index i after h[i] grew.
func heapDown(h []int, i int, less func(a, b int) bool) {
	for {
		m := i
		if l := 2*i + 1; l < len(h) && less(h[l], h[m]) {
			m = l
		}
		if r := 2*i + 2; r < len(h) && less(h[r], h[m]) {
			m = r
		}
		if m == i {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
