package partition

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/record"
)

// setBounds gives b to every running replica and to those started later.
func (c *testCluster) setBounds(b Bounds) {
	c.t.Helper()
	c.bounds.Store(&b)
	for _, nd := range c.running() {
		if err := nd.r().SetBounds(b); err != nil {
			c.t.Fatal(err)
		}
	}
}

// waitStart waits until every running replica's log starts at start.
func (c *testCluster) waitStart(timeout time.Duration, start int64) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("all replicas starting at %d", start), func() bool {
		for _, nd := range c.running() {
			if s, _ := held(nd); s != start {
				return false
			}
		}
		return true
	})
}

// held returns a replica's log start and end.
func held(nd *testNode) (start, end int64) { return nd.r().Offsets() }

// fillUntilFull produces batches of n records with the idempotent producer
// pid from seq on until the partition refuses one as full, and returns the
// next sequence and the refusal.
func (c *testCluster) fillUntilFull(ctx context.Context, acks *ackLog, pid int64, seq int32, n int) (int32, error) {
	c.t.Helper()
	for ; ; seq += int32(n) {
		res, err := c.produceRetrying(ctx, testBatch(c.t, pid, seq, n))
		if errors.Is(err, ErrFull) {
			return seq, err
		}
		if err != nil {
			c.t.Fatalf("producer %d seq %d: %v", pid, seq, err)
		}
		acks.add(pid, seq, res)
	}
}

func TestRejectBoundHoldsUnderConcurrentProducers(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.setBounds(Bounds{Topic: "orders", MaxMessages: 200, Overflow: OverflowReject})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acks := &ackLog{}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for p := int64(0); p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.fillUntilFull(ctx, acks, p, 0, 1+int(p%3))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var full *FullError
		if !errors.As(err, &full) || full.Limit != "max.messages" || full.Max != 200 {
			t.Fatalf("producer stopped with %v, want a max.messages FullError", err)
		}
	}
	// Every producer was refused; whatever room concurrent reservations
	// left is taken now, one record at a time: the bound is met exactly.
	if _, err := c.fillUntilFull(ctx, acks, 100, 0, 1); err == nil {
		t.Fatal("no refusal")
	} else if got := err.Error(); got != "topic orders is full (max.messages=200)" {
		t.Fatalf("error text %q", got)
	}
	leader := c.waitLeader(10 * time.Second)
	start, end := held(leader)
	if start != 0 || end != 200 {
		t.Fatalf("leader holds [%d, %d), want exactly 200 records from 0", start, end)
	}
	c.waitConverged(20*time.Second, end)
	verifyLog(t, c.assertIdentical(), acks)
}

func TestRejectBoundIsTheSameAfterFailover(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.setBounds(Bounds{Topic: "orders", MaxMessages: 100, Overflow: OverflowReject})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	acks := &ackLog{}
	for seq := int32(0); seq < 60; seq += 3 {
		res, err := c.produceRetrying(ctx, testBatch(t, 1, seq, 3))
		if err != nil {
			t.Fatal(err)
		}
		acks.add(1, seq, res)
	}
	old := c.waitLeader(10 * time.Second)
	c.crash(old)
	var wg sync.WaitGroup
	for p := int64(2); p < 5; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.fillUntilFull(ctx, acks, p, 0, 2)
		}()
	}
	wg.Wait()
	if _, err := c.fillUntilFull(ctx, acks, 9, 0, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err)
	}
	leader := c.waitLeader(10 * time.Second)
	if leader == old {
		t.Fatal("crashed replica still leads")
	}
	if start, end := held(leader); start != 0 || end != 100 {
		t.Fatalf("new leader holds [%d, %d), want [0, 100)", start, end)
	}
	c.start(old)
	c.waitConverged(20*time.Second, 100)
	verifyLog(t, c.assertIdentical(), acks)
}

// readFrom returns the records of a replica from offset on, as a consumer
// sees them (records of the first batch below offset skipped).
func readFrom(t testing.TB, r *Replica, offset int64) []record.Record {
	t.Helper()
	_, hw := r.Offsets()
	var out []record.Record
	for off := offset; off < hw; {
		res, err := r.Fetch(context.Background(), FetchRequest{Offset: off, MaxBytes: 1 << 20, AllowFollower: true})
		if err != nil {
			t.Fatalf("fetch %d on %s: %v", off, r.ID(), err)
		}
		for b, rest := res.Batches, []byte(nil); len(b) > 0; b = rest {
			var batch []byte
			batch, rest, err = record.NextBatch(b)
			if err != nil {
				t.Fatal(err)
			}
			h, recs, err := record.Decode(batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if rec.Offset >= off {
					out = append(out, rec)
				}
			}
			off = h.NextOffset()
		}
	}
	return out
}

