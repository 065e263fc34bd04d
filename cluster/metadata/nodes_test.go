package metadata

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestCreatePartitionsAppendsAndNeverShrinks(t *testing.T) {
	a := seeded(t) // orders: id 4, 2 partitions, replication 2
	a.must(CreatePartitions{Topic: "orders", TopicID: 4, Partitions: []PartitionAssignment{
		{Partition: 2, Replicas: []string{"b3", "b1"}},
		{Partition: 3, Replicas: []string{"b2", "b3"}},
	}})
	got, _ := a.fsm.State().Topic("orders")
	if len(got.Partitions) != 4 {
		t.Fatalf("partitions %+v", got.Partitions)
	}
	// New partitions bootstrap with their first replica set.
	if p := got.Partitions[3]; !slices.Equal(p.Replicas, []string{"b2", "b3"}) || !slices.Equal(p.Initial, p.Replicas) {
		t.Fatalf("partition 3: %+v", p)
	}
	if err := a.fsm.State().Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cmd  CreatePartitions
		want string // in the error
	}{
		{"retried command", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(2, []string{"b1"})}, "can only be added after the last one"},
		{"gap", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(5, []string{"b1"})}, "can only be added after the last one"},
		{"nothing", CreatePartitions{Topic: "orders", TopicID: 4}, "no partitions to add"},
		{"no topic id", CreatePartitions{Topic: "orders", Partitions: assignmentFrom(4, []string{"b1"})}, "topic_id"},
		{"stale topic id", CreatePartitions{Topic: "orders", TopicID: 3, Partitions: assignmentFrom(4, []string{"b1"})}, "unknown topic"},
		{"out of order", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: []PartitionAssignment{{Partition: 4, Replicas: []string{"b1"}}, {Partition: 6, Replicas: []string{"b1"}}}}, "numbered 4.."},
		{"unknown broker", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(4, []string{"b9"})}, "unknown broker"},
		{"duplicate replica", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(4, []string{"b1", "b1"})}, "twice"},
		{"over the cluster limit", CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(4, []string{"b1"}), MaxTotalPartitions: 4}, "max-partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := a.fsm.State()
			r := a.apply(tt.cmd)
			if r.Err == nil || !strings.Contains(r.Err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", r.Err, tt.want)
			}
			if !reflect.DeepEqual(withoutIndex(before), withoutIndex(a.fsm.State())) {
				t.Fatal("a rejected command changed the state")
			}
		})
	}
	a.must(CreateTopic{Name: "__consumer_offsets", Internal: true, Config: DefaultTopicConfig(), Partitions: assignment([]string{"b1"})})
	internal, _ := a.fsm.State().Topic("__consumer_offsets")
	if r := a.apply(CreatePartitions{Topic: "__consumer_offsets", TopicID: internal.ID, Partitions: assignmentFrom(1, []string{"b1"})}); !errors.Is(r.Err, ErrInternalTopic) {
		t.Fatalf("internal topic: %v", r.Err)
	}
}

func assignmentFrom(first int32, replicas ...[]string) []PartitionAssignment {
	out := assignment(replicas...)
	for i := range out {
		out[i].Partition = first + int32(i)
	}
	return out
}

func TestSetNodeModeSetsOnlyTheFieldsGiven(t *testing.T) {
	a := seeded(t)
	yes, no := true, false
	a.must(SetNodeMode{Node: "b2", Maintenance: &yes})
	a.must(SetNodeMode{Node: "b2", Decommission: &yes})
	if m := a.fsm.State().Mode("b2"); !m.Maintenance || !m.Decommission {
		t.Fatalf("mode %+v", m)
	}
	before := a.fsm.State()
	a.must(SetNodeMode{Node: "b2", Maintenance: &no})
	if m := a.fsm.State().Mode("b2"); m.Maintenance || !m.Decommission {
		t.Fatalf("mode %+v", m)
	}
	// Earlier states are never changed in place.
	if m := before.Mode("b2"); !m.Maintenance {
		t.Fatalf("an earlier state changed: %+v", m)
	}
	a.must(SetNodeMode{Node: "b2", Decommission: &no})
	if _, ok := a.fsm.State().NodeModes["b2"]; ok {
		t.Fatal("a node back in normal service keeps an entry")
	}
	if r := a.apply(SetNodeMode{Node: "b9", Maintenance: &yes}); !errors.Is(r.Err, ErrUnknownBroker) {
		t.Fatalf("unknown node: %v", r.Err)
	}
	if r := a.apply(SetNodeMode{Node: "b1"}); !errors.Is(r.Err, ErrInvalidArgument) {
		t.Fatalf("no change: %v", r.Err)
	}
	if r := a.apply(SetNodeMode{Node: "bad id!", Maintenance: &yes}); !errors.Is(r.Err, ErrInvalidArgument) {
		t.Fatalf("bad id: %v", r.Err)
	}
	// Modes survive a snapshot.
	a.must(SetNodeMode{Node: "b3", Maintenance: &yes})
	f := NewFSM()
	if err := f.Restore(readCloser(snapshotBytes(t, a.fsm))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.State().NodeModes, a.fsm.State().NodeModes) {
		t.Fatalf("restored modes %v, want %v", f.State().NodeModes, a.fsm.State().NodeModes)
	}
}

func TestNodeCommandsRoundTrip(t *testing.T) {
	yes := true
	for _, cmd := range []Command{
		SetNodeMode{Node: "b1", Decommission: &yes},
		CreatePartitions{Topic: "orders", TopicID: 4, Partitions: assignmentFrom(2, []string{"b1", "b2"}), MaxTotalPartitions: 10},
	} {
		data, err := EncodeCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, cmd) {
			t.Fatalf("round trip: %#v, want %#v", got, cmd)
		}
		// Unknown fields are refused, as for every command.
		bad := append(data[:len(data)-2:len(data)-2], []byte(`,"extra":1}`+"\n")...)
		if _, err := DecodeCommand(bad); !errors.Is(err, ErrMalformedCommand) {
			t.Fatalf("%s with an unknown field: %v", cmd.Type(), err)
		}
	}
}
