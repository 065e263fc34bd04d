package consumergroup

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// fuzzEntries are entries of every kind as the coordinator writes them:
// the seeds the fuzzers mutate.
func fuzzEntries() []entry {
	cfg := shareDefaults()
	state := newShareGroupState()
	state.Partitions["jobs/0"] = &sharePartition{Start: 2,
		Recs:       map[int64]*shareRec{2: {State: recAcquired, Deliveries: 1, Owner: "m", LockUntil: 5}, 4: {State: recDead}},
		Quarantine: map[string]*quarantine{"k": {DeadOffset: 1, RedriveOffset: -1}}}
	state.DeadLetters = []*deadLetter{{Topic: "jobs", Offset: 1, DLQTopic: "jobs.dlq.q", State: dlPending, Key: []byte("k")}}
	return []entry{
		{Kind: kindCommit, Group: "g", Topic: "t", Partition: 1, Offset: 7, Metadata: "m", CommitTime: 1},
		{Kind: kindDeleteGroup, Group: "g"},
		{Kind: kindCheckpointBegin},
		{Kind: kindCheckpointEnd, Begin: 2},
		{Kind: kindGroupState, Group: "g", GroupState: &groupSnapshot{Version: 1, Epoch: 2, Members: []memberSnapshot{
			{ID: "m", Epoch: 2, Topics: []string{"t"}, Assigned: []TopicPartition{{"t", 0}}, Target: []TopicPartition{{"t", 1}}}}}},
		shareEntry(&shareConfigCmd{Group: "q", Config: cfg}),
		shareEntry(&sharePauseCmd{Group: "q", Reason: "flood"}),
		shareEntry(&shareResumeCmd{Group: "q"}),
		shareEntry(&shareInitCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 1}),
		shareEntry(&shareInitCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 0, Action: actionReset}),
		shareEntry(&shareAcquireCmd{Group: "q", Topic: "jobs", Partition: 0, Offsets: []int64{1, 2, 3}, Member: "m", LockUntil: 9, At: 1}),
		shareEntry(&shareAckCmd{Group: "q", Topic: "jobs", Partition: 0, Offsets: []int64{1, 2}, Ack: ackRelease, Avail: []int64{4}, Err: "e"}),
		shareEntry(&shareAckCmd{Group: "q", Topic: "jobs", Partition: 0, Offsets: []int64{1}, Ack: ackAccept}),
		shareEntry(&shareAckCmd{Group: "q", Topic: "jobs", Partition: 0, Offsets: []int64{3}, Ack: ackRenew, LockUntil: 10}),
		shareEntry(&shareDeadCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 2, Key: []byte("k"), Quarantine: true}),
		shareEntry(&shareDeadLetteredCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 2, DLQTopic: "jobs.dlq.q", DLQOffset: 0, Key: []byte("k")}),
		shareEntry(&shareResolveCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 2, Action: actionRedrive, RedriveOffset: 8}),
		shareEntry(&shareResolveCmd{Group: "q", Topic: "jobs", Partition: 0, Offset: 2, Action: actionDiscard}),
		shareEntry(&shareLeaveCmd{Group: "q", Member: "m"}),
		shareEntry(&shareStateCmd{Group: "q", State: state}),
		shareEntry(&shareStateCmd{Group: "gone"}),
	}
}

