package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeDisk is a data directory's file system whose free space a test sets.
type fakeDisk struct{ free atomic.Uint64 }

const fakeDiskTotal = 100 << 30

func (d *fakeDisk) statfs(string) (DiskUsage, error) {
	return DiskUsage{Free: d.free.Load(), Total: fakeDiskTotal}, nil
}

func TestDiskThresholdIsTheSmallerOfBytesAndPercent(t *testing.T) {
	for _, tt := range []struct {
		bytes   int64
		percent float64
		total   uint64
		want    uint64
	}{
		{1 << 30, 5, 100 << 30, 1 << 30},  // 5% is 5 GiB: 1 GiB is smaller
		{1 << 30, 5, 10 << 30, 512 << 20}, // 5% of 10 GiB is 512 MiB
		{0, 5, 100, 5},
		{1000, 0, 100, 1000},
		{0, 0, 100, 0},
	} {
		cfg := Config{MinFreeBytes: tt.bytes, MinFreePercent: tt.percent}
		if got := cfg.diskThreshold(tt.total); got != tt.want {
			t.Errorf("bytes %d percent %v total %d: threshold %d, want %d", tt.bytes, tt.percent, tt.total, got, tt.want)
		}
	}
	for _, bad := range []func(*Config){
		func(c *Config) { c.MinFreeBytes = -1 },
		func(c *Config) { c.MinFreePercent = 100 },
		func(c *Config) { c.MinFreePercent = -1 },
		func(c *Config) { c.DiskCheckInterval = 0 },
		func(c *Config) { c.MaxConcurrentMoves = 0 },
	} {
		cfg := LoopbackConfig(t.TempDir(), "n0", 1)
		bad(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("invalid config accepted: %+v", cfg)
		}
	}
}

func TestLowDiskDegradesNodeUntilSpaceReturns(t *testing.T) {
	disks := map[string]*fakeDisk{}
	c := newTestClusterWith(t, 3, func(cfg *Config) {
		d := &fakeDisk{}
		d.free.Store(50 << 30)
		disks[cfg.ID] = d
		cfg.StatFS = d.statfs
		cfg.MinFreeBytes, cfg.MinFreePercent = 1<<30, 5
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "dk", 6, 3)
	const low = "n1"
	n1 := c.byID(low).node()
	if err := n1.DiskFull(); err != nil {
		t.Fatalf("healthy disk: %v", err)
	}
	disks[low].free.Store(100 << 20) // under 1 GiB
	waitFor(t, 30*time.Second, low+" recorded as degraded", func() bool {
		return c.anyNode().Metadata().DiskDegraded(low)
	})
	var dfe *DiskFullError
	if err := n1.DiskFull(); !errors.As(err, &dfe) || !strings.Contains(err.Error(), "disk full on node n1") || dfe.Free != 100<<20 || dfe.Threshold != 1<<30 {
		t.Fatalf("degraded node: %v", err)
	}
	if ni := nodeInfoOf(t, c.anyNode(), low); ni.Mode != ModeDegraded {
		t.Fatalf("node list: %+v", ni)
	}
	// It hands its leaderships away and takes no new replica.
	waitFor(t, 30*time.Second, low+" leading nothing", func() bool {
		for p := int32(0); p < 6; p++ {
			if c.leaderOf("dk", p) == low || c.leaderOf("dk", p) == "" {
				return false
			}
		}
		return true
	})
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "dk2", Partitions: 4, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	dk2, _ := c.anyNode().Metadata().Topic("dk2")
	for _, pa := range dk2.Partitions {
		if slices.Contains(pa.Replicas, low) {
			t.Fatalf("new replica placed on the degraded node: %v", pa.Replicas)
		}
	}
	// The metric shows the free space.
	resp, err := http.Get("http://" + n1.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("skiff_node_disk_free_bytes %g", float64(100<<20)); !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %q", want)
	}
	// Space returns: the node is in service again.
	disks[low].free.Store(50 << 30)
	waitFor(t, 30*time.Second, low+" back in service", func() bool {
		return !c.anyNode().Metadata().DiskDegraded(low) && n1.DiskFull() == nil
	})
}

func TestFailedReplicaIsReopenedAndCatchesUp(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "fr", 1, 3)
	a := &acked{}
	res, err := c.produce(ctx, "fr", 0, batchOf(t, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p1-s0", 0, res.BaseOffset)
	// Fail a follower as a full disk would.
	var victim *Node
	for _, n := range c.running() {
		if r, err := n.Replica(ctx, "fr", 0); err == nil && !r.IsLeader() {
			victim = n
			r.Fail(fmt.Errorf("append at raft index 9: write segment: %w", syscall.ENOSPC))
			break
		}
	}
	if victim == nil {
		t.Fatal("no follower")
	}
	before, _ := victim.Replica(ctx, "fr", 0)
	// Writes go on meanwhile (two of three replicas).
	for s := int32(1); s <= 3; s++ {
		res, err := c.produce(ctx, "fr", 0, batchOf(t, 1, s))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p1-s%d", s), 0, res.BaseOffset)
	}
	waitFor(t, 30*time.Second, "the failed replica reopened and back in sync", func() bool {
		r, err := victim.Replica(ctx, "fr", 0)
		if err != nil || r == before || r.Status().Failed != nil {
			return false
		}
		desc, err := victim.DescribeTopic(ctx, "fr")
		if err != nil || !slices.Contains(desc.Partitions[0].InSync, victim.ID()) || len(desc.Partitions[0].InSync) != 3 {
			return false
		}
		// The reopened replica has applied every acknowledged batch.
		_, hw := r.Offsets()
		return hw == 4
	})
	c.verifyAcked("fr", a)
}
