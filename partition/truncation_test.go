package partition

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/record"
)

// holdsValue reports whether a replica serves a record with value v.
func holdsValue(t *testing.T, r *Replica, v string) bool {
	t.Helper()
	data := readAll(t, r)
	for b := data; len(b) > 0; {
		batch, rest, err := record.NextBatch(b)
		if err != nil {
			t.Fatalf("%s: %v", r.ID(), err)
		}
		b = rest
		_, recs, err := record.Decode(batch)
		if err != nil {
			t.Fatalf("%s: %v", r.ID(), err)
		}
		for _, rec := range recs {
			if string(rec.Value) == v {
				return true
			}
		}
	}
	return false
}

// storedEntry returns the Raft entry at idx in a replica's log store.
func storedEntry(t *testing.T, r *Replica, idx uint64) raft.Log {
	t.Helper()
	var l raft.Log
	if err := r.logs.GetLog(idx, &l); err != nil {
		t.Fatalf("%s: raft log entry %d: %v", r.ID(), idx, err)
	}
	return l
}

// writeUncommitted hands a batch (producer 77, so its value is "p77-s0")
// to leader, whose quorum is gone, and waits until every replica in
// holders has stored the entry. It returns the entry's index and term.
func writeUncommitted(t *testing.T, leader *testNode, holders ...*testNode) (uint64, uint64) {
	t.Helper()
	base := leader.r().raft.LastIndex()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := leader.r().Produce(ctx, testBatch(t, 77, 0, 1), 0)
		done <- err
	}()
	waitFor(t, 5*time.Second, "the entry stored on the minority", func() bool {
		for _, nd := range append([]*testNode{leader}, holders...) {
			if nd.r().raft.LastIndex() <= base {
				return false
			}
		}
		return true
	})
	if err := <-done; err == nil {
		t.Fatal("a write stored only on a minority was acknowledged")
	}
	idx := base + 1
	l := storedEntry(t, leader.r(), idx)
	if l.Type != raft.LogCommand {
		t.Fatalf("entry %d is %v, want the batch", idx, l.Type)
	}
	for _, nd := range holders {
		if got := storedEntry(t, nd.r(), idx); got.Term != l.Term {
			t.Fatalf("%s holds term %d at %d, leader term %d", nd.id, got.Term, idx, l.Term)
		}
	}
	return idx, l.Term
}

// converge writes one batch through the current leader and waits until
// every running replica has applied it.
func (c *testCluster) converge(seq int32) {
	c.t.Helper()
	res, err := c.produceRetrying(context.Background(), testBatch(c.t, 5, seq, 1))
	if err != nil {
		c.t.Fatal(err)
	}
	c.waitConverged(20*time.Second, res.LastOffset+1)
}

func (c *testCluster) waitLeaderAmong(timeout time.Duration, among []*testNode) *testNode {
	c.t.Helper()
	var leader *testNode
	waitFor(c.t, timeout, "a ready leader on the majority side", func() bool {
		for _, nd := range among {
			if nd.r().IsLeader() {
				leader = nd
				return true
			}
		}
		return false
	})
	return leader
}

// A follower that stored entries of an old leader which never committed
// must never serve them: not while cut off, not after a restart with them
// still in its log, and not after the new leader truncated them away
// (before and after another restart).
func TestUncommittedFollowerTailIsTruncatedAndNeverServed(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	c.converge(0)
	leader := c.waitLeader(5 * time.Second)
	var follower *testNode
	var majority []*testNode
	for _, nd := range c.nodes {
		switch {
		case nd == leader:
		case follower == nil:
			follower = nd
		default:
			majority = append(majority, nd)
		}
	}
	for _, a := range []*testNode{leader, follower} {
		for _, b := range majority {
			c.net.Partition(a.id, b.id)
		}
	}
	idx, term := writeUncommitted(t, leader, follower)
	if ci := follower.r().raft.CommitIndex(); ci >= idx {
		t.Fatalf("follower commit index %d reached the uncommitted entry %d", ci, idx)
	}
	if holdsValue(t, follower.r(), "p77-s0") {
		t.Fatal("follower serves a stored, uncommitted record")
	}
	// Restart the follower with the entry in its log, still cut off.
	c.crash(follower)
	c.start(follower)
	if got := storedEntry(t, follower.r(), idx); got.Term != term {
		t.Fatalf("after restart the follower holds term %d at %d, want %d", got.Term, idx, term)
	}
	if holdsValue(t, follower.r(), "p77-s0") {
		t.Fatal("restarted follower serves a stored, uncommitted record")
	}

	c.waitLeaderAmong(10*time.Second, majority)
	c.net.Heal()
	c.converge(1)
	for _, nd := range c.running() {
		if holdsValue(t, nd.r(), "p77-s0") {
			t.Fatalf("%s serves the record no majority ever stored", nd.id)
		}
	}
	if got := storedEntry(t, follower.r(), idx); got.Term == term {
		t.Fatalf("follower still holds the old leader's entry at %d (term %d)", idx, term)
	}
	c.stop(follower)
	c.start(follower)
	c.converge(2)
	if holdsValue(t, follower.r(), "p77-s0") {
		t.Fatal("follower serves the truncated record after a restart")
	}
	c.assertIdentical()
}

