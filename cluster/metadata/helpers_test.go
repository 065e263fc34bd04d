package metadata

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// applier feeds commands to an FSM as Raft would, with increasing indexes.
type applier struct {
	t     testing.TB
	fsm   *FSM
	index uint64
}

func newApplier(t testing.TB) *applier {
	return &applier{t: t, fsm: NewFSM()}
}

// raw applies one entry's bytes.
func (a *applier) raw(data []byte) *Result {
	a.t.Helper()
	a.index++
	resp := a.fsm.Apply(&raft.Log{Index: a.index, Term: 1, Type: raft.LogCommand, Data: data})
	r, _ := ResultOf(resp)
	if r.Index != a.index {
		a.t.Fatalf("apply returned %#v", resp)
	}
	return &r
}

// apply encodes and applies cmd and returns its result.
func (a *applier) apply(cmd Command) *Result {
	a.t.Helper()
	data, err := EncodeCommand(cmd)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.raw(data)
}

// must applies cmd and fails the test if it is rejected.
func (a *applier) must(cmd Command) *Result {
	a.t.Helper()
	r := a.apply(cmd)
	if r.Err != nil {
		a.t.Fatalf("%s rejected: %v", cmd.Type(), r.Err)
	}
	return r
}

// brokers registers b1..bn (rack r<i%racks> when racks > 0).
func (a *applier) brokers(ids ...string) {
	a.t.Helper()
	for _, id := range ids {
		a.must(RegisterBroker{Broker: Broker{ID: id, GRPCAddr: id + ":9400", RaftAddr: id + ":9401"}})
	}
}

func assignment(replicas ...[]string) []PartitionAssignment {
	out := make([]PartitionAssignment, len(replicas))
	for i, r := range replicas {
		out[i] = PartitionAssignment{Partition: int32(i), Replicas: r}
	}
	return out
}

func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// withoutIndex returns a copy of s with Index cleared, to compare states
// across rejected commands (which advance only the index).
func withoutIndex(s *State) *State {
	c := s.Clone()
	c.Index = 0
	return c
}
