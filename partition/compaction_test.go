package partition

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// compactedCluster is a 3-replica cluster with small segments and
// compaction on; background checks run every interval.
func compactedCluster(t *testing.T, interval time.Duration) *testCluster {
	t.Helper()
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Log.SegmentBytes = 8 << 10
		cfg.CompactionCheckInterval = interval
		cfg.SnapshotThreshold = 1 << 20 // snapshots only when a test asks
		cfg.TrailingLogs = 10           // ... and then a new replica must install one
	})
	for _, nd := range c.nodes {
		if err := nd.r().SetCompaction(Compaction{Enabled: true, DeleteRetention: time.Hour, MinDirtyRatio: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// produceKeyed writes batches of 5 records, keys k0..k4 (testBatch's).
func produceKeyed(t *testing.T, c *testCluster, batches int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for seq := int32(0); seq < int32(batches*5); seq += 5 {
		if _, err := c.produceRetrying(ctx, testBatch(t, 11, seq, 5)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestThreeReplicasCompactToIdenticalLogs(t *testing.T) {
	c := compactedCluster(t, time.Hour)
	produceKeyed(t, c, 300)
	c.waitConverged(20*time.Second, 1500)
	now := time.Now()
	var sizes []int64
	for _, nd := range c.running() {
		st, err := nd.r().Compact(context.Background(), now)
		if err != nil {
			t.Fatalf("compact %s: %v", nd.id, err)
		}
		if st.Segments == 0 || st.BytesAfter >= st.BytesBefore {
			t.Fatalf("compact %s: %+v", nd.id, st)
		}
		sizes = append(sizes, nd.r().Size())
	}
	data := c.assertIdentical() // same batches at the same offsets
	// Below the active segment every key appears once; offsets only grow.
	active := c.nodes[0].r().fsm.log().Segments()
	activeBase := active[len(active)-1].BaseOffset
	seen := map[string]bool{}
	last := int64(-1)
	for b := data; len(b) > 0; {
		batch, rest, err := record.NextBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		b = rest
		_, recs, err := record.Decode(batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset <= last {
				t.Fatalf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
			if r.Offset < activeBase {
				if seen[string(r.Key)] {
					t.Fatalf("key %s twice below the active segment", r.Key)
				}
				seen[string(r.Key)] = true
			}
		}
	}
	if last != 1499 {
		t.Fatalf("last record at %d, want 1499 (the newest record is never compacted away)", last)
	}
	// A replica added now catches up (from a snapshot of the compacted
	// log, or by replaying the Raft log where it still holds every entry)
	// and, compacted by the same rules, holds the same log.
	leader := c.waitLeader(10 * time.Second)
	if err := leader.r().Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	nd := c.addNode(filepath.Join(t.TempDir(), "n3"))
	if err := nd.r().SetCompaction(Compaction{Enabled: true, DeleteRetention: time.Hour, MinDirtyRatio: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := leader.r().AddVoter(context.Background(), nd.id, nd.r().Addr()); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(20*time.Second, 1500)
	if _, err := nd.r().Compact(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	c.assertIdentical()
	t.Logf("replica sizes after compaction: %v bytes", sizes)
}

func TestBackgroundCleanerCompactsWhenDirtyEnough(t *testing.T) {
	c := compactedCluster(t, 20*time.Millisecond)
	produceKeyed(t, c, 300)
	c.waitConverged(20*time.Second, 1500)
	for _, nd := range c.running() {
		waitFor(t, 30*time.Second, "replica "+nd.id+" compacted below the dirty ratio", func() bool {
			d, err := nd.r().Dirty()
			return err == nil && d.Records > 0 && d.Ratio() < 0.5
		})
	}
	n := c.nodes[0].r().node.cleaner
	if n.runs.Load() == 0 || n.cleanedBytes.Load() == 0 || n.lastRun.Load() == 0 {
		t.Fatalf("cleaner metrics: runs %d bytes %d last %d", n.runs.Load(), n.cleanedBytes.Load(), n.lastRun.Load())
	}
	// Every key's newest record is still served.
	leader := c.waitLeader(10 * time.Second)
	recs := readFrom(t, leader.r(), 0)
	latest := map[string]string{}
	for _, r := range recs {
		latest[string(r.Key)] = string(r.Value)
	}
	for i := 0; i < 5; i++ {
		// Record i of every batch has key k<i> and value p11-s<seq+i>: the
		// newest of k<i> is in the last batch (seq 1495).
		key, want := fmt.Sprintf("k%d", i), fmt.Sprintf("p11-s%d", 1495+i)
		if latest[key] != want {
			t.Fatalf("key %s: newest value %q, want %q", key, latest[key], want)
		}
	}
}

func TestCompactedPartitionRefusesKeylessRecords(t *testing.T) {
	c := compactedCluster(t, time.Hour)
	leader := c.waitLeader(10 * time.Second)
	b, err := record.Encode(record.BatchOptions{}, []record.Record{{Key: []byte("a"), Value: []byte("1")}, {Value: []byte("no key")}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = leader.r().Produce(context.Background(), b, 0)
	if !errors.Is(err, ErrKeyRequired) {
		t.Fatalf("keyless record: %v, want ErrKeyRequired", err)
	}
	if _, hw := leader.r().Offsets(); hw != 0 {
		t.Fatalf("high watermark %d after a refused batch", hw)
	}
	// Tombstones (a key, no value) are what compaction is for: accepted.
	ts, _ := record.Encode(record.BatchOptions{}, []record.Record{{Key: []byte("a")}})
	if _, err := leader.r().Produce(context.Background(), ts, 0); err != nil {
		t.Fatal(err)
	}
}

func TestCompactIsOffWithoutCleanupPolicyCompact(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	if _, err := c.nodes[0].r().Compact(context.Background(), time.Now()); err == nil {
		t.Fatal("compaction ran on a partition without it")
	}
}

// A restarted replica replays the Raft entries after its last snapshot
// against its log; batches compaction rewrote must pass that check.
func TestCompactedReplicasRestartWithTheirLogs(t *testing.T) {
	c := compactedCluster(t, time.Hour)
	produceKeyed(t, c, 200)
	c.waitConverged(20*time.Second, 1000)
	now := time.Now()
	for _, nd := range c.running() {
		if _, err := nd.r().Compact(context.Background(), now); err != nil {
			t.Fatal(err)
		}
	}
	before := c.assertIdentical()
	for _, nd := range c.nodes {
		c.crash(nd)
	}
	for _, nd := range c.nodes {
		c.start(nd)
		if err := nd.r().SetCompaction(Compaction{Enabled: true, DeleteRetention: time.Hour, MinDirtyRatio: 0.5}); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader(10 * time.Second)
	c.waitConverged(20*time.Second, 1000)
	if after := c.assertIdentical(); string(after) != string(before) {
		t.Fatalf("compacted log changed across a restart: %d bytes before, %d after", len(before), len(after))
	}
	for _, nd := range c.running() {
		if err := nd.r().usable(); err != nil {
			t.Fatalf("replica %s failed after restart: %v", nd.id, err)
		}
	}
	// And keeps taking writes, with the producer's state intact.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := c.produceRetrying(ctx, testBatch(t, 11, 1000, 5)); err != nil || res.BaseOffset != 1000 {
		t.Fatalf("produce after restart: %+v, %v", res, err)
	}
}