// An entry stored only by an isolated leader is replaced by the majority's
// log when the partition heals, and stays gone across a crash.
func TestMinorityStoredEntryIsGoneAfterHeal(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.converge(0)
	old := c.waitLeader(5 * time.Second)
	c.net.Isolate(old.id)
	idx, term := writeUncommitted(t, old)
	var others []*testNode
	for _, nd := range c.nodes {
		if nd != old {
			others = append(others, nd)
		}
	}
	c.waitLeaderAmong(10*time.Second, others)
	c.net.Heal()
	c.converge(1)
	if got := storedEntry(t, old.r(), idx); got.Term == term {
		t.Fatalf("old leader still holds its uncommitted entry at %d (term %d)", idx, term)
	}
	c.crash(old)
	c.start(old)
	c.converge(2)
	for _, nd := range c.running() {
		if holdsValue(t, nd.r(), "p77-s0") {
			t.Fatalf("%s serves the record only a minority stored", nd.id)
		}
	}
	c.assertIdentical()
}

// A replica that was down while the others compacted their Raft logs past
// everything it has catches up by installing a snapshot, and its Raft log
// (cleared by the install) is consistent across a later restart.
func TestFarBehindReplicaInstallsSnapshotAndRestarts(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 50; cfg.TrailingLogs = 10 })
	ctx := context.Background()
	acks := &ackLog{}
	produce := func(from, to int32) {
		for seq := from; seq < to; seq += 2 {
			res, err := c.produceRetrying(ctx, testBatch(t, 3, seq, 2))
			if err != nil {
				t.Fatal(err)
			}
			acks.add(3, seq, res)
		}
	}
	produce(0, 20)
	leader := c.waitLeader(5 * time.Second)
	var behind *testNode
	for _, nd := range c.nodes {
		if nd != leader {
			behind = nd
			break
		}
	}
	lastSeen := behind.r().raft.LastIndex()
	c.stop(behind)
	produce(20, 600)
	leader = c.waitLeader(5 * time.Second)
	if err := leader.r().Snapshot(ctx); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := leader.r().logs.FirstIndex()
	if err != nil || first <= lastSeen+1 {
		t.Fatalf("leader's log starts at %d (%v); the test needs it past %d", first, err, lastSeen+1)
	}
	c.start(behind)
	_, hw := leader.r().Offsets()
	c.waitConverged(30*time.Second, hw)
	verifyLog(t, c.assertIdentical(), acks)
	produce(600, 640)
	c.stop(behind)
	c.start(behind)
	c.converge(0)
	verifyLog(t, c.assertIdentical(), acks)
}

// With AppendEntries limited to 64 KiB, a follower catching up on batches
// of ~40 KiB receives them one or two per RPC, and ends byte-identical.
func TestCatchUpWithAppendEntriesSplitByBytes(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.Raft.MaxAppendBytes = 64 << 10 })
	ctx := context.Background()
	leader := c.waitLeader(5 * time.Second)
	var lagging *testNode
	for _, nd := range c.nodes {
		if nd != leader {
			lagging = nd
			break
		}
	}
	c.stop(lagging)
	big := make([]byte, 40<<10)
	for seq := int32(0); seq < 60; seq++ {
		b, err := record.Encode(record.BatchOptions{Idempotent: true, ProducerID: 4, BaseSequence: 2 * seq},
			[]record.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(fmt.Sprintf("p4-s%d", seq))}, {Value: big}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.produceRetrying(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	c.start(lagging)
	c.converge(0)
	c.assertIdentical()
	if !holdsValue(t, lagging.r(), "p4-s59") {
		t.Fatal("the lagging follower did not receive the last large batch")
	}
}
