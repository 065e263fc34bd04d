package metadata

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/placement"
)

// seeded returns an applier with brokers b1..b3 and topic "orders" (two
// partitions, RF 2) created at index 4.
func seeded(t *testing.T) *applier {
	a := newApplier(t)
	a.brokers("b1", "b2", "b3")
	r := a.must(CreateTopic{Name: "orders", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1", "b2"}, []string{"b2", "b3"})})
	if r.TopicID != 4 {
		t.Fatalf("topic id %d, want its creating index 4", r.TopicID)
	}
	return a
}

func TestRejectedCommandsChangeNothing(t *testing.T) {
	cfg := DefaultTopicConfig()
	badCfg := cfg
	badCfg.Durability = "sometimes"
	tests := []struct {
		name  string
		cmd   Command
		field string // the InvalidArgumentError field, or
		is    error  // the sentinel
	}{
		{"create: bad name", CreateTopic{Name: "a b", Config: cfg, Partitions: assignment([]string{"b1"})}, "name", nil},
		{"create: reserved name", CreateTopic{Name: "__x", Config: cfg, Partitions: assignment([]string{"b1"})}, "name", nil},
		{"create: exists", CreateTopic{Name: "orders", Config: cfg, Partitions: assignment([]string{"b1"})}, "", ErrTopicExists},
		{"create: bad config", CreateTopic{Name: "t", Config: badCfg, Partitions: assignment([]string{"b1"})}, "config.durability", nil},
		{"create: zero config", CreateTopic{Name: "t", Partitions: assignment([]string{"b1"})}, "config.cleanup.policy", nil},
		{"create: no partitions", CreateTopic{Name: "t", Config: cfg}, "partitions", nil},
		{"create: partitions not dense", CreateTopic{Name: "t", Config: cfg, Partitions: []PartitionAssignment{{Partition: 0, Replicas: []string{"b1"}}, {Partition: 2, Replicas: []string{"b1"}}}}, "partitions[1].partition", nil},
		{"create: duplicate replica", CreateTopic{Name: "t", Config: cfg, Partitions: assignment([]string{"b1"}, []string{"b2", "b2"})}, "partitions[1].replicas", nil},
		{"create: no replicas", CreateTopic{Name: "t", Config: cfg, Partitions: assignment([]string{})}, "partitions[0].replicas", nil},
		{"create: rf above 7", CreateTopic{Name: "t", Config: cfg, Partitions: assignment([]string{"b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"})}, "partitions[0].replicas", nil},
		{"create: unknown broker", CreateTopic{Name: "t", Config: cfg, Partitions: assignment([]string{"b1", "b9"})}, "", ErrUnknownBroker},
		{"delete: unknown", DeleteTopic{Name: "nope"}, "", ErrUnknownTopic},
		{"delete: stale id", DeleteTopic{Name: "orders", TopicID: 3}, "", ErrUnknownTopic},
		{"alter: unknown topic", AlterTopicConfig{Name: "nope", Set: map[string]string{"retention.ms": "1"}}, "", ErrUnknownTopic},
		{"alter: unknown key", AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "1", "colour": "red"}}, "config.colour", nil},
		{"alter: bad value", AlterTopicConfig{Name: "orders", Set: map[string]string{"segment.bytes": "1"}}, "config.segment.bytes", nil},
		{"alter: delete unknown key", AlterTopicConfig{Name: "orders", Delete: []string{"colour"}}, "config.colour", nil},
		{"alter: set and delete", AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "1"}, Delete: []string{"retention.ms"}}, "config.retention.ms", nil},
		{"reassign: no topic id", ReassignPartition{Topic: "orders", Partition: 0, Replicas: []string{"b3"}}, "topic_id", nil},
		{"reassign: stale topic id", ReassignPartition{Topic: "orders", TopicID: 1, Partition: 0, Replicas: []string{"b3"}}, "", ErrUnknownTopic},
		{"reassign: unknown partition", ReassignPartition{Topic: "orders", TopicID: 4, Partition: 2, Replicas: []string{"b3"}}, "partition", nil},
		{"reassign: negative partition", ReassignPartition{Topic: "orders", TopicID: 4, Partition: -1, Replicas: []string{"b3"}}, "partition", nil},
		{"reassign: duplicate replica", ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b3", "b3"}}, "replicas", nil},
		{"reassign: unknown broker", ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b3", "zz"}}, "", ErrUnknownBroker},
		{"producer ids: zero", AllocateProducerIDs{Count: 0}, "count", nil},
		{"producer ids: too many", AllocateProducerIDs{Count: MaxProducerIDBlock + 1}, "count", nil},
		{"voters: none", SetMetaVoters{}, "ids", nil},
		{"voters: duplicate", SetMetaVoters{IDs: []string{"b1", "b1"}}, "ids", nil},
		{"broker: empty id", RegisterBroker{Broker: Broker{}}, "broker.id", nil},
		{"broker: bad address", RegisterBroker{Broker: Broker{ID: "b4", RaftAddr: "nowhere"}}, "broker.raft_addr", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := seeded(t)
			before := a.fsm.State()
			if err := before.Check(tc.cmd); err == nil {
				t.Errorf("State.Check accepted the command")
			}
			r := a.apply(tc.cmd)
			var ia *InvalidArgumentError
			switch {
			case r.Err == nil:
				t.Fatal("accepted")
			case tc.is != nil && !errors.Is(r.Err, tc.is):
				t.Fatalf("err = %v, want %v", r.Err, tc.is)
			case tc.field != "" && (!errors.As(r.Err, &ia) || ia.Field != tc.field || !errors.Is(r.Err, ErrInvalidArgument)):
				t.Fatalf("err = %v, want field %q", r.Err, tc.field)
			}
			after := a.fsm.State()
			if after.Index != a.index {
				t.Errorf("index %d, want %d: a rejected entry still counts as applied", after.Index, a.index)
			}
			if !reflect.DeepEqual(withoutIndex(before), withoutIndex(after)) {
				t.Errorf("state changed:\n%+v\n%+v", before, after)
			}
		})
	}
}

