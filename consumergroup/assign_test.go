package consumergroup

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func tps(topic string, parts ...int32) []TopicPartition {
	out := make([]TopicPartition, 0, len(parts))
	for _, p := range parts {
		out = append(out, TopicPartition{Topic: topic, Partition: p})
	}
	return out
}

func memberIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m%04d", i)
	}
	return ids
}

// sameTopics gives every id the same subscription and the previous
// assignment prev (nil for a fresh group).
func sameTopics(ids []string, topics []string, prev map[string][]TopicPartition) []AssignMember {
	ms := make([]AssignMember, len(ids))
	for i, id := range ids {
		ms[i] = AssignMember{ID: id, Topics: topics, Current: prev[id]}
	}
	return ms
}

// checkValid fails unless got assigns every partition of every subscribed
// topic exactly once, to a subscriber, lists every member and sorts each
// member's partitions.
func checkValid(t interface {
	Helper()
	Fatalf(format string, args ...any)
}, members []AssignMember, topics map[string]int32, got map[string][]TopicPartition) {
	t.Helper()
	subscribed := map[string]map[string]bool{}
	want := map[TopicPartition]bool{}
	for _, m := range members {
		if subscribed[m.ID] == nil {
			subscribed[m.ID] = map[string]bool{}
		}
		for _, topic := range m.Topics {
			subscribed[m.ID][topic] = true
			for p := range topics[topic] {
				want[TopicPartition{topic, p}] = true
			}
		}
	}
	if len(got) != len(subscribed) {
		t.Fatalf("result has %d members, want %d", len(got), len(subscribed))
	}
	owner := map[TopicPartition]string{}
	for id, as := range got {
		if subscribed[id] == nil {
			t.Fatalf("unknown member %q in result", id)
		}
		if as == nil {
			t.Fatalf("member %q has a nil slice", id)
		}
		if !slices.IsSortedFunc(as, compareTopicPartition) {
			t.Fatalf("member %q: partitions not sorted: %v", id, as)
		}
		for _, tp := range as {
			if !want[tp] {
				t.Fatalf("member %q got %v, which is not a partition of a subscribed topic", id, tp)
			}
			if !subscribed[id][tp.Topic] {
				t.Fatalf("member %q got %v without subscribing to %q", id, tp, tp.Topic)
			}
			if o, dup := owner[tp]; dup {
				t.Fatalf("%v assigned to both %q and %q", tp, o, id)
			}
			owner[tp] = id
		}
	}
	if len(owner) != len(want) {
		t.Fatalf("%d of %d partitions assigned", len(owner), len(want))
	}
}

func compareTopicPartition(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition - b.Partition)
}

func loadSpread(got map[string][]TopicPartition) int {
	lo, hi := -1, 0
	for _, as := range got {
		if lo < 0 || len(as) < lo {
			lo = len(as)
		}
		hi = max(hi, len(as))
	}
	return hi - lo
}

func owners(a map[string][]TopicPartition) map[TopicPartition]string {
	o := map[TopicPartition]string{}
	for id, as := range a {
		for _, tp := range as {
			o[tp] = id
		}
	}
	return o
}

// moves lists the partitions owned in before that changed owner in after,
// as "from->to".
func moves(before, after map[string][]TopicPartition) []string {
	var out []string
	a := owners(after)
	for tp, from := range owners(before) {
		if to, ok := a[tp]; ok && to != from {
			out = append(out, from+"->"+to)
		}
	}
	return out
}

