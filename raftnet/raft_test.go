package raftnet

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// countingFSM records every applied entry, so replicas can be compared
// entry by entry. Test entries are unique strings and a duplicate is
// ignored: a test may retry an apply whose outcome was unknown
// (ErrLeadershipLost can still commit), as an idempotent producer would.
type countingFSM struct {
	mu      sync.Mutex // guards the fields below
	entries []string
	seen    map[string]bool
}

var _ raft.FSM = (*countingFSM)(nil)

func (f *countingFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = make(map[string]bool)
	}
	if e := string(l.Data); !f.seen[e] {
		f.seen[e] = true
		f.entries = append(f.entries, e)
	}
	return len(f.entries)
}

func (f *countingFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fsmSnapshot(slices.Clone(f.entries)), nil
}

func (f *countingFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var entries []string
	seen := make(map[string]bool)
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		entries = append(entries, sc.Text())
		seen[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.mu.Lock()
	f.entries, f.seen = entries, seen
	f.mu.Unlock()
	return nil
}

func (f *countingFSM) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

type fsmSnapshot []string

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	for _, e := range s {
		if _, err := fmt.Fprintln(sink, e); err != nil {
			sink.Cancel()
			return err
		}
	}
	return sink.Close()
}

func (s fsmSnapshot) Release() {}

// raftCluster runs Raft groups on in-process nodes, one Mux per node, all
// joined by one FaultNetwork.
type raftCluster struct {
	t     *testing.T
	fn    *FaultNetwork
	nodes []string
	muxes map[string]*Mux
	rafts map[string]map[string]*raft.Raft   // group -> node -> replica
	fsms  map[string]map[string]*countingFSM // group -> node -> its FSM
}

// newRaftCluster starts every group on every node and bootstraps them.
// Timeouts are short so that elections take a few hundred milliseconds;
// tune adjusts them.
func newRaftCluster(t *testing.T, nodes, groups []string, tune func(*raft.Config)) *raftCluster {
	t.Helper()
	return newRaftClusterOver(t, nodes, groups, tune, false)
}

// newRaftClusterOver is newRaftCluster with every group's transport on
// one Hub per node when overHub is set, else a raft.NetworkTransport per
// group on the Mux's StreamLayers.
func newRaftClusterOver(t *testing.T, nodes, groups []string, tune func(*raft.Config), overHub bool) *raftCluster {
	t.Helper()
	c := &raftCluster{
		t:     t,
		fn:    NewFaultNetwork(),
		nodes: nodes,
		muxes: make(map[string]*Mux),
		rafts: make(map[string]map[string]*raft.Raft),
		fsms:  make(map[string]map[string]*countingFSM),
	}
	logger := testRaftLogger(t)

	for _, id := range nodes {
		m, err := c.fn.NewMux(id, DefaultMuxConfig())
		if err != nil {
			t.Fatalf("NewMux(%s): %v", id, err)
		}
		t.Cleanup(func() { m.Close() })
		c.muxes[id] = m
	}
	hubs := make(map[string]*Hub)
	if overHub {
		for _, id := range nodes {
			hubs[id] = newTestHub(t, c.muxes[id], nil)
		}
	}

	var servers []raft.Server
	for _, id := range nodes {
		servers = append(servers, raft.Server{
			ID:      raft.ServerID(id),
			Address: raft.ServerAddress(c.muxes[id].Addr().String()),
		})
	}

	for _, g := range groups {
		c.rafts[g] = make(map[string]*raft.Raft)
		c.fsms[g] = make(map[string]*countingFSM)
		for _, id := range nodes {
			conf := raft.DefaultConfig()
			conf.LocalID = raft.ServerID(id)
			conf.HeartbeatTimeout = 200 * time.Millisecond
			conf.ElectionTimeout = 200 * time.Millisecond
			conf.LeaderLeaseTimeout = 150 * time.Millisecond
			conf.CommitTimeout = 5 * time.Millisecond
			conf.Logger = logger.Named(g + "/" + id)
			if tune != nil {
				tune(conf)
			}

			var trans raft.Transport
			if overHub {
				// Bounds every RPC and dial, as below.
				trans = mustTransport(t, hubs[id], g, time.Second)
			} else {
				layer := mustLayer(t, c.muxes[id], g)
				trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
					Stream:  layer,
					MaxPool: 3,
					// Bounds every RPC and dial, hence how long a stalled RPC
					// across a cut link holds a replication goroutine.
					Timeout: time.Second,
					Logger:  conf.Logger,
				})
			}
			store := raft.NewInmemStore()
			fsm := &countingFSM{}
			r, err := raft.NewRaft(conf, fsm, store, store, raft.NewInmemSnapshotStore(), trans)
			if err != nil {
				t.Fatalf("NewRaft(%s, %s): %v", g, id, err)
			}
			if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
				t.Fatalf("BootstrapCluster(%s, %s): %v", g, id, err)
			}
			c.rafts[g][id] = r
			c.fsms[g][id] = fsm
		}
	}

	// Registered after the Muxes' cleanups, so it runs before them: heal,
	// then shut every replica down (which closes its transport and so its
	// StreamLayer), then the Muxes close.
	t.Cleanup(func() {
		c.fn.Heal()
		var wg sync.WaitGroup
		for _, byNode := range c.rafts {
			for _, r := range byNode {
				wg.Go(func() { r.Shutdown().Error() })
			}
		}
		wg.Wait()
	})
	return c
}

