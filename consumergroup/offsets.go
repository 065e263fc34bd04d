package consumergroup

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Committed is a group's committed position in one partition: the offset of
// the next record to consume.
type Committed struct {
	Offset     int64
	Metadata   string
	CommitTime time.Time
}

// offsetTable is the materialised content of one offsets partition: the
// latest committed offset per group and partition.
//
// Checkpoints: a checkpoint-begin entry opens a shadow table that every
// later entry also updates; the matching checkpoint-end replaces the table
// by the shadow. Entries before the begin are then no longer needed, and a
// checkpoint cut short (its writer lost leadership) is simply superseded by
// the next one.
type offsetTable struct {
	groups  map[string]map[TopicPartition]Committed
	shares  map[string]*shareGroupState
	members map[string]*groupSnapshot // latest membership snapshot per group

	shadow        map[string]map[TopicPartition]Committed
	shadowShares  map[string]*shareGroupState
	shadowMembers map[string]*groupSnapshot
	shadowBegin   int64 // offset of the open checkpoint's begin entry; -1 if none
}

func newOffsetTable() *offsetTable {
	return &offsetTable{groups: map[string]map[TopicPartition]Committed{}, shares: map[string]*shareGroupState{},
		members: map[string]*groupSnapshot{}, shadowBegin: -1}
}

// apply applies the entry stored at offset. It returns the begin offset of
// a checkpoint it completed, or -1.
func (t *offsetTable) apply(offset int64, e entry) (completed int64) {
	if e.cmd != nil {
		e.cmd.apply(t.shares)
		if t.shadowShares != nil {
			e.cmd.apply(t.shadowShares)
		}
		return -1
	}
	switch e.Kind {
	case kindCommit:
		c := Committed{Offset: e.Offset, Metadata: e.Metadata, CommitTime: time.UnixMilli(e.CommitTime)}
		tp := TopicPartition{Topic: e.Topic, Partition: e.Partition}
		setCommitted(t.groups, e.Group, tp, c)
		if t.shadow != nil {
			setCommitted(t.shadow, e.Group, tp, c)
		}
	case kindDeleteGroup:
		delete(t.groups, e.Group)
		delete(t.members, e.Group)
		if t.shadow != nil {
			delete(t.shadow, e.Group)
			delete(t.shadowMembers, e.Group)
		}
	case kindGroupState:
		setSnapshot(t.members, e)
		if t.shadowMembers != nil {
			setSnapshot(t.shadowMembers, e)
		}
	case kindCheckpointBegin:
		t.shadow = map[string]map[TopicPartition]Committed{}
		t.shadowShares = map[string]*shareGroupState{}
		t.shadowMembers = map[string]*groupSnapshot{}
		t.shadowBegin = offset
	case kindCheckpointEnd:
		if t.shadow == nil || e.Begin != t.shadowBegin {
			return -1 // the end of a checkpoint another one superseded
		}
		t.groups, t.shadow = t.shadow, nil
		t.shares, t.shadowShares = t.shadowShares, nil
		t.members, t.shadowMembers = t.shadowMembers, nil
		begin := t.shadowBegin
		t.shadowBegin = -1
		return begin
	}
	return -1
}

// setSnapshot keeps the newest snapshot of a group; one without members
// forgets the group's membership.
func setSnapshot(m map[string]*groupSnapshot, e entry) {
	if e.GroupState == nil {
		return
	}
	if old := m[e.Group]; old != nil && old.Version > e.GroupState.Version {
		return
	}
	if len(e.GroupState.Members) == 0 {
		delete(m, e.Group)
		return
	}
	m[e.Group] = e.GroupState
}

func setCommitted(m map[string]map[TopicPartition]Committed, group string, tp TopicPartition, c Committed) {
	g := m[group]
	if g == nil {
		g = map[TopicPartition]Committed{}
		m[group] = g
	}
	g[tp] = c
}

// group returns a copy of one group's committed offsets.
func (t *offsetTable) group(id string) map[TopicPartition]Committed {
	return maps.Clone(t.groups[id])
}

// groupIDs returns the groups with committed offsets, sorted.
func (t *offsetTable) groupIDs() []string {
	return slices.Sorted(maps.Keys(t.groups))
}

// checkpointEntries returns the commits that restate the whole table, in a
// deterministic order.
func (t *offsetTable) checkpointEntries() []entry {
	var out []entry
	for _, g := range t.groupIDs() {
		offs := t.groups[g]
		tps := slices.SortedFunc(maps.Keys(offs), compareTP)
		for _, tp := range tps {
			c := offs[tp]
			out = append(out, entry{Kind: kindCommit, Group: g, Topic: tp.Topic, Partition: tp.Partition,
				Offset: c.Offset, Metadata: c.Metadata, CommitTime: c.CommitTime.UnixMilli()})
		}
	}
	for _, g := range slices.Sorted(maps.Keys(t.members)) {
		out = append(out, entry{Kind: kindGroupState, Group: g, GroupState: t.members[g]})
	}
	for _, g := range slices.Sorted(maps.Keys(t.shares)) {
		out = append(out, shareEntry(&shareStateCmd{Group: g, State: t.shares[g].clone()}))
	}
	return out
}

func compareTP(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}
