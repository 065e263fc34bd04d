package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skiff-mq/skiff/raftnet"
)

// TestCutOffLeaderIsReplacedWithoutWaitingForRaftTimers: a leader cut off
// by the network (no connection resets: the liveness watch cannot call it
// gone) is replaced as soon as both other voters have not heard from it
// for SilentLeaderAfter (5 s here), not after Raft's heartbeat timeout
// (10 s here, then pre-vote): the metric shows which of the two elected
// the new leader.
func TestCutOffLeaderIsReplacedWithoutWaitingForRaftTimers(t *testing.T) {
	faults := raftnet.NewFaultNetwork()
	c := newTestClusterWith(t, 4, func(cfg *Config) {
		cfg.Faults = faults
		// n0 keeps short timers so that the meta group and new partition
		// groups elect at once; the partition is then moved off it.
		if cfg.ID != "n0" {
			cfg.Partition.Raft.HeartbeatTimeout = 10 * time.Second
			cfg.Partition.Raft.ElectionTimeout = 10 * time.Second
			// The leader's heartbeats come every 1-2 s at a 10 s
			// heartbeat timeout: silence shorter than that is normal.
			cfg.SilentLeaderAfter = 5 * time.Second
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	want := c.createLedOffN0(ctx, "cut")
	res, err := c.produce(ctx, "cut", 0, batchOf(t, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	a := &acked{}
	a.add("p0-s0", 0, res.BaseOffset)

	old := c.leaderOf("cut", 0)
	if old == "" || old == "n0" {
		t.Fatalf("leader %q, want one of %v", old, want)
	}
	faults.Isolate(old)
	leads := func(id string) bool {
		r, err := c.byID(id).node().Replica(ctx, "cut", 0)
		return err == nil && r.IsLeader()
	}
	var successor string
	waitFor(t, 90*time.Second, "a new leader among the voters that were not cut off", func() bool {
		for _, id := range want {
			if id != old && leads(id) {
				successor = id
				return true
			}
		}
		return false
	})
	stood := 0.0
	for _, id := range want {
		if id != old {
			stood += testutil.ToFloat64(c.byID(id).node().metrics.fastElections)
		}
	}
	if stood < 1 {
		t.Fatalf("%s leads, but no voter stood on the silence check: Raft's own timers elected it", successor)
	}
	if got := testutil.ToFloat64(c.byID(old).node().metrics.fastElections); got != 0 {
		t.Fatalf("%s, the cut-off leader, stood in %v groups", old, got)
	}
	res, err = c.produce(ctx, "cut", 0, batchOf(t, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p0-s1", 0, res.BaseOffset)
	faults.Heal()
	c.verifyAcked("cut", a)
}

// TestSilenceCheckLeavesALeaderAMajorityHears: a follower cut off from the
// leader alone (the other follower still hears it) must not depose it: it
// finds no majority that agrees the leader is silent.
func TestSilenceCheckLeavesALeaderAMajorityHears(t *testing.T) {
	faults := raftnet.NewFaultNetwork()
	c := newTestClusterWith(t, 4, func(cfg *Config) {
		cfg.Faults = faults
		if cfg.ID != "n0" {
			cfg.Partition.Raft.HeartbeatTimeout = 3 * time.Second
			cfg.Partition.Raft.ElectionTimeout = 3 * time.Second
			cfg.SilentLeaderAfter = 1500 * time.Millisecond
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	want := c.createLedOffN0(ctx, "half")
	leader := c.leaderOf("half", 0)
	var cut string
	for _, id := range want {
		if id != leader {
			cut = id
			break
		}
	}
	faults.Partition(leader, cut)
	defer faults.Heal()
	// Four times the silence threshold, and past the cut follower's own
	// heartbeat timeout (whose pre-vote the other follower refuses).
	deadline := time.Now().Add(4 * 1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		r, err := c.byID(leader).node().Replica(ctx, "half", 0)
		if err != nil || !r.IsLeader() {
			t.Fatalf("%s, heard by a majority, lost leadership after %s was cut off from it alone (%v)", leader, cut, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, id := range want {
		if got := testutil.ToFloat64(c.byID(id).node().metrics.fastElections); got != 0 {
			t.Fatalf("%s stood on the silence check in %v groups, though a majority heard the leader", id, got)
		}
	}
}