// testRaftLogger collects Raft's warnings and shows them only if the test
// fails: a partition test makes Raft complain loudly, by design.
func testRaftLogger(t *testing.T) hclog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() {
			out := buf.String()
			if len(out) > 16<<10 {
				out = "...\n" + out[len(out)-16<<10:]
			}
			t.Logf("raft log:\n%s", out)
		}
	})
	return hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.Warn,
		Output: writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) }),
	})
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

// waitLeader waits until exactly one of among leads group and returns it.
func (c *raftCluster) waitLeader(group string, among []string) string {
	c.t.Helper()
	var leader string
	waitFor(c.t, 10*time.Second, "a leader of "+group+" among "+strings.Join(among, ","), func() bool {
		var leaders []string
		for _, id := range among {
			if c.rafts[group][id].State() == raft.Leader {
				leaders = append(leaders, id)
			}
		}
		if len(leaders) != 1 {
			return false
		}
		leader = leaders[0]
		return true
	})
	return leader
}

// apply applies data on node's replica of group, waiting at most timeout:
// a Raft future can block for ever once quorum is lost (STYLE.md rule 17).
func (c *raftCluster) apply(group, node, data string, timeout time.Duration) error {
	f := c.rafts[group][node].Apply([]byte(data), timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // resolved at the latest by Shutdown
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("apply %q on %s/%s: no outcome within %v", data, group, node, timeout)
	}
}

// mustApply commits data in group through whichever of among leads it,
// retrying while leadership moves (safe: the FSM ignores duplicates), and
// returns the leader that committed it.
func (c *raftCluster) mustApply(group string, among []string, data string) string {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		leader := c.waitLeader(group, among)
		err := c.apply(group, leader, data, 2*time.Second)
		if err == nil {
			return leader
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("apply %q on %s: %v", data, group, err)
		}
		c.t.Logf("apply %q on %s/%s: %v; retrying", data, group, leader, err)
	}
}

// waitConverged waits until every replica of group has applied exactly
// the same want entries.
func (c *raftCluster) waitConverged(group string, want int) []string {
	c.t.Helper()
	var entries []string
	waitFor(c.t, 10*time.Second, fmt.Sprintf("all replicas of %s to apply the same %d entries", group, want), func() bool {
		entries = c.fsms[group][c.nodes[0]].snapshot()
		if len(entries) != want {
			return false
		}
		for _, id := range c.nodes[1:] {
			if !slices.Equal(c.fsms[group][id].snapshot(), entries) {
				return false
			}
		}
		return true
	})
	return entries
}

func without(all []string, drop string) []string {
	return slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == drop })
}

func TestRaftGroupsShareAMuxAndSurviveLeaderIsolation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overHub bool
	}{{"NetworkTransport per group", false}, {"Hub", true}} {
		t.Run(tc.name, func(t *testing.T) { testLeaderIsolation(t, tc.overHub) })
	}
}

func testLeaderIsolation(t *testing.T, overHub bool) {
	nodes := []string{"n1", "n2", "n3"}
	groups := []string{"g1", "g2"}
	c := newRaftClusterOver(t, nodes, groups, nil, overHub)

	for _, g := range groups {
		for i := range 10 {
			c.mustApply(g, nodes, fmt.Sprintf("%s-before-%d", g, i))
		}
		c.waitConverged(g, 10)
	}

	old := c.waitLeader("g1", nodes)
	c.fn.Isolate(old)
	rest := without(nodes, old)

	// Right after the cut the old leader still believes it leads: it takes
	// the entry into its log, but no quorum answers, and when its lease
	// runs out it steps down and fails the entry with ErrLeadershipLost (or
	// ErrNotLeader if it had already stepped down).
	lost := make(chan error, 1)
	go func() { lost <- c.apply("g1", old, "lost", 2*time.Second) }()

	// Meanwhile the majority elects a new leader of g1 and commits without
	// old; g2 (whoever led it) keeps committing on the majority side too.
	for _, g := range groups {
		for i := range 5 {
			c.mustApply(g, rest, fmt.Sprintf("%s-during-%d", g, i))
		}
	}

	if err := <-lost; err == nil {
		t.Fatalf("isolated old leader %s committed an entry", old)
	} else {
		t.Logf("apply on isolated old leader %s: %v", old, err)
	}
	if got := len(c.fsms["g1"][old].snapshot()); got != 10 {
		t.Fatalf("isolated %s applied %d entries of g1, want the 10 from before the cut", old, got)
	}

	// On heal the old leader's uncommitted entry is overwritten by the new
	// leader's log, and everyone converges.
	c.fn.Heal()
	for _, g := range groups {
		entries := c.waitConverged(g, 15)
		if slices.Contains(entries, "lost") {
			t.Fatalf("%s: the uncommitted entry of the isolated leader survived: %v", g, entries)
		}
	}
}

