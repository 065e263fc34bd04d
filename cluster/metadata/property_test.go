package metadata

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// Pools small enough that random commands often hit existing brokers and
// topics, with a few bad values mixed in.
var (
	brokerPool = []string{"b1", "b2", "b3", "b4", "", "bad id"}
	topicPool  = []string{"t1", "t2", "t3", "__i", "", "bad name", "."}
	keyPool    = []string{"retention.ms", "retention.bytes", "segment.bytes", "max.message.bytes", "durability", "cleanup.policy", "colour"}
	valuePool  = []string{"-1", "0", "1", "1024", "1048576", "2097152", "fsync", "replicated", "compact", "delete", "x"}
)

// genReplicas mostly draws a valid list (distinct registered brokers), else
// anything from the pool.
func genReplicas(t *rapid.T, s *State, label string) []string {
	if ids := s.BrokerIDs(); len(ids) > 0 && rapid.IntRange(0, 4).Draw(t, label+"Valid") > 0 {
		perm := rapid.Permutation(ids).Draw(t, label)
		return perm[:rapid.IntRange(1, min(3, len(perm))).Draw(t, label+"N")]
	}
	return rapid.SliceOfN(rapid.SampledFrom(brokerPool), 0, 4).Draw(t, label)
}

func genConfig(t *rapid.T) TopicConfig {
	switch rapid.IntRange(0, 5).Draw(t, "configKind") {
	case 0:
		return TopicConfig{} // invalid
	case 1:
		kv := rapid.MapOfN(rapid.SampledFrom(keyPool), rapid.SampledFrom(valuePool), 0, 3).Draw(t, "configKV")
		if c, err := ParseTopicConfig(DefaultTopicConfig(), kv); err == nil {
			return c
		}
	}
	return DefaultTopicConfig()
}

// pickTopic mostly names an existing topic.
func pickTopic(t *rapid.T, s *State) string {
	if names := s.TopicNames(); len(names) > 0 && rapid.IntRange(0, 3).Draw(t, "existing") > 0 {
		return rapid.SampledFrom(names).Draw(t, "topic")
	}
	return rapid.SampledFrom(topicPool).Draw(t, "topic")
}

// genSet mostly draws valid overrides.
func genSet(t *rapid.T) map[string]string {
	if rapid.Bool().Draw(t, "validSet") {
		valid := map[string][]string{
			"retention.ms": {"-1", "1000"}, "retention.bytes": {"-1", "0", "4096"},
			"segment.bytes": {"1048576", "2097152"}, "max.message.bytes": {"1024", "2048"},
			"durability": {"fsync", "replicated"}, "cleanup.policy": {"delete", "compact"}, "delete.retention.ms": {"1", "86400000"},
			"min.compaction.lag.ms": {"0", "10"}, "max.compaction.lag.ms": {"-1", "1000"}, "min.cleanable.dirty.ratio": {"0", "0.5", "1"}, "segment.ms": {"1000", "604800000"},
			"max.messages": {"-1", "1000"}, "max.bytes": {"-1", "1048576"}, "overflow.policy": {"reject", "drop-oldest"},
		}
		set := map[string]string{}
		for _, k := range rapid.SliceOfNDistinct(rapid.SampledFrom(ConfigKeys()), 0, 3, rapid.ID).Draw(t, "validKeys") {
			set[k] = rapid.SampledFrom(valid[k]).Draw(t, "value")
		}
		return set
	}
	return rapid.MapOfN(rapid.SampledFrom(keyPool), rapid.SampledFrom(valuePool), 0, 3).Draw(t, "set")
}

func genCommand(t *rapid.T, s *State) Command {
	topicID := func(name string) uint64 {
		if tp, ok := s.Topics[name]; ok && rapid.IntRange(0, 3).Draw(t, "useRealID") > 0 {
			return tp.ID
		}
		return rapid.Uint64Range(0, 30).Draw(t, "topicID")
	}
	switch rapid.IntRange(0, 6).Draw(t, "command") {
	case 0:
		return RegisterBroker{Broker: Broker{
			ID:       rapid.SampledFrom(brokerPool).Draw(t, "broker"),
			RaftAddr: rapid.SampledFrom([]string{"", "h:1", "nope"}).Draw(t, "addr"),
			Rack:     rapid.SampledFrom([]string{"", "r1", "r2"}).Draw(t, "rack"),
		}}
	case 1:
		n := rapid.IntRange(0, 4).Draw(t, "partitions")
		if rapid.IntRange(0, 4).Draw(t, "fewPartitionsValid") > 0 {
			n = max(n, 1)
		}
		parts := make([]PartitionAssignment, n)
		for i := range parts {
			parts[i] = PartitionAssignment{Partition: int32(i), Replicas: genReplicas(t, s, fmt.Sprintf("replicas%d", i))}
		}
		if n > 1 && rapid.IntRange(0, 9).Draw(t, "misnumber") == 0 {
			parts[0].Partition = 1
		}
		name := rapid.SampledFrom(topicPool).Draw(t, "topic")
		return CreateTopic{
			Name:       name,
			Config:     genConfig(t),
			Partitions: parts,
			Internal:   strings.HasPrefix(name, "__") || rapid.IntRange(0, 9).Draw(t, "internal") == 0,
		}
	case 2:
		name := pickTopic(t, s)
		return DeleteTopic{Name: name, TopicID: topicID(name)}
	case 3:
		name := pickTopic(t, s)
		return AlterTopicConfig{
			Name:    name,
			TopicID: topicID(name),
			Set:     genSet(t),
			Delete:  rapid.SliceOfN(rapid.SampledFrom(keyPool), 0, 2).Draw(t, "delete"),
		}
	case 4:
		name := pickTopic(t, s)
		partition := rapid.Int32Range(-1, 4).Draw(t, "partition")
		if tp, ok := s.Topics[name]; ok && rapid.IntRange(0, 3).Draw(t, "validPartition") > 0 {
			partition = rapid.Int32Range(0, int32(len(tp.Partitions)-1)).Draw(t, "partition")
		}
		return ReassignPartition{
			Topic:     name,
			TopicID:   topicID(name),
			Partition: partition,
			Replicas:  genReplicas(t, s, "replicas"),
		}
	case 5:
		return AllocateProducerIDs{Count: rapid.SampledFrom([]int64{-1, 0, 1, 7, 1000, MaxProducerIDBlock, MaxProducerIDBlock + 1}).Draw(t, "count")}
	default:
		return SetMetaVoters{IDs: rapid.SliceOfN(rapid.SampledFrom(brokerPool), 0, 4).Draw(t, "voters")}
	}
}