func TestUndecodableEntriesAreRejectedDeterministically(t *testing.T) {
	valid, err := EncodeCommand(DeleteTopic{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrMalformedCommand},
		{"unknown type", []byte{200, '{', '}'}, nil},
		{"not json", []byte{byte(TypeCreateTopic), 'x'}, ErrMalformedCommand},
		{"unknown field", append([]byte{byte(TypeDeleteTopic)}, `{"name":"orders","colour":"red"}`...), ErrMalformedCommand},
		{"trailing data", append(slices.Clone(valid), `{}`...), ErrMalformedCommand},
		{"wrong shape", append([]byte{byte(TypeSetMetaVoters)}, `{"ids":"b1"}`...), ErrMalformedCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := seeded(t)
			before := withoutIndex(a.fsm.State())
			r := a.raw(tc.data)
			var uc *UnknownCommandError
			switch {
			case tc.want != nil && !errors.Is(r.Err, tc.want):
				t.Fatalf("err = %v, want %v", r.Err, tc.want)
			case tc.want == nil && (!errors.As(r.Err, &uc) || uc.Type != 200):
				t.Fatalf("err = %v, want UnknownCommandError", r.Err)
			}
			if !reflect.DeepEqual(before, withoutIndex(a.fsm.State())) {
				t.Fatal("state changed")
			}
		})
	}
}

func TestNonCommandEntriesAreIgnored(t *testing.T) {
	a := seeded(t)
	before := a.fsm.State()
	if resp := a.fsm.Apply(&raft.Log{Index: 99, Type: raft.LogConfiguration}); resp != nil {
		t.Fatalf("got %v", resp)
	}
	if a.fsm.State() != before {
		t.Fatal("state replaced")
	}
}

func TestReplayedEntryIsSkipped(t *testing.T) {
	a := seeded(t)
	data, _ := EncodeCommand(DeleteTopic{Name: "orders"})
	before := a.fsm.State()
	r, err := ResultOf(a.fsm.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}))
	if err != nil || r.Index != 2 || a.fsm.State() != before {
		t.Fatalf("replayed entry applied: %+v %v", r, err)
	}
}