func TestRaftReplicatesOverDelayedLinks(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	// Heartbeats now take a delayed round trip; leases and elections get
	// room for it so the delay alone does not depose the leader.
	c := newRaftCluster(t, nodes, []string{"g"}, func(conf *raft.Config) {
		conf.HeartbeatTimeout = 500 * time.Millisecond
		conf.ElectionTimeout = 500 * time.Millisecond
		conf.LeaderLeaseTimeout = 500 * time.Millisecond
	})
	leader := c.mustApply("g", nodes, "warm-up")

	// Every link, so that whoever leads, a commit needs the entry to reach
	// a follower and its ack to come back: one delayed round trip at least.
	const delay = 50 * time.Millisecond
	for _, a := range nodes {
		for _, b := range without(nodes, a) {
			c.fn.SetDelay(a, b, delay)
		}
	}

	start := time.Now()
	c.mustApply("g", nodes, "timed")
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("commit took %v over links delayed %v each way, want >= %v", rtt, delay, 2*delay)
	} else {
		t.Logf("commit round trip %v with %v each way", rtt, delay)
	}

	// Many entries in flight at once still replicate, in order. Under a
	// loaded CI machine leadership may still move; entries that failed are
	// retried (out of order, so only the first-attempt ones are checked
	// for order).
	const n = 50
	futures := make([]raft.ApplyFuture, n)
	for i := range n {
		futures[i] = c.rafts["g"][leader].Apply(fmt.Appendf(nil, "e-%02d", i), 5*time.Second)
	}
	type result struct {
		i   int
		err error
	}
	results := make(chan result, n)
	for i, f := range futures {
		go func() { results <- result{i, f.Error()} }() // resolved at the latest by Shutdown
	}
	deadline := time.After(10 * time.Second)
	var retried []int
	for range n {
		select {
		case r := <-results:
			if r.err != nil {
				retried = append(retried, r.i)
			}
		case <-deadline:
			t.Fatal("applies unresolved after 10s")
		}
	}
	for _, i := range retried {
		c.mustApply("g", nodes, fmt.Sprintf("e-%02d", i))
	}
	entries := c.waitConverged("g", 2+n)
	var inOrder []string
	for _, e := range entries[2:] {
		var i int
		if _, err := fmt.Sscanf(e, "e-%02d", &i); err == nil && !slices.Contains(retried, i) {
			inOrder = append(inOrder, e)
		}
	}
	if !slices.IsSorted(inOrder) {
		t.Fatalf("entries committed out of order: %v", inOrder)
	}
}

// TestRaftCatchesUpBySnapshotOverHub cuts a follower off while the leader
// commits and compacts its log, so on heal the follower can only catch up
// by InstallSnapshot: the Hub's snapshot lane, end to end under Raft.
func TestRaftCatchesUpBySnapshotOverHub(t *testing.T) {
	nodes := []string{"n1", "n2", "n3"}
	c := newRaftClusterOver(t, nodes, []string{"g"}, func(conf *raft.Config) {
		conf.SnapshotThreshold = 20
		conf.SnapshotInterval = 50 * time.Millisecond
		conf.TrailingLogs = 5
	}, true)
	leader := c.mustApply("g", nodes, "warm-up")
	c.waitConverged("g", 1)
	var lagger string
	for _, n := range nodes {
		if n != leader {
			lagger = n
			break
		}
	}
	c.fn.Isolate(lagger)
	rest := without(nodes, lagger)
	for i := range 100 {
		c.mustApply("g", rest, fmt.Sprintf("while-cut-%03d", i))
	}
	// Wait until both members of the majority (so whichever leads) have
	// snapshotted, and so dropped from their logs, far past what the
	// lagger holds.
	waitFor(t, 10*time.Second, "snapshots on the majority", func() bool {
		for _, n := range rest {
			if snapshotIndex(t, c.rafts["g"][n]) < 50 {
				return false
			}
		}
		return true
	})
	c.fn.Heal()
	entries := c.waitConverged("g", 101)
	if entries[0] != "warm-up" || entries[100] != "while-cut-099" {
		t.Fatalf("converged on %v ... %v", entries[0], entries[len(entries)-1])
	}
	if got := snapshotIndex(t, c.rafts["g"][lagger]); got == 0 {
		t.Fatal("the lagger caught up without a snapshot; the test did not exercise InstallSnapshot")
	}
}

func snapshotIndex(t *testing.T, r *raft.Raft) uint64 {
	t.Helper()
	i, err := strconv.ParseUint(r.Stats()["last_snapshot_index"], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return i
}