// assertSameWindow checks every running replica starts at start, ends at
// end, and serves the same records from start on.
func (c *testCluster) assertSameWindow(start, end int64) []record.Record {
	c.t.Helper()
	var ref []record.Record
	for _, nd := range c.running() {
		s, e := held(nd)
		if s != start || e != end {
			c.t.Fatalf("replica %s holds [%d, %d), want [%d, %d)", nd.id, s, e, start, end)
		}
		got := readFrom(c.t, nd.r(), start)
		if int64(len(got)) != end-start {
			c.t.Fatalf("replica %s serves %d records from %d, want %d", nd.id, len(got), start, end-start)
		}
		if ref == nil {
			ref = got
			continue
		}
		for i := range got {
			if got[i].Offset != ref[i].Offset || string(got[i].Value) != string(ref[i].Value) {
				c.t.Fatalf("replica %s record %d = %d/%s, want %d/%s", nd.id, i, got[i].Offset, got[i].Value, ref[i].Offset, ref[i].Value)
			}
		}
	}
	return ref
}

func TestDropOldestKeepsTheNewestAcrossFailoverAndRestart(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 40; cfg.TrailingLogs = 10 })
	c.setBounds(Bounds{Topic: "ticks", MaxMessages: 50, Overflow: OverflowDropOldest})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	acks := &ackLog{}
	produce := func(p int64, from, to int32) {
		var wg sync.WaitGroup
		for q := p; q < p+2; q++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for seq := from; seq < to; seq += 3 {
					res, err := c.produceRetrying(ctx, testBatch(t, q, seq, 3))
					if err != nil {
						t.Errorf("producer %d seq %d: %v", q, seq, err)
						return
					}
					acks.add(q, seq, res)
				}
			}()
		}
		wg.Wait()
	}
	produce(0, 0, 90) // 2 producers x 30 batches x 3 records
	old := c.waitLeader(10 * time.Second)
	c.crash(old)
	produce(0, 90, 150)
	c.start(old)
	leader := c.waitLeader(10 * time.Second)
	_, end := held(leader)
	if end != 300 {
		t.Fatalf("end %d, want 300 records produced", end)
	}
	c.waitConverged(20*time.Second, end)
	before := c.assertSameWindow(end-50, end)

	// The window is a function of the entries, not of memory: crash every
	// replica and it comes back the same.
	for _, nd := range c.nodes {
		c.crash(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
	}
	c.waitLeader(10 * time.Second)
	c.waitConverged(20*time.Second, end)
	// A restarted replica's start comes from its last sync and moves up as
	// it replays its Raft tail.
	c.waitStart(20*time.Second, end-50)
	after := c.assertSameWindow(end-50, end)
	for i := range before {
		if string(before[i].Value) != string(after[i].Value) {
			t.Fatalf("record %d changed across a restart", before[i].Offset)
		}
	}
	// A consumer behind the start is told where it now is.
	_, err := c.waitLeader(10*time.Second).r().Fetch(ctx, FetchRequest{Offset: 10})
	var oor *log.OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Start != end-50 || oor.End != end {
		t.Fatalf("fetch below the start: %v, want OffsetOutOfRange [%d, %d]", err, end-50, end)
	}
	// The newest acknowledged writes are all there.
	for _, r := range after {
		if len(r.Value) == 0 {
			t.Fatalf("empty record at %d", r.Offset)
		}
	}
}

