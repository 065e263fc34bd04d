package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// When a partition leader's process dies, the node that is its designated
// successor learns it from the broken liveness request and a refused dial,
// and stands for election at once. The partition's replicas here all run
// with one-minute Raft timers, so Raft alone could not elect a new leader
// within the test's deadlines.
func TestKilledLeaderIsReplacedWithoutWaitingForRaftTimers(t *testing.T) {
	c := newTestClusterWith(t, 4, func(cfg *Config) {
		// n0 keeps short timers so that the meta group and new partition
		// groups elect at once; the partition is then moved off it.
		if cfg.ID != "n0" {
			cfg.Partition.Raft.HeartbeatTimeout = time.Minute
			cfg.Partition.Raft.ElectionTimeout = time.Minute
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	want := c.createLedOffN0(ctx, "fast")
	res, err := c.produce(ctx, "fast", 0, batchOf(t, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	a := &acked{}
	a.add("p0-s0", 0, res.BaseOffset)

	old := c.leaderOf("fast", 0)
	if old == "" || old == "n0" {
		t.Fatalf("leader %q, want one of %v", old, want)
	}
	successor := ""
	for _, id := range want {
		if id != old && (successor == "" || id < successor) {
			successor = id
		}
	}
	c.stop(c.byID(old), false)

	waitFor(t, 30*time.Second, "the successor "+successor+" to lead", func() bool { return c.leaderOf("fast", 0) == successor })
	if got := testutil.ToFloat64(c.byID(successor).node().metrics.fastElections); got < 1 {
		t.Fatalf("successor's fast elections = %v, want at least 1", got)
	}
	for _, id := range want {
		if id == old || id == successor {
			continue
		}
		if got := testutil.ToFloat64(c.byID(id).node().metrics.fastElections); got != 0 {
			t.Fatalf("%s, not the successor, stood in %v groups", id, got)
		}
	}
	res, err = c.produce(ctx, "fast", 0, batchOf(t, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p0-s1", 0, res.BaseOffset)
	c.verifyAcked("fast", a)
}

// createLedOffN0 creates topic with one partition of three replicas and
// moves it onto n1, n2 and n3, whose Raft timers the caller configured
// (n0 keeps short ones so that the meta group and new groups elect at
// once); it returns those three once they lead and follow it in sync.
func (c *testCluster) createLedOffN0(ctx context.Context, topic string) []string {
	c.t.Helper()
	c.createLedTopic(ctx, topic, 1, 3)
	want := []string{"n1", "n2", "n3"}
	if _, err := c.anyNode().ReassignPartition(ctx, topic, 0, want); err != nil {
		c.t.Fatal(err)
	}
	var last PartitionInfo
	defer func() {
		if c.t.Failed() {
			c.t.Logf("partition 0 last seen: %+v", last)
		}
	}()
	waitFor(c.t, 60*time.Second, "partition 0 led on n1,n2,n3 only", func() bool {
		desc, err := c.anyNode().DescribeTopic(ctx, topic)
		if err != nil {
			return false
		}
		p := desc.Partitions[0]
		last = p
		return p.Leader != "" && p.Leader != "n0" && len(p.InSync) == 3 && !strings.Contains(strings.Join(p.InSync, ","), "n0")
	})
	return want
}
