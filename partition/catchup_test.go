package partition

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

func TestCatchUpLimiterPacesPastItsBurst(t *testing.T) {
	const rate = 1 << 20
	c := newCatchUpLimiter(rate)
	if c.burst != 128<<10 {
		t.Fatalf("burst %d, want 1/8 s of 1 MiB/s", c.burst)
	}
	start := time.Now()
	// The first burst is free; the rest takes (n - burst) / rate at least.
	if err := c.wait(context.Background(), 512<<10); err != nil {
		t.Fatal(err)
	}
	if min := time.Duration(float64(512<<10-c.burst) / rate * float64(time.Second)); time.Since(start) < min*9/10 {
		t.Fatalf("512 KiB passed in %v, want at least %v at 1 MiB/s", time.Since(start), min)
	}
	if c.bytes.Load() != 512<<10 || c.waited.Load() <= 0 {
		t.Fatalf("counted %d bytes, %v waited", c.bytes.Load(), time.Duration(c.waited.Load()))
	}
	// Unthrottled: counts, never waits.
	free := newCatchUpLimiter(0)
	if err := free.wait(context.Background(), 64<<20); err != nil || free.waited.Load() != 0 || free.bytes.Load() != 64<<20 {
		t.Fatalf("unthrottled: %v, waited %d, bytes %d", err, free.waited.Load(), free.bytes.Load())
	}
	// A cancelled wait returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.wait(ctx, 1<<20); err == nil {
		t.Fatal("a cancelled wait succeeded")
	}
}

func TestSnapshotInstallIsPacedByTheCatchUpBudget(t *testing.T) {
	const rate = 1 << 20
	slow, err := NewNode(MemoryConfig{ProduceBytes: 64 << 20, FetchBytes: 64 << 20, CatchUpBytesPerSecond: rate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(slow.Close) // after the cluster's own cleanup, which runs first
	// Small WAL segments, so that the leader's log really loses the
	// entries a snapshot covers (the WAL deletes whole segments) and a new
	// replica can only catch up by installing the snapshot.
	tweak := func(cfg *Config) {
		cfg.SnapshotThreshold = 100
		cfg.TrailingLogs = 10
		cfg.RaftLogSegmentBytes = 1 << 20
	}
	c := newTestCluster(t, 3, tweak)
	ctx := context.Background()
	value := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < 150; i++ {
		recs := make([]record.Record, 20)
		for j := range recs {
			recs[j] = record.Record{Timestamp: time.Now().UnixMilli(), Value: value}
		}
		b, err := record.Encode(record.BatchOptions{}, recs)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.produceRetrying(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.waitLeader(5 * time.Second)
	if err := leader.r().Snapshot(ctx); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if first, err := leader.r().logs.FirstIndex(); err != nil || first <= 1 {
		t.Fatalf("raft log not compacted (first index %d, %v)", first, err)
	}
	// Only the new replica runs on the throttled node.
	c.tweak = func(cfg *Config) { tweak(cfg); cfg.Node = slow }
	start := time.Now()
	nd := c.addNode(filepath.Join(t.TempDir(), "n3"))
	if err := leader.r().AddVoter(ctx, nd.id, nd.r().Addr()); err != nil {
		t.Fatalf("add voter: %v", err)
	}
	_, hw := leader.r().Offsets()
	c.waitConverged(60*time.Second, hw)
	took := time.Since(start)
	got := slow.catchUp.bytes.Load()
	if got < 2<<20 {
		t.Fatalf("the new replica received %d bytes of snapshot, want the ~3 MiB log", got)
	}
	if min := time.Duration(float64(got-int64(slow.catchUp.burst)) / rate * float64(time.Second)); took < min*9/10 || slow.catchUp.waited.Load() == 0 {
		t.Fatalf("caught up %d bytes in %v (waited %v), want at least %v at %d B/s", got, took, time.Duration(slow.catchUp.waited.Load()), min, rate)
	}
	c.assertIdentical()
}