func fuzzSeedValues(t testing.TB) [][]byte {
	out := [][]byte{[]byte(craftedEntry), []byte("x"), nil}
	for _, e := range fuzzEntries() {
		v, err := json.Marshal(e)
		if e.cmd != nil {
			v, err = encodeShareCmd(e.cmd)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// replayedTable applies values as records of the offsets log would be:
// decoded, checked, applied; and reports which decoded.
func replayedTable(t *testing.T, values [][]byte) *offsetTable {
	table := newOffsetTable()
	for i, v := range values {
		e, err := decodeEntry(record.Record{Offset: int64(i), Value: v})
		if err != nil {
			continue
		}
		table.apply(int64(i), e)
	}
	return table
}

// checkRestatable is the invariant the fuzzers check on any table replay
// can build: a checkpoint restates it in entries that decode, pass the
// checks, and rebuild the same table; nothing along the way panics.
func checkRestatable(t *testing.T, table *offsetTable) {
	t.Helper()
	live := table.checkpointEntries()
	batches, err := encodeEntries(live, time.UnixMilli(0))
	if err != nil {
		t.Fatalf("checkpoint does not encode: %v", err)
	}
	again := newOffsetTable()
	n := int64(0)
	for _, b := range batches {
		err := record.Records(b, func(r record.Record) error {
			e, err := decodeEntry(r)
			if err != nil {
				t.Fatalf("a checkpoint entry fails its own checks: %v", err)
			}
			again.apply(n, e)
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(again.groupIDs(), table.groupIDs()) || !slices.Equal(slices.Sorted(maps.Keys(again.shares)), slices.Sorted(maps.Keys(table.shares))) {
		t.Fatalf("checkpoint lost groups: %v/%v, want %v/%v", again.groupIDs(), slices.Sorted(maps.Keys(again.shares)),
			table.groupIDs(), slices.Sorted(maps.Keys(table.shares)))
	}
	for _, g := range table.groupIDs() {
		if !maps.Equal(again.group(g), table.group(g)) {
			t.Fatalf("group %s: checkpoint restates %v, want %v", g, again.group(g), table.group(g))
		}
	}
}

// FuzzDecodeEntry feeds arbitrary record values to the offsets-log replay:
// decodeEntry must refuse what apply cannot take, and whatever it accepts
// must apply and restate in a checkpoint without a panic.
func FuzzDecodeEntry(f *testing.F) {
	for i, v := range fuzzSeedValues(f) {
		f.Add(v, uint8(i))
	}
	seeds := fuzzSeedValues(f)
	f.Fuzz(func(t *testing.T, value []byte, at uint8) {
		// Applied alone, and among the seed entries (so that acks and
		// resolves meet partitions and dead letters that exist).
		checkRestatable(t, replayedTable(t, [][]byte{value}))
		i := int(at) % (len(seeds) + 1)
		checkRestatable(t, replayedTable(t, slices.Concat(seeds[:i], [][]byte{value}, seeds[i:])))
	})
}

// FuzzShareStateApply feeds a newline-separated sequence of arbitrary
// entries to one share group's state, then uses the state as a
// coordinator would: clone it, parse its config, checkpoint it, describe
// it. None of it may panic.
func FuzzShareStateApply(f *testing.F) {
	seeds := fuzzSeedValues(f)
	f.Add(bytes.Join(seeds, []byte("\n")))
	f.Add([]byte(craftedEntry))
	for _, v := range seeds {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		defer func() {
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v: replay must not loop on any input", d)
			}
		}()
		lines := bytes.Split(data, []byte("\n"))
		if len(lines) > 64 {
			lines = lines[:64]
		}
		table := replayedTable(t, lines)
		for g, st := range table.shares {
			c := st.clone()
			c.config()
			if len(c.Partitions) != len(st.Partitions) {
				t.Fatalf("group %s: clone has %d partitions, want %d", g, len(c.Partitions), len(st.Partitions))
			}
		}
		checkRestatable(t, table)
		describeAll(t, table)
	})
}

// describeAll describes every share group of table through the
// coordinator's own code, on a coordinator with no goroutines running.
func describeAll(t *testing.T, table *offsetTable) {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Now = func() time.Time { return time.UnixMilli(5) }
	c := &Coordinator{cfg: cfg.withDefaults(), host: &fakeHost{topics: map[string]int32{}}, logger: cfg.Logger, metrics: newMetrics(nil)}
	s := &shard{c: c, table: table, groups: map[string]*group{}}
	for g := range table.shares {
		d, err := c.describeShare(context.Background(), s, g, false)
		if err != nil {
			t.Fatalf("describe %s: %v", g, err)
		}
		if len(d.Partitions) != len(table.shares[g].Partitions) {
			t.Fatalf("describe %s: %d partitions, want %d", g, len(d.Partitions), len(table.shares[g].Partitions))
		}
	}
	for g := range table.members {
		if restoreGroup(g, table.members[g], &c.cfg, cfg.Now()) == nil {
			t.Fatalf("restore %s: nil", g)
		}
	}
}