func TestAssign(t *testing.T) {
	tests := []struct {
		name    string
		members []AssignMember
		topics  map[string]int32
		want    map[string][]TopicPartition
	}{
		{
			name:    "six partitions over three members, round robin",
			members: sameTopics([]string{"a", "b", "c"}, []string{"t"}, nil),
			topics:  map[string]int32{"t": 6},
			want:    map[string][]TopicPartition{"a": tps("t", 0, 3), "b": tps("t", 1, 4), "c": tps("t", 2, 5)},
		},
		{
			name:    "more members than partitions",
			members: sameTopics([]string{"a", "b", "c"}, []string{"t"}, nil),
			topics:  map[string]int32{"t": 2},
			want:    map[string][]TopicPartition{"a": tps("t", 0), "b": tps("t", 1), "c": {}},
		},
		{
			name:    "no members",
			members: nil,
			topics:  map[string]int32{"t": 2},
			want:    map[string][]TopicPartition{},
		},
		{
			name: "unsubscribed, missing and empty topics are not assigned",
			members: []AssignMember{
				{ID: "a", Topics: []string{"t", "gone", "empty"}},
				{ID: "b", Topics: []string{"t"}},
				{ID: "idle"},
			},
			topics: map[string]int32{"t": 2, "other": 3, "empty": 0},
			want:   map[string][]TopicPartition{"a": tps("t", 0), "b": tps("t", 1), "idle": {}},
		},
		{
			name: "current ownership kept when balanced",
			members: []AssignMember{
				{ID: "a", Topics: []string{"t"}, Current: tps("t", 3, 1)},
				{ID: "b", Topics: []string{"t"}, Current: tps("t", 0, 2)},
			},
			topics: map[string]int32{"t": 4},
			want:   map[string][]TopicPartition{"a": tps("t", 1, 3), "b": tps("t", 0, 2)},
		},
		{
			name: "invalid current entries ignored, first member by ID keeps a doubly claimed partition",
			members: []AssignMember{
				{ID: "b", Topics: []string{"t"}, Current: append(tps("t", 0, 1), tps("u", 0)...)},
				{ID: "a", Topics: []string{"t"}, Current: append(tps("t", 1, 9, -1, 1), tps("gone", 0)...)},
			},
			topics: map[string]int32{"t": 2, "u": 1},
			want:   map[string][]TopicPartition{"a": tps("t", 1), "b": tps("t", 0)},
		},
		{
			name: "entries with the same ID are one member",
			members: []AssignMember{
				{ID: "a", Topics: []string{"t"}, Current: tps("t", 0)},
				{ID: "b", Topics: []string{"t", "u"}},
				{ID: "a", Topics: []string{"u"}, Current: tps("u", 1)},
			},
			topics: map[string]int32{"t": 2, "u": 2},
			want:   map[string][]TopicPartition{"a": append(tps("t", 0), tps("u", 1)...), "b": append(tps("t", 1), tps("u", 0)...)},
		},
		{
			name: "heterogeneous: the narrow subscriber gets the shared topic",
			members: []AssignMember{
				{ID: "a", Topics: []string{"t1"}},
				{ID: "b", Topics: []string{"t1", "t2"}},
			},
			topics: map[string]int32{"t1": 2, "t2": 2},
			want:   map[string][]TopicPartition{"a": tps("t1", 0, 1), "b": tps("t2", 0, 1)},
		},
		{
			name: "heterogeneous: balance impossible, every partition still assigned",
			members: []AssignMember{
				{ID: "a", Topics: []string{"t1"}},
				{ID: "b", Topics: []string{"t2"}},
			},
			topics: map[string]int32{"t1": 1, "t2": 5},
			want:   map[string][]TopicPartition{"a": tps("t1", 0), "b": tps("t2", 0, 1, 2, 3, 4)},
		},
		{
			name: "heterogeneous: a chain of moves through a member subscribed to both",
			// a can only give x to b; c can only take y from b.
			members: []AssignMember{
				{ID: "a", Topics: []string{"x"}, Current: tps("x", 0, 1, 2, 3)},
				{ID: "b", Topics: []string{"x", "y"}, Current: tps("y", 0, 1)},
				{ID: "c", Topics: []string{"y"}},
			},
			topics: map[string]int32{"x": 4, "y": 2},
			want:   map[string][]TopicPartition{"a": tps("x", 0, 1), "b": tps("x", 2, 3), "c": tps("y", 0, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Assign(tt.members, tt.topics)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Assign:\n got %v\nwant %v", got, tt.want)
			}
			checkValid(t, tt.members, tt.topics, got)
		})
	}
}