// TestPropertyRandomCommandsKeepInvariants applies random command sequences
// (and some garbage entries) and checks after each: no panic, every state
// invariant (distinct replicas on registered brokers, partitions dense
// 0..n-1, ...), a rejected entry changes nothing but the index, earlier
// published states stay untouched, producer-id blocks never overlap. At the
// end a snapshot restores to an equal state and a second FSM fed the same
// log produces the same snapshot bytes.
func TestPropertyRandomCommandsKeepInvariants(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		a := newApplier(t)
		a.brokers("b1", "b2", "b3")
		var log [][]byte
		type published struct{ ptr, copy *State }
		var history []published
		var nextPID int64
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for range steps {
			before := a.fsm.State()
			var data []byte
			if rapid.IntRange(0, 19).Draw(rt, "garbage") == 0 {
				data = rapid.SliceOfN(rapid.Byte(), 0, 12).Draw(rt, "bytes")
			} else {
				var err error
				if data, err = EncodeCommand(genCommand(rt, before)); err != nil {
					rt.Fatal(err)
				}
			}
			log = append(log, data)
			r := a.raw(data)
			after := a.fsm.State()
			if r.Err != nil && strings.Contains(r.Err.Error(), "internal error") {
				rt.Fatalf("apply panicked: %v", r.Err)
			}
			if err := after.Validate(); err != nil {
				rt.Fatalf("invariant broken after %q: %v", data, err)
			}
			if after.Index != a.index {
				rt.Fatalf("index %d, want %d", after.Index, a.index)
			}
			if r.Err != nil && !reflect.DeepEqual(withoutIndex(before), withoutIndex(after)) {
				rt.Fatalf("rejected entry %q (%v) changed the state", data, r.Err)
			}
			if after.NextProducerID < before.NextProducerID {
				rt.Fatalf("next producer id went back: %d -> %d", before.NextProducerID, after.NextProducerID)
			}
			if r.Err == nil && data[0] == byte(TypeAllocateProducerIDs) {
				if r.FirstProducerID != nextPID {
					rt.Fatalf("block at %d, want %d", r.FirstProducerID, nextPID)
				}
				nextPID = after.NextProducerID
			}
			history = append(history, published{before, before.Clone()})
		}
		for _, h := range history {
			if !reflect.DeepEqual(h.ptr, h.copy) {
				rt.Fatalf("published state modified later")
			}
		}
		snap := snapshotBytes(t, a.fsm)
		restored := NewFSM()
		if err := restored.Restore(readCloser(snap)); err != nil {
			rt.Fatalf("restore: %v\n%s", err, snap)
		}
		if !reflect.DeepEqual(restored.State(), a.fsm.State()) {
			rt.Fatalf("restored state differs")
		}
		b := newApplier(t)
		b.brokers("b1", "b2", "b3")
		for _, data := range log {
			b.raw(data)
		}
		if other := snapshotBytes(t, b.fsm); !bytes.Equal(snap, other) {
			rt.Fatalf("same log, different snapshots:\n%s\n%s", snap, other)
		}
	})
}

// FuzzApply feeds arbitrary entries to a populated FSM: nothing may panic
// and the state must stay valid.
func FuzzApply(f *testing.F) {
	for _, cmd := range []Command{
		RegisterBroker{Broker: Broker{ID: "b9", RaftAddr: "h:1"}},
		CreateTopic{Name: "x", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1", "b2"})},
		DeleteTopic{Name: "orders"},
		AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "5"}},
		ReassignPartition{Topic: "orders", TopicID: 4, Partition: 1, Replicas: []string{"b1"}},
		AllocateProducerIDs{Count: 3},
		SetMetaVoters{IDs: []string{"b1"}},
	} {
		data, err := EncodeCommand(cmd)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newApplier(t)
		a.brokers("b1", "b2", "b3")
		a.must(CreateTopic{Name: "orders", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1", "b2"}, []string{"b2", "b3"})})
		r := a.raw(data)
		if r.Err != nil && strings.Contains(r.Err.Error(), "internal error") {
			t.Fatal(r.Err)
		}
		if err := a.fsm.State().Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