func TestTopicLifecycle(t *testing.T) {
	a := seeded(t)
	s := a.fsm.State()
	orders, ok := s.Topic("orders")
	if !ok || orders.ID != 4 || orders.ReplicationFactor() != 2 || len(orders.Partitions) != 2 {
		t.Fatalf("topic %+v", orders)
	}

	a.must(AlterTopicConfig{Name: "orders", TopicID: 4, Set: map[string]string{"retention.ms": "-1", "durability": "replicated"}})
	a.must(AlterTopicConfig{Name: "orders", Delete: []string{"durability"}})
	got, _ := a.fsm.State().Topic("orders")
	want := DefaultTopicConfig()
	want.RetentionMs = -1
	if got.Config != want {
		t.Fatalf("config %+v, want %+v", got.Config, want)
	}

	a.must(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 1, Replicas: []string{"b3", "b1", "b2"}})
	got, _ = a.fsm.State().Topic("orders")
	if !slices.Equal(got.Partitions[1].Replicas, []string{"b3", "b1", "b2"}) {
		t.Fatalf("partitions %+v", got.Partitions)
	}

	a.must(DeleteTopic{Name: "orders", TopicID: 4})
	if _, ok := a.fsm.State().Topic("orders"); ok {
		t.Fatal("deleted topic still there")
	}
	r := a.must(CreateTopic{Name: "orders", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})})
	if r.TopicID == 4 || r.TopicID != a.index {
		t.Fatalf("recreated topic id %d, want new id %d", r.TopicID, a.index)
	}
	// A reassignment computed for the first incarnation must not touch the second.
	if r := a.apply(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b2"}}); !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("stale reassign: %v", r.Err)
	}
	// Internal topics need the flag.
	a.must(CreateTopic{Name: "__consumer_offsets", Internal: true, Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})})
	if names := a.fsm.State().TopicNames(); !slices.Equal(names, []string{"__consumer_offsets", "orders"}) {
		t.Fatalf("names %v", names)
	}
}