func TestAssignMemberJoinTakesOnlyItsShare(t *testing.T) {
	topics := map[string]int32{"a": 7, "b": 5, "c": 1}
	ids := memberIDs(4)
	before := Assign(sameTopics(ids, slices.Sorted(maps.Keys(topics)), nil), topics)
	ids = append(ids, "new")
	after := Assign(sameTopics(ids, slices.Sorted(maps.Keys(topics)), before), topics)
	checkValid(t, sameTopics(ids, slices.Sorted(maps.Keys(topics)), nil), topics, after)
	if s := loadSpread(after); s > 1 {
		t.Fatalf("spread %d after join: %v", s, after)
	}
	mv := moves(before, after)
	if len(mv) != len(after["new"]) || len(mv) > 3 { // 13 partitions over 5 members: ceil = 3
		t.Fatalf("moves %v, new member has %v", mv, after["new"])
	}
}

func TestAssignMemberLeaveMovesOnlyItsPartitions(t *testing.T) {
	topics := map[string]int32{"a": 10, "b": 3}
	ids := memberIDs(5)
	before := Assign(sameTopics(ids, []string{"a", "b"}, nil), topics)
	gone := ids[2]
	ids = slices.Delete(ids, 2, 3)
	after := Assign(sameTopics(ids, []string{"a", "b"}, before), topics)
	if s := loadSpread(after); s > 1 {
		t.Fatalf("spread %d after leave: %v", s, after)
	}
	a := owners(after)
	for tp, from := range owners(before) {
		if from != gone && a[tp] != from {
			t.Fatalf("%v moved from %s to %s although %s stayed", tp, from, a[tp], from)
		}
	}
}

// genTopics draws 1..maxTopics topics with 0..maxParts partitions each.
func genTopics(t *rapid.T, maxTopics, maxParts int) map[string]int32 {
	n := rapid.IntRange(1, maxTopics).Draw(t, "topics")
	topics := map[string]int32{}
	for i := range n {
		topics[fmt.Sprintf("t%d", i)] = int32(rapid.IntRange(0, maxParts).Draw(t, fmt.Sprintf("parts%d", i)))
	}
	return topics
}

// genCurrent draws a previous assignment with stale, out of range and
// doubly claimed entries.
func genCurrent(t *rapid.T, topics map[string]int32, label string) []TopicPartition {
	names := append(slices.Sorted(maps.Keys(topics)), "gone")
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) TopicPartition {
		return TopicPartition{
			Topic:     rapid.SampledFrom(names).Draw(t, "topic"),
			Partition: int32(rapid.IntRange(-1, 12).Draw(t, "partition")),
		}
	}), 0, 12).Draw(t, label)
}

// genMembers draws members; with heterogeneous each subscribes to a random
// subset of the topics (plus a topic that does not exist).
func genMembers(t *rapid.T, topics map[string]int32, maxMembers int, heterogeneous bool) []AssignMember {
	names := slices.Sorted(maps.Keys(topics))
	n := rapid.IntRange(1, maxMembers).Draw(t, "members")
	ms := make([]AssignMember, n)
	for i, id := range memberIDs(n) {
		subs := names
		if heterogeneous {
			subs = rapid.SliceOfDistinct(rapid.SampledFrom(append(names, "gone")), rapid.ID).Draw(t, "subs"+id)
		}
		ms[i] = AssignMember{ID: id, Topics: subs, Current: genCurrent(t, topics, "current"+id)}
	}
	return ms
}

// checkNoImprovingChain fails if some member could pass a partition, directly
// or through other members each passing one on, to a member owning two
// fewer: then the assignment is not as balanced as the subscriptions allow.
func checkNoImprovingChain(t *rapid.T, members []AssignMember, got map[string][]TopicPartition) {
	subs := map[string]map[string]bool{}
	for _, m := range members {
		subs[m.ID] = map[string]bool{}
		for _, topic := range m.Topics {
			subs[m.ID][topic] = true
		}
	}
	for from := range got {
		seen := map[string]bool{from: true}
		queue := []string{from}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for v := range got {
				if seen[v] || !slices.ContainsFunc(got[u], func(tp TopicPartition) bool { return subs[v][tp.Topic] }) {
					continue
				}
				if len(got[v]) <= len(got[from])-2 {
					t.Fatalf("%s (%d partitions) can pass one to %s (%d) via a chain: %v", from, len(got[from]), v, len(got[v]), got)
				}
				seen[v] = true
				queue = append(queue, v)
			}
		}
	}
}