func TestDropOldestByBytesOnEveryReplica(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	const maxBytes = 4096
	c.setBounds(Bounds{Topic: "ticks", MaxBytes: maxBytes, Overflow: OverflowDropOldest})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for seq := int32(0); seq < 120; seq += 4 {
		n := 1 + int(seq/4)%4
		if _, err := c.produceRetrying(ctx, testBatch(t, 5, seq, n)); err != nil {
			t.Fatal(err)
		}
		seq += int32(n) - 4
	}
	leader := c.waitLeader(10 * time.Second)
	start, end := held(leader)
	c.waitConverged(20*time.Second, end)
	for _, nd := range c.running() {
		n, err := nd.r().fsm.log().HeldBytes()
		if err != nil || n > maxBytes || n < maxBytes/2 {
			t.Fatalf("replica %s holds %d bytes (%v), want (%d, %d]", nd.id, n, err, maxBytes/2, maxBytes)
		}
	}
	if start == 0 {
		t.Fatal("nothing dropped")
	}
	c.assertSameWindow(start, end)
	// A batch larger than the bound can never fit: refused, nothing written.
	big := testBatch(t, -1, 0, 600)
	if len(big) <= maxBytes {
		t.Fatalf("test batch of %d bytes is not above the bound", len(big))
	}
	if _, err := leader.r().Produce(ctx, big, 0); !errors.Is(err, ErrFull) {
		t.Fatalf("oversized batch: %v, want ErrFull", err)
	}
}

func TestNewReplicaGetsTheDropOldestStartFromASnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 30; cfg.TrailingLogs = 5 })
	c.setBounds(Bounds{Topic: "ticks", MaxMessages: 25, Overflow: OverflowDropOldest})
	ctx := context.Background()
	for seq := int32(0); seq < 200; seq += 2 {
		if _, err := c.produceRetrying(ctx, testBatch(t, 7, seq, 2)); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.waitLeader(10 * time.Second)
	if err := leader.r().Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	nd := c.addNode(filepath.Join(t.TempDir(), "n3"))
	if err := leader.r().AddVoter(ctx, nd.id, nd.r().Addr()); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(20*time.Second, 200)
	c.waitStart(20*time.Second, 175)
	c.assertSameWindow(175, 200)
}

func TestBoundedAppendCommandRoundTrips(t *testing.T) {
	batch := []byte("batch bytes")
	cmd := encodeBoundedAppend(100000, 1<<20, batch)
	if cmd[0] != opAppendDropOldest {
		t.Fatalf("type %d", cmd[0])
	}
	m, b, got, err := decodeBoundedAppend(cmd[1:])
	if err != nil || m != 100000 || b != 1<<20 || string(got) != string(batch) {
		t.Fatalf("decoded %d %d %q %v", m, b, got, err)
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x05, 0x80}} {
		if _, _, _, err := decodeBoundedAppend(bad); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("decode %x: %v, want ErrInvalidBatch", bad, err)
		}
	}
}

func TestFullErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *FullError
		want string
	}{
		{&FullError{Topic: "orders", Limit: "max.messages", Max: 100000}, "topic orders is full (max.messages=100000)"},
		{&FullError{Topic: "orders", Limit: "max.bytes", Max: 1048576}, "topic orders is full (max.bytes=1048576)"},
		{&FullError{Limit: "max.messages", Max: 5, Batch: 9}, "partition cannot take a batch of 9 (max.messages=5): send smaller batches"},
	} {
		if got := tc.err.Error(); got != tc.want || !errors.Is(tc.err, ErrFull) {
			t.Errorf("%q, want %q", got, tc.want)
		}
	}
}

func TestRetryOfAWrittenBatchIsADuplicateEvenWhenFull(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.setBounds(Bounds{Topic: "orders", MaxMessages: 10, Overflow: OverflowReject})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last ProduceResult
	for seq := int32(0); seq < 10; seq += 2 {
		res, err := c.produceRetrying(ctx, testBatch(t, 4, seq, 2))
		if err != nil {
			t.Fatal(err)
		}
		last = res
	}
	// The partition is full. A retry of the last batch (its ack was lost,
	// say) is answered with the original offsets, not refused.
	res, err := c.produceRetrying(ctx, testBatch(t, 4, 8, 2))
	if err != nil || !res.Duplicate || res.BaseOffset != last.BaseOffset || res.LastOffset != 9 {
		t.Fatalf("retry when full: %+v, %v; want a duplicate at %d", res, err, last.BaseOffset)
	}
	// The next batch of the same producer is refused as full, and so is a
	// batch without a producer id; nothing is written on any replica.
	for _, b := range [][]byte{testBatch(t, 4, 10, 1), testBatch(t, -1, 0, 1)} {
		if _, err := c.produceRetrying(ctx, b); !errors.Is(err, ErrFull) || err.Error() != "topic orders is full (max.messages=10)" {
			t.Fatalf("new batch when full: %v", err)
		}
	}
	c.waitConverged(20*time.Second, 10)
	c.assertSameWindow(0, 10)
}
