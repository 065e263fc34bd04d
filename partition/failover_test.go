package partition

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A follower told that its leader's process is gone stands for election at
// once and wins without the heartbeat timeout: every replica but n0 (which
// so becomes the first leader) has its timers stretched to a minute, so only
// standing can elect another leader within the test's deadlines. Which
// follower stands is the node layer's choice (cluster/liveness.go); here
// both logs are equal and the lowest id stands, as the node layer would
// pick.
func TestStandForDeadLeaderElectsTheFollowerAtOnce(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		if cfg.NodeID != "n0" {
			cfg.Raft.HeartbeatTimeout, cfg.Raft.ElectionTimeout = time.Minute, time.Minute
		}
	})
	old := c.waitLeader(10 * time.Second)
	if old.id != "n0" {
		t.Fatalf("%s leads, want n0, the only replica with short timers", old.id)
	}
	acked, err := old.r().Produce(context.Background(), testBatch(t, -1, 0, 2), 0)
	if err != nil {
		t.Fatal(err)
	}
	c.waitConverged(10*time.Second, acked.LastOffset+1)

	var followers []*testNode
	for _, nd := range c.running() {
		if nd != old {
			followers = append(followers, nd)
		}
	}
	c.crash(old)
	if err := old.mux.Close(); err != nil {
		t.Fatal(err)
	}

	// A node that is not the leader: nobody stands.
	for _, nd := range followers {
		if ok, err := nd.r().StandForDeadLeader("n9"); ok || err != nil {
			t.Fatalf("%s stood for the death of a non-leader: %v, %v", nd.id, ok, err)
		}
	}
	want := followers[0]
	if followers[1].id < want.id {
		want = followers[1]
	}
	if ok, err := want.r().StandForDeadLeader(old.id); !ok || err != nil {
		t.Fatalf("%s did not stand for its dead leader: %v, %v", want.id, ok, err)
	}
	leader := c.waitLeader(20 * time.Second)
	if leader != want {
		t.Fatalf("%s leads, want the successor %s", leader.id, want.id)
	}
	res, err := leader.r().Produce(context.Background(), testBatch(t, -1, 0, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != acked.LastOffset+1 {
		t.Fatalf("new leader appended at %d, want %d after the acked records", res.BaseOffset, acked.LastOffset+1)
	}
	// Once a new leader is known, news of the old one's death changes nothing.
	for _, nd := range followers {
		if ok, err := nd.r().StandForDeadLeader(old.id); ok || err != nil {
			t.Fatalf("%s stood again after the election: %v, %v", nd.id, ok, err)
		}
	}
	if got := leader.r().raft.State(); got != raft.Leader {
		t.Fatalf("successor state %v after the others were told again", got)
	}
}