func TestPropertyAssignHomogeneousIsBalancedAndStable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 4, 12)
		members := genMembers(t, topics, 8, false)
		got := Assign(members, topics)
		checkValid(t, members, topics, got)
		if s := loadSpread(got); s > 1 {
			t.Fatalf("spread %d: %v", s, got)
		}
		again := Assign(sameTopics(slices.Sorted(maps.Keys(got)), members[0].Topics, got), topics)
		if !reflect.DeepEqual(again, got) {
			t.Fatalf("not stable:\nfirst  %v\nsecond %v", got, again)
		}
	})
}

func TestPropertyAssignHeterogeneousIsValidOptimalAndStable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 5, 10)
		members := genMembers(t, topics, 7, true)
		got := Assign(members, topics)
		checkValid(t, members, topics, got)
		checkNoImprovingChain(t, members, got)
		rerun := slices.Clone(members)
		for i := range rerun {
			rerun[i].Current = got[rerun[i].ID]
		}
		if again := Assign(rerun, topics); !reflect.DeepEqual(again, got) {
			t.Fatalf("not stable:\nfirst  %v\nsecond %v", got, again)
		}
	})
}

// TestPropertyAssignMinimisesSpread compares the spread with the best of
// every possible assignment of tiny groups.
func TestPropertyAssignMinimisesSpread(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 3, 3)
		members := genMembers(t, topics, 3, true)
		got := Assign(members, topics)
		var parts []TopicPartition
		for _, name := range slices.Sorted(maps.Keys(topics)) {
			if slices.ContainsFunc(members, func(m AssignMember) bool { return slices.Contains(m.Topics, name) }) {
				for p := range topics[name] {
					parts = append(parts, TopicPartition{name, p})
				}
			}
		}
		best := -1
		loads := make([]int, len(members))
		var try func(i int)
		try = func(i int) {
			if i == len(parts) {
				if s := slices.Max(loads) - slices.Min(loads); best < 0 || s < best {
					best = s
				}
				return
			}
			for u, m := range members {
				if slices.Contains(m.Topics, parts[i].Topic) {
					loads[u]++
					try(i + 1)
					loads[u]--
				}
			}
		}
		try(0)
		if s := loadSpread(got); s != best {
			t.Fatalf("spread %d, best possible %d: %v", s, best, got)
		}
	})
}

func TestPropertyAssignJoinMovesOnlyToNewMember(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 4, 15)
		names := slices.Sorted(maps.Keys(topics))
		ids := memberIDs(rapid.IntRange(1, 8).Draw(t, "members"))
		before := Assign(sameTopics(ids, names, nil), topics)
		// The newcomer's ID sorts anywhere among the others'.
		joiner := rapid.SampledFrom([]string{"a-new", "m0001x", "z-new"}).Draw(t, "joiner")
		after := Assign(sameTopics(append(slices.Clone(ids), joiner), names, before), topics)
		total := 0
		for _, n := range topics {
			total += int(n)
		}
		mv := moves(before, after)
		if limit := (total + len(ids)) / (len(ids) + 1); len(mv) > limit {
			t.Fatalf("%d moves, at most %d expected: %v", len(mv), limit, mv)
		}
		for _, m := range mv {
			if !strings.HasSuffix(m, "->"+joiner) {
				t.Fatalf("move %s not to the new member", m)
			}
		}
		if s := loadSpread(after); s > 1 {
			t.Fatalf("spread %d after join: %v", s, after)
		}
	})
}

