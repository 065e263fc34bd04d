package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skiff-mq/skiff/raftnet"
)

// When a partition leader's process dies, the node that is its designated
// successor learns it from the broken liveness request and a refused dial,
// and stands for election at once. The partition's replicas here all run
// with one-minute Raft timers, so Raft alone could not elect a new leader
// within the test's deadlines.
func TestKilledLeaderIsReplacedWithoutWaitingForRaftTimers(t *testing.T) {
	c := newTestClusterWith(t, 4, minuteTimersOffN0(nil))
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
	c.waitWatching(want, old)
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

// minuteTimersOffN0 gives every node but n0 one-minute partition Raft
// timers (n0 keeps short ones so that the meta group and new partition
// groups elect at once; createLedOffN0 then moves the partition off it),
// and runs the nodes over faults when it is not nil.
func minuteTimersOffN0(faults *raftnet.FaultNetwork) func(cfg *Config) {
	return func(cfg *Config) {
		if faults != nil {
			cfg.Faults = faults
		}
		if cfg.ID != "n0" {
			cfg.Partition.Raft.HeartbeatTimeout = time.Minute
			cfg.Partition.Raft.ElectionTimeout = time.Minute
		}
	}
}

// waitWatching waits until every node of ids holds its liveness request to
// target open: only then can it prove target's death at once.
func (c *testCluster) waitWatching(ids []string, target string) {
	c.t.Helper()
	for _, id := range ids {
		if id == target {
			continue
		}
		waitFor(c.t, 20*time.Second, id+" watching "+target, func() bool {
			_, ok := c.byID(id).node().livenessUp.Load(target)
			return ok
		})
	}
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

// When the lowest-id follower's log lags (here: cut off from the leader
// while a batch was committed without it; in the field: restarted a moment
// before, its leader's replication to it still backing off), the follower
// with the complete log stands when the leader dies: a lagging candidate
// would lose the vote. Raft's timers and the silence check are a minute
// here, so only the liveness watch can elect within the deadline.
func TestKilledLeaderIsReplacedByTheVoterWithTheMostCompleteLog(t *testing.T) {
	faults := raftnet.NewFaultNetwork()
	c := newTestClusterWith(t, 4, minuteTimersOffN0(faults))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	want := c.createLedOffN0(ctx, "lag")
	a := &acked{}
	res, err := c.produce(ctx, "lag", 0, batchOf(t, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p0-s0", 0, res.BaseOffset)

	old := c.leaderOf("lag", 0)
	if old == "" || old == "n0" {
		t.Fatalf("leader %q, want one of %v", old, want)
	}
	var low, high string
	for _, id := range want {
		switch {
		case id == old:
		case low == "":
			low = id
		case id < low:
			low, high = id, low
		default:
			high = id
		}
	}
	faults.Partition(old, low)
	res, err = c.produce(ctx, "lag", 0, batchOf(t, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p0-s1", 0, res.BaseOffset)
	lastIndex := func(id string) uint64 {
		r, err := c.byID(id).node().Replica(ctx, "lag", 0)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := r.FollowerView(time.Now())
		return v.LastIndex
	}
	waitFor(t, 10*time.Second, high+"'s log longer than "+low+"'s", func() bool { return lastIndex(high) > lastIndex(low) })

	c.waitWatching([]string{high}, old)
	c.stop(c.byID(old), false)
	waitFor(t, 30*time.Second, high+", the voter with the complete log, to lead", func() bool { return c.leaderOf("lag", 0) == high })
	if got := testutil.ToFloat64(c.byID(high).node().metrics.fastElections); got < 1 {
		t.Fatalf("%s's fast elections = %v, want at least 1", high, got)
	}
	if got := testutil.ToFloat64(c.byID(low).node().metrics.fastElections); got != 0 {
		t.Fatalf("%s, whose log lagged, stood in %v groups", low, got)
	}
	faults.Heal()
	res, err = c.produce(ctx, "lag", 0, batchOf(t, 0, 2))
	if err != nil {
		t.Fatal(err)
	}
	a.add("p0-s2", 0, res.BaseOffset)
	c.verifyAcked("lag", a)
}

func TestDeadLeaderSuccessorIsTheMostCompleteAnsweringVoter(t *testing.T) {
	voters := []raft.Server{{ID: "a", Address: "a:1"}, {ID: "b", Address: "b:1"}, {ID: "c", Address: "c:1"}, {ID: "d", Address: "d:1"}}
	view := func(leader string, last uint64) silenceView {
		return silenceView{Follower: true, Leader: leader, LastIndex: last}
	}
	cases := []struct {
		name      string
		self      raft.ServerID
		selfIndex uint64
		answers   map[raft.ServerAddress]map[string]silenceView
		want      raft.ServerID
	}{
		{"equal logs: lowest id", "c", 10, map[raft.ServerAddress]map[string]silenceView{"b:1": {"g": view("a", 10)}, "d:1": {"g": view("a", 10)}}, "b"},
		{"a lagging lower id loses to the complete log", "c", 12, map[raft.ServerAddress]map[string]silenceView{"b:1": {"g": view("a", 10)}, "d:1": {"g": view("a", 12)}}, "c"},
		{"the lagging voter picks the other", "b", 10, map[raft.ServerAddress]map[string]silenceView{"c:1": {"g": view("a", 12)}, "d:1": {"g": view("", 11)}}, "c"},
		{"a voter that did not answer is left out", "c", 10, map[raft.ServerAddress]map[string]silenceView{"d:1": {"g": view("a", 9)}}, "c"},
		{"an answer about another group does not count", "c", 10, map[raft.ServerAddress]map[string]silenceView{"b:1": {"h": view("a", 99)}}, "c"},
		{"a new leader is known: nobody", "c", 12, map[raft.ServerAddress]map[string]silenceView{"b:1": {"g": view("d", 12)}}, ""},
		{"the dead leader's own answer is ignored", "c", 10, map[raft.ServerAddress]map[string]silenceView{"a:1": {"g": view("a", 99)}, "b:1": {"g": view("a", 10)}}, "b"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := deadLeaderSuccessor("g", tc.self, tc.selfIndex, "a", voters, tc.answers); got != tc.want {
				t.Fatalf("successor = %q, want %q", got, tc.want)
			}
		})
	}
}

// A preferred leader that restarts gets its leadership back only once it
// has been up (its liveness request answered) for preferredLeaderDelay: a
// node that just started is still opening and catching up its replicas,
// and writes handed to it then stall.
func TestRestartedPreferredLeaderGetsLeadershipBackOnlyOnceSettled(t *testing.T) {
	c := newTestClusterWith(t, 3, func(cfg *Config) { cfg.ReplaceAfter = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "pref", 1, 3)
	desc, err := c.anyNode().DescribeTopic(ctx, "pref")
	if err != nil {
		t.Fatal(err)
	}
	preferred := desc.Partitions[0].Replicas[0]
	waitFor(t, 30*time.Second, "the preferred replica "+preferred+" to lead", func() bool { return c.leaderOf("pref", 0) == preferred })

	c.stop(c.byID(preferred), false)
	var elected time.Time
	waitFor(t, 30*time.Second, "a new leader", func() bool {
		if l := c.leaderOf("pref", 0); l != "" && l != preferred {
			elected = time.Now()
			return true
		}
		return false
	})
	// The new leader hands over only after leading preferredLeaderDelay
	// itself; past that, only the restarted node's own settling counts.
	waitFor(t, 2*preferredLeaderDelay, "the new leader to have led for longer than preferredLeaderDelay", func() bool {
		return time.Since(elected) > preferredLeaderDelay+time.Second
	})
	c.restart(c.byID(preferred))
	restarted := time.Now()
	waitFor(t, 60*time.Second, preferred+" to lead again", func() bool { return c.leaderOf("pref", 0) == preferred })
	got := time.Since(restarted)
	t.Logf("led again %v after the restart", got)
	if got < preferredLeaderDelay {
		t.Fatalf("%s led again %v after its restart, before it had been up for %v", preferred, got, preferredLeaderDelay)
	}
}

// holdsCommitted asks a follower for the end of its log: it holds the
// leader's commit index give or take caughtUpSlack, or it is still
// catching up and gets no handover.
func TestHoldsCommittedComparesTheFollowersLogWithTheCommitIndex(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "caught", 1, 3)
	var leader string
	waitFor(t, 30*time.Second, "a leader of caught/0", func() bool {
		leader = c.leaderOf("caught", 0)
		return leader != ""
	})
	var follower *testNode
	for _, tn := range c.nodes {
		if tn.cfg.ID != leader {
			follower = tn
			break
		}
	}
	r, err := follower.node().Replica(ctx, "caught", 0)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := r.FollowerView(time.Now())
	group := ""
	for key := range follower.node().replicas.all() {
		if key.Topic == "caught" {
			group = key.group()
		}
	}
	if group == "" {
		t.Fatal("the follower has no replica of caught/0")
	}
	asker := c.byID(leader).node()
	addr := follower.node().RaftAddr()
	cases := []struct {
		name   string
		group  string
		addr   string
		commit uint64
		want   bool
	}{
		{"holds the commit index", group, addr, v.LastIndex, true},
		{"trails by the slack", group, addr, v.LastIndex + caughtUpSlack, true},
		{"trails by more", group, addr, v.LastIndex + caughtUpSlack + 1, false},
		{"a group it does not have", "nosuch/0/1", addr, 0, false},
		{"no address", group, "", 0, false},
	}
	for _, tc := range cases {
		if got := asker.holdsCommitted(ctx, tc.group, tc.addr, tc.commit); got != tc.want {
			t.Errorf("%s: holdsCommitted = %v, want %v (follower's last index %d)", tc.name, got, tc.want, v.LastIndex)
		}
	}
}