func TestInitialReplicasLastUntilTheSetChanges(t *testing.T) {
	a := seeded(t)
	initial := func() []string {
		tp, _ := a.fsm.State().Topic("orders")
		return tp.Partitions[0].Initial
	}
	// The proposer cannot choose who bootstraps.
	a.must(CreateTopic{Name: "other", Config: DefaultTopicConfig(), Partitions: []PartitionAssignment{{Partition: 0, Replicas: []string{"b1"}, Initial: []string{"b2"}}}})
	if tp, _ := a.fsm.State().Topic("other"); !slices.Equal(tp.Partitions[0].Initial, []string{"b1"}) {
		t.Fatalf("initial %v, want the replicas", tp.Partitions[0].Initial)
	}
	if got := initial(); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Fatalf("initial %v", got)
	}
	// Leader balancing reorders: same set, same bootstrap configuration.
	a.must(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b2", "b1"}})
	if got := initial(); !slices.Equal(got, []string{"b1", "b2"}) {
		t.Fatalf("initial after reorder %v", got)
	}
	// A new member: from now on only the leader brings replicas in.
	a.must(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b2", "b3"}})
	if got := initial(); got != nil {
		t.Fatalf("initial after a set change %v, want nil", got)
	}
	a.must(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b1", "b2"}})
	if got := initial(); got != nil {
		t.Fatalf("initial came back: %v", got)
	}
}

func TestRegisterBrokerUpserts(t *testing.T) {
	a := seeded(t)
	a.must(RegisterBroker{Broker: Broker{ID: "b1", GRPCAddr: "new:1", Rack: "r1"}})
	s := a.fsm.State()
	if b := s.Brokers["b1"]; b.GRPCAddr != "new:1" || b.Rack != "r1" || b.RaftAddr != "" {
		t.Fatalf("broker %+v", b)
	}
	if ids := s.BrokerIDs(); !slices.Equal(ids, []string{"b1", "b2", "b3"}) {
		t.Fatalf("ids %v", ids)
	}
	if nodes := s.Nodes([]string{"b3", "b1", "unregistered", "b1"}); !reflect.DeepEqual(nodes, []placement.Node{{ID: "b1", Rack: "r1"}, {ID: "b3"}}) {
		t.Fatalf("nodes %v", nodes)
	}
}

func TestProducerIDBlocksNeverOverlap(t *testing.T) {
	a := newApplier(t)
	var next int64
	for _, n := range []int64{1, 1000, 7} {
		r := a.must(AllocateProducerIDs{Count: n})
		if r.FirstProducerID != next {
			t.Fatalf("block starts at %d, want %d", r.FirstProducerID, next)
		}
		next += n
	}
	// Through a snapshot into a fresh FSM, as a restarted or new node.
	b := newApplier(t)
	if err := b.fsm.Restore(readCloser(snapshotBytes(t, a.fsm))); err != nil {
		t.Fatal(err)
	}
	b.index = a.index
	if r := b.must(AllocateProducerIDs{Count: 5}); r.FirstProducerID != next {
		t.Fatalf("after restore block starts at %d, want %d", r.FirstProducerID, next)
	}
	// The id space ends without wrapping.
	c := newApplier(t)
	st := c.fsm.State().Clone()
	st.NextProducerID = 1<<63 - 10
	c.fsm.publish(st)
	if r := c.apply(AllocateProducerIDs{Count: 10}); !errors.Is(r.Err, ErrProducerIDsExhausted) {
		t.Fatalf("err = %v", r.Err)
	}
	if r := c.must(AllocateProducerIDs{Count: 9}); r.FirstProducerID != 1<<63-10 {
		t.Fatalf("first %d", r.FirstProducerID)
	}
}

func TestSetMetaVotersStoresSorted(t *testing.T) {
	a := newApplier(t)
	a.must(SetMetaVoters{IDs: []string{"c", "a", "b"}})
	if v := a.fsm.State().MetaVoters; !slices.Equal(v, []string{"a", "b", "c"}) {
		t.Fatalf("voters %v", v)
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	a := seeded(t)
	a.must(RegisterBroker{Broker: Broker{ID: "b4", Rack: "x", GossipAddr: "h:1", HTTPAddr: "h:2"}})
	a.must(CreateTopic{Name: "__internal", Internal: true, Config: DefaultTopicConfig(), Partitions: assignment([]string{"b4", "b1"})})
	a.must(AllocateProducerIDs{Count: 42})
	a.must(SetMetaVoters{IDs: []string{"b1", "b2", "b3"}})
	data := snapshotBytes(t, a.fsm)

	b := NewFSM()
	ch := b.Changed()
	if err := b.Restore(readCloser(data)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Restore did not signal Changed")
	}
	if !reflect.DeepEqual(a.fsm.State(), b.State()) {
		t.Fatalf("restored state differs:\n%+v\n%+v", a.fsm.State(), b.State())
	}
	if again := snapshotBytes(t, b); !bytes.Equal(data, again) {
		t.Fatalf("snapshot of the restored state differs:\n%s\n%s", data, again)
	}
}

func TestRestoreRefusesBadSnapshots(t *testing.T) {
	a := seeded(t)
	good := snapshotBytes(t, a.fsm)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", []byte("not json")},
		{"other version", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1)},
		{"no state", []byte(`{"version":1}`)},
		{"unknown field", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":1,"extra":true`), 1)},
		{"replica on unknown broker", bytes.Replace(good, []byte(`"b3"]`), []byte(`"zz"]`), 1)},
		{"duplicate replica", bytes.Replace(good, []byte(`["b2","b3"]`), []byte(`["b2","b2"]`), 1)},
		{"topic id beyond index", bytes.Replace(good, []byte(`"id":4`), []byte(`"id":400`), 1)},
		{"bad config", bytes.Replace(good, []byte(`"durability":"fsync"`), []byte(`"durability":"no"`), 1)},
		{"trailing data", append(slices.Clone(good), `{}`...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFSM()
			f.publish(a.fsm.State())
			before := f.State()
			if err := f.Restore(readCloser(tc.data)); err == nil {
				t.Fatal("accepted")
			}
			if f.State() != before {
				t.Fatal("state replaced by a refused snapshot")
			}
		})
	}
}

func TestSameLogGivesSameState(t *testing.T) {
	log := []Command{
		RegisterBroker{Broker: Broker{ID: "b2", Rack: "r2"}},
		RegisterBroker{Broker: Broker{ID: "b1", Rack: "r1"}},
		CreateTopic{Name: "t1", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1", "b2"}, []string{"b2", "b1"})},
		CreateTopic{Name: "t1", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})}, // rejected
		AlterTopicConfig{Name: "t1", Set: map[string]string{"retention.ms": "5", "segment.bytes": "2097152", "max.messages": "1000", "overflow.policy": "drop-oldest"}},
		AllocateProducerIDs{Count: 3},
		CreateTopic{Name: "t0", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b2"})},
		ReassignPartition{Topic: "t1", TopicID: 3, Partition: 1, Replicas: []string{"b1"}},
		DeleteTopic{Name: "t0"},
		SetMetaVoters{IDs: []string{"b2", "b1"}},
	}
	var snaps [][]byte
	for range 2 {
		a := newApplier(t)
		for _, cmd := range log {
			a.apply(cmd)
		}
		snaps = append(snaps, snapshotBytes(t, a.fsm))
	}
	if !bytes.Equal(snaps[0], snaps[1]) {
		t.Fatalf("snapshots differ:\n%s\n%s", snaps[0], snaps[1])
	}
}

func TestChangedWakesWaiters(t *testing.T) {
	a := seeded(t)
	ch := a.fsm.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any change")
	default:
	}
	done := make(chan *State)
	go func() {
		<-ch
		done <- a.fsm.State()
	}()
	a.must(DeleteTopic{Name: "orders"})
	select {
	case s := <-done:
		if _, ok := s.Topic("orders"); ok {
			t.Fatal("woken waiter saw the old state")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiter not woken")
	}
	// A rejected entry wakes too: it advances the index.
	ch = a.fsm.Changed()
	a.apply(DeleteTopic{Name: "orders"})
	select {
	case <-ch:
	default:
		t.Fatal("rejected entry did not signal Changed")
	}
}

func TestPublishedStatesAreNeverModified(t *testing.T) {
	a := seeded(t)
	old := a.fsm.State()
	frozen := old.Clone()
	a.must(AlterTopicConfig{Name: "orders", Set: map[string]string{"retention.ms": "1"}})
	a.must(ReassignPartition{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b3"}})
	a.must(RegisterBroker{Broker: Broker{ID: "b1", Rack: "moved"}})
	a.must(SetMetaVoters{IDs: []string{"b1"}})
	a.must(DeleteTopic{Name: "orders"})
	if !reflect.DeepEqual(old, frozen) {
		t.Fatalf("an earlier published state was modified:\n%+v\n%+v", old, frozen)
	}
}

func TestStateHelpers(t *testing.T) {
	a := seeded(t)
	a.must(CreateTopic{Name: "a", Config: DefaultTopicConfig(), Partitions: assignment([]string{"b3", "b1"})})
	s := a.fsm.State()
	load := s.Load()
	wantReplicas := map[string]int{"b1": 2, "b2": 2, "b3": 2}
	wantLeaders := map[string]int{"b1": 1, "b2": 1, "b3": 1}
	if !reflect.DeepEqual(load.Replicas, wantReplicas) || !reflect.DeepEqual(load.Leaders, wantLeaders) {
		t.Fatalf("load %+v", load)
	}
	on := s.PartitionsOn("b1")
	want := []PartitionRef{
		{Topic: "a", TopicID: 5, Partition: 0, Replicas: []string{"b3", "b1"}},
		{Topic: "orders", TopicID: 4, Partition: 0, Replicas: []string{"b1", "b2"}},
	}
	if !reflect.DeepEqual(on, want) {
		t.Fatalf("PartitionsOn(b1) = %+v", on)
	}
	on[0].Replicas[0] = "mutated"
	if p, _ := s.Topic("a"); p.Partitions[0].Replicas[0] != "b3" {
		t.Fatal("PartitionRef shares its replica slice with the state")
	}
	if all := s.Partitions(); len(all) != 3 || all[2].Placement().Topic != "orders" {
		t.Fatalf("Partitions() = %+v", all)
	}
}

func TestPlacementFeedsCreateTopic(t *testing.T) {
	// The controller's path: limits, placement, Check, then Apply.
	a := newApplier(t)
	a.brokers("b1", "b2", "b3")
	s := a.fsm.State()
	if err := DefaultLimits().ValidatePartitions(12); err != nil {
		t.Fatal(err)
	}
	replicas, err := placement.AssignTopic(s.Nodes(s.BrokerIDs()), s.Load(), 12, 3)
	if err != nil {
		t.Fatal(err)
	}
	cmd := CreateTopic{Name: "events", Config: DefaultTopicConfig(), Partitions: assignment(replicas...)}
	if err := s.Check(cmd); err != nil {
		t.Fatal(err)
	}
	a.must(cmd)
	if l := a.fsm.State().Load(); l.Leaders["b1"] != 4 || l.Leaders["b2"] != 4 || l.Leaders["b3"] != 4 {
		t.Fatalf("leaders %v", l.Leaders)
	}
	_, err = placement.AssignTopic(s.Nodes(s.BrokerIDs()), s.Load(), 1, 4)
	var ne *placement.NotEnoughNodesError
	if !errors.As(err, &ne) || ne.Want != 4 || ne.Have != 3 {
		t.Fatalf("err = %v", err)
	}
}