func TestPropertyAssignLeaveMovesOnlyLeaversPartitions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 4, 15)
		names := slices.Sorted(maps.Keys(topics))
		ids := memberIDs(rapid.IntRange(2, 8).Draw(t, "members"))
		before := Assign(sameTopics(ids, names, nil), topics)
		i := rapid.IntRange(0, len(ids)-1).Draw(t, "leaver")
		gone := ids[i]
		after := Assign(sameTopics(slices.Delete(slices.Clone(ids), i, i+1), names, before), topics)
		if mv := moves(before, after); len(mv) != len(before[gone]) {
			t.Fatalf("%d moves, the leaver owned %d: %v", len(mv), len(before[gone]), mv)
		}
		if s := loadSpread(after); s > 1 {
			t.Fatalf("spread %d after leave: %v", s, after)
		}
	})
}

func TestPropertyAssignIgnoresInputOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		topics := genTopics(t, 4, 10)
		members := genMembers(t, topics, 6, rapid.Bool().Draw(t, "heterogeneous"))
		got := Assign(members, topics)
		rng := rand.New(rand.NewPCG(rapid.Uint64().Draw(t, "seed"), 0))
		shuffled := slices.Clone(members)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for i := range shuffled {
			m := &shuffled[i]
			m.Topics, m.Current = slices.Clone(m.Topics), slices.Clone(m.Current)
			rng.Shuffle(len(m.Topics), func(i, j int) { m.Topics[i], m.Topics[j] = m.Topics[j], m.Topics[i] })
			rng.Shuffle(len(m.Current), func(i, j int) { m.Current[i], m.Current[j] = m.Current[j], m.Current[i] })
		}
		if again := Assign(shuffled, topics); !reflect.DeepEqual(again, got) {
			t.Fatalf("order changed the result:\n%v\n%v", got, again)
		}
	})
}

// largeGroup is 1000 members subscribed to 10 topics of 1000 partitions.
func largeGroup() ([]string, []string, map[string]int32) {
	topics := map[string]int32{}
	for i := range 10 {
		topics[fmt.Sprintf("topic-%02d", i)] = 1000
	}
	return memberIDs(1000), slices.Sorted(maps.Keys(topics)), topics
}

func TestAssignLargeGroupJoinAndLeave(t *testing.T) {
	ids, names, topics := largeGroup()
	before := Assign(sameTopics(ids, names, nil), topics)
	checkValid(t, sameTopics(ids, names, nil), topics, before)
	joined := append(slices.Clone(ids), "new")
	after := Assign(sameTopics(joined, names, before), topics)
	if mv := moves(before, after); len(mv) != 9 {
		t.Fatalf("join moved %d partitions, want 9 (10000/1001)", len(mv))
	}
	left := Assign(sameTopics(ids[1:], names, before), topics)
	if mv := moves(before, left); len(mv) != 10 {
		t.Fatalf("leave moved %d partitions, want the leaver's 10", len(mv))
	}
	if s := loadSpread(left); s > 1 {
		t.Fatalf("spread %d", s)
	}
}

func BenchmarkAssign1000Members10000Partitions(b *testing.B) {
	ids, names, topics := largeGroup()
	fresh := sameTopics(ids, names, nil)
	steady := Assign(fresh, topics)
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			Assign(fresh, topics)
		}
	})
	b.Run("join", func(b *testing.B) {
		joined := sameTopics(append(slices.Clone(ids), "new"), names, steady)
		for b.Loop() {
			Assign(joined, topics)
		}
	})
	b.Run("steady", func(b *testing.B) {
		same := sameTopics(ids, names, steady)
		for b.Loop() {
			Assign(same, topics)
		}
	})
	b.Run("heterogeneous", func(b *testing.B) {
		// Half the members read 5 topics, half all 10; the second half
		// must end up with the other 5 topics' partitions.
		ms := sameTopics(ids, names, steady)
		for i := range ms[:500] {
			ms[i].Topics = names[:5]
		}
		for b.Loop() {
			Assign(ms, topics)
		}
	})
	b.Run("10000 single-partition topics", func(b *testing.B) {
		many := map[string]int32{}
		for i := range 10000 {
			many[fmt.Sprintf("t%05d", i)] = 1
		}
		ms := sameTopics(ids, slices.Sorted(maps.Keys(many)), nil)
		for b.Loop() {
			Assign(ms, many)
		}
	})
}
