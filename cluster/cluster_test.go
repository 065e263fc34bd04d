package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/record"
)

// testCluster runs several nodes in this process on loopback ports.
type testCluster struct {
	t     *testing.T
	nodes []*testNode
}

type testNode struct {
	cfg Config
	cur atomic.Pointer[Node] // nil while stopped
}

func (tn *testNode) node() *Node { return tn.cur.Load() }

func testConfig(t *testing.T, dir string, expect int) Config {
	return LoopbackConfig(dir, "", expect)
}

// newTestCluster starts count nodes that bootstrap together and waits until
// every one is ready.
func newTestCluster(t *testing.T, count int) *testCluster {
	return newTestClusterWith(t, count, nil)
}

// newTestClusterWith is newTestCluster with each node's config passed
// through configure (when not nil) before the node starts.
func newTestClusterWith(t *testing.T, count int, configure func(cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	base := t.TempDir()
	for i := 0; i < count; i++ {
		cfg := testConfig(t, filepath.Join(base, fmt.Sprintf("n%d", i)), count)
		cfg.ID = fmt.Sprintf("n%d", i)
		if configure != nil {
			configure(&cfg)
		}
		if i > 0 {
			cfg.Join = []string{c.nodes[0].node().GossipAddr()}
		}
		tn := &testNode{cfg: cfg}
		c.nodes = append(c.nodes, tn)
		c.start(tn)
	}
	t.Cleanup(c.close)
	c.waitReady(30 * time.Second)
	return c
}

func (c *testCluster) start(tn *testNode) {
	c.t.Helper()
	n, err := Start(context.Background(), tn.cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", tn.cfg.ID, err)
	}
	tn.cur.Store(n)
	// A restart binds the same ports, as a real node keeps its addresses.
	tn.cfg.RaftAddr, tn.cfg.HTTPAddr, tn.cfg.GossipAddr = n.RaftAddr(), n.HTTPAddr(), n.GossipAddr()
}

// addNode starts one more node joining the cluster.
func (c *testCluster) addNode() *testNode {
	// Started as an operator might start it: with the cluster's
	// --bootstrap-expect still set. It must join, not bootstrap anew.
	cfg := testConfig(c.t, filepath.Join(c.t.TempDir(), "extra"), len(c.nodes))
	// An id that sorts first: had it bootstrapped, it would have picked
	// itself as a voter.
	cfg.ID = fmt.Sprintf("a%d", len(c.nodes))
	cfg.Join = []string{c.anyNode().GossipAddr()}
	tn := &testNode{cfg: cfg}
	c.nodes = append(c.nodes, tn)
	c.start(tn)
	return tn
}

func (c *testCluster) stop(tn *testNode, graceful bool) {
	c.t.Helper()
	n := tn.node()
	tn.cur.Store(nil)
	var err error
	if graceful {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = n.Close(ctx)
		cancel()
	} else {
		err = n.Abort()
	}
	if err != nil {
		c.t.Logf("stop %s: %v", tn.cfg.ID, err)
	}
}

func (c *testCluster) restart(tn *testNode) {
	var join []string
	for _, o := range c.nodes {
		if o != tn && o.node() != nil {
			join = append(join, o.node().GossipAddr())
		}
	}
	tn.cfg.Join = join
	c.start(tn)
}

func (c *testCluster) close() {
	for _, tn := range c.nodes {
		if n := tn.node(); n != nil {
			n.Abort()
		}
	}
}

func (c *testCluster) running() []*Node {
	var out []*Node
	for _, tn := range c.nodes {
		if n := tn.node(); n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *testCluster) anyNode() *Node { return c.running()[0] }

func (c *testCluster) waitReady(timeout time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, n := range c.running() {
		if err := n.WaitReady(ctx); err != nil {
			c.t.Fatal(err)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAllLed waits until every partition of topic has a leader whose
// in-sync set covers all its assigned replicas, and returns the description.
func (c *testCluster) waitAllLed(topic string, timeout time.Duration) TopicDescription {
	c.t.Helper()
	var desc TopicDescription
	defer func() {
		if c.t.Failed() {
			c.t.Logf("last description of %s: %+v", topic, desc.Partitions)
		}
	}()
	waitFor(c.t, timeout, "every partition of "+topic+" led and fully in sync", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		desc, err = c.anyNode().DescribeTopic(ctx, topic)
		if err != nil {
			return false
		}
		for _, p := range desc.Partitions {
			if p.Leader == "" || len(p.InSync) != len(p.Replicas) {
				return false
			}
		}
		return true
	})
	return desc
}

// createLedTopic creates a topic and waits until every partition is led
// and fully in sync.
func (c *testCluster) createLedTopic(ctx context.Context, name string, partitions, rf int) {
	c.t.Helper()
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: name, Partitions: partitions, ReplicationFactor: rf}); err != nil {
		c.t.Fatal(err)
	}
	c.waitAllLed(name, 30*time.Second)
}

// assertAssignmentsStay checks, for the whole period, that no partition of
// before's topic is re-placed in n's metadata.
func (c *testCluster) assertAssignmentsStay(n *Node, before *metadata.Topic, period time.Duration, why string) {
	c.t.Helper()
	deadline := time.Now().Add(period)
	for time.Now().Before(deadline) {
		after, _ := n.Metadata().Topic(before.Name)
		for i := range before.Partitions {
			if fmt.Sprint(before.Partitions[i].Replicas) != fmt.Sprint(after.Partitions[i].Replicas) {
				c.t.Fatalf("partition %d re-placed %s: %v -> %v", i, why, before.Partitions[i].Replicas, after.Partitions[i].Replicas)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func batchOf(t *testing.T, producer int64, seq int32) []byte {
	t.Helper()
	b, err := record.Encode(record.BatchOptions{Idempotent: true, ProducerID: producer, BaseSequence: seq},
		[]record.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(fmt.Sprintf("p%d-s%d", producer, seq))}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produce sends batch to whichever node leads the partition, retrying
// through elections; idempotent batches make retries safe.
func (c *testCluster) produce(ctx context.Context, topic string, p int32, batch []byte) (partition.ProduceResult, error) {
	for {
		var last error
		for _, n := range c.running() {
			r, err := n.Replica(ctx, topic, p)
			if err != nil {
				last = err
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			res, err := r.Produce(pctx, batch, 0)
			cancel()
			if err == nil {
				return res, nil
			}
			if errors.Is(err, partition.ErrOutOfOrderSequence) || errors.Is(err, partition.ErrInvalidBatch) {
				return res, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
			return partition.ProduceResult{}, fmt.Errorf("produce to %s/%d: %w (last error: %v)", topic, p, ctx.Err(), last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// acked records what the cluster acknowledged: value -> (partition, offset).
type acked struct {
	mu sync.Mutex
	m  map[string][2]int64
}

func (a *acked) add(v string, p int32, off int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string][2]int64{}
	}
	a.m[v] = [2]int64{int64(p), off}
}

func (a *acked) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.m)
}

// verifyAcked reads every partition from its leader and checks each
// acknowledged value sits at its acknowledged offset, once.
func (c *testCluster) verifyAcked(topic string, a *acked) {
	c.t.Helper()
	ctx := context.Background()
	t, _ := c.anyNode().Metadata().Topic(topic)
	found := map[string][2]int64{}
	for _, pa := range t.Partitions {
		var r *partition.Replica
		waitFor(c.t, 20*time.Second, "a leader to read from", func() bool {
			for _, n := range c.running() {
				if rr, err := n.Replica(ctx, topic, pa.Partition); err == nil && rr.IsLeader() {
					r = rr
					return true
				}
			}
			return false
		})
		_, hw := r.Offsets()
		for off := int64(0); off < hw; {
			res, err := r.Fetch(ctx, partition.FetchRequest{Offset: off, MaxBytes: 1 << 20})
			if err != nil {
				c.t.Fatalf("fetch %s/%d@%d: %v", topic, pa.Partition, off, err)
			}
			for batch, err := range record.Batches(res.Batches) {
				if err != nil {
					c.t.Fatal(err)
				}
				_, recs, err := record.Decode(batch)
				if err != nil {
					c.t.Fatal(err)
				}
				for _, rec := range recs {
					v := string(rec.Value)
					if prev, dup := found[v]; dup {
						c.t.Fatalf("value %s twice: %v and %d/%d", v, prev, pa.Partition, rec.Offset)
					}
					found[v] = [2]int64{int64(pa.Partition), rec.Offset}
					off = rec.Offset + 1
				}
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for v, at := range a.m {
		if got, ok := found[v]; !ok || got != at {
			c.t.Fatalf("acknowledged %s at %v: found %v (present %v)", v, at, got, ok)
		}
	}
}

func TestThreeNodesFormClusterAndSpreadLeaders(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "orders", Partitions: 12, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	desc := c.waitAllLed("orders", 30*time.Second)
	// Preferred leaders are spread and leaders move to them.
	waitFor(t, 30*time.Second, "leaders spread over all nodes", func() bool {
		desc = c.waitAllLed("orders", 10*time.Second)
		count := map[string]int{}
		for _, p := range desc.Partitions {
			count[p.Leader]++
		}
		for _, n := range c.running() {
			if count[n.ID()] == 0 || count[n.ID()] > 12/3+1 {
				return false
			}
		}
		return true
	})
	a := &acked{}
	for p := int32(0); p < 12; p++ {
		res, err := c.produce(ctx, "orders", p, batchOf(t, int64(p), 0))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s0", p), p, res.BaseOffset)
	}
	c.verifyAcked("orders", a)
	// Every node sees the same topic, and the metrics say who leads.
	for _, n := range c.running() {
		if _, ok := n.Metadata().Topic("orders"); !ok {
			t.Fatalf("node %s lacks the topic", n.ID())
		}
	}
	st := c.anyNode().Status(ctx)
	if len(st.Nodes) != 3 || st.Partitions != 12 || st.OfflinePartitions != 0 || st.ControllerID == "" {
		t.Fatalf("cluster status: %+v", st)
	}
}

func TestCreateTopicRejectsBadInput(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name  string
		spec  TopicSpec
		field string
	}{
		{"bad name", TopicSpec{Name: "bad name", Partitions: 1, ReplicationFactor: 1}, "name"},
		{"dot", TopicSpec{Name: ".", Partitions: 1, ReplicationFactor: 1}, "name"},
		{"zero partitions", TopicSpec{Name: "t", Partitions: 0, ReplicationFactor: 1}, "partitions"},
		{"too many partitions", TopicSpec{Name: "t", Partitions: 10001, ReplicationFactor: 1}, "partitions"},
		{"rf above live nodes", TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 4}, "replication_factor"},
		{"unknown config", TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"retention.weeks": "2"}}, "config.retention.weeks"},
		{"bad config value", TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"durability": "maybe"}}, "config.durability"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.anyNode().CreateTopic(ctx, tt.spec)
			var ia *metadata.InvalidArgumentError
			if !errors.As(err, &ia) || ia.Field != tt.field {
				t.Fatalf("got %v, want InvalidArgument on %s", err, tt.field)
			}
			if len(c.anyNode().Topics()) != 0 {
				t.Fatal("a rejected topic was created")
			}
		})
	}
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "t", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, metadata.ErrTopicExists) {
		t.Fatalf("duplicate create: %v", err)
	}
}

func TestTopicDeleteRemovesReplicasEverywhere(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Created through one node, deleted through another: writes forward to
	// the meta leader.
	if _, err := c.running()[1].CreateTopic(ctx, TopicSpec{Name: "gone", Partitions: 3, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	c.waitAllLed("gone", 30*time.Second)
	if _, err := c.produce(ctx, "gone", 0, batchOf(t, 1, 0)); err != nil {
		t.Fatal(err)
	}
	partitionDirs := func(n *Node) []os.DirEntry {
		entries, _ := os.ReadDir(filepath.Join(n.cfg.DataDir, "partitions"))
		return entries
	}
	for _, n := range c.running() {
		if got := len(partitionDirs(n)); got != 3 {
			t.Fatalf("node %s holds %d partition dirs, want 3", n.ID(), got)
		}
	}
	if err := c.running()[2].DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "partition dirs removed on every node", func() bool {
		for _, n := range c.running() {
			if len(partitionDirs(n)) != 0 {
				return false
			}
		}
		return true
	})
	if err := c.anyNode().DeleteTopic(ctx, "gone"); !errors.Is(err, metadata.ErrUnknownTopic) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestRestartedNodeRejoinsWithoutReplacement(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 3, 3)
	before, _ := c.anyNode().Metadata().Topic("t")
	a := &acked{}
	victim := c.nodes[2]
	c.stop(victim, true)
	for seq := int32(0); seq < 20; seq++ {
		res, err := c.produce(ctx, "t", seq%3, batchOf(t, int64(seq%3), seq/3))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s%d", seq%3, seq/3), seq%3, res.BaseOffset)
	}
	c.restart(victim)
	c.waitReady(30 * time.Second)
	c.waitAllLed("t", 30*time.Second)
	after, _ := c.anyNode().Metadata().Topic("t")
	for i := range before.Partitions {
		if fmt.Sprint(before.Partitions[i].Replicas) != fmt.Sprint(after.Partitions[i].Replicas) {
			t.Fatalf("partition %d re-placed: %v -> %v", i, before.Partitions[i].Replicas, after.Partitions[i].Replicas)
		}
	}
	// The restarted node caught up: its replicas reach the leaders' high
	// watermarks.
	waitFor(t, 20*time.Second, "restarted node caught up", func() bool {
		for p := int32(0); p < 3; p++ {
			r, err := victim.node().Replica(ctx, "t", p)
			if err != nil {
				return false
			}
			_, hw := r.Offsets()
			desc, err := c.anyNode().DescribeTopic(ctx, "t")
			if err != nil || desc.Partitions[p].HighWatermark != hw {
				return false
			}
		}
		return true
	})
	c.verifyAcked("t", a)
}

func TestDeadNodeReplicasMoveToSpareNode(t *testing.T) {
	c := newTestCluster(t, 3)
	spare := c.addNode()
	c.waitReady(30 * time.Second)
	// The spare joined the existing meta group instead of bootstrapping its
	// own: its first meta log entry is the cluster's original configuration.
	var first raft.Log
	if err := spare.node().meta.logs.GetLog(1, &first); err != nil {
		t.Fatal(err)
	}
	if first.Type != raft.LogConfiguration || strings.Contains(string(first.Data), spare.cfg.ID) {
		t.Fatalf("spare's meta log starts with its own bootstrap: %q", first.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 4, 3)
	a := &acked{}
	for p := int32(0); p < 4; p++ {
		res, err := c.produce(ctx, "t", p, batchOf(t, int64(p), 0))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s0", p), p, res.BaseOffset)
	}
	victim := c.nodes[1]
	victimID := victim.cfg.ID
	c.stop(victim, false)
	// Still writable after elections.
	for p := int32(0); p < 4; p++ {
		res, err := c.produce(ctx, "t", p, batchOf(t, int64(p), 1))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s1", p), p, res.BaseOffset)
	}
	// After replace-after the dead node's replicas live elsewhere and every
	// partition is back to three in-sync replicas.
	waitFor(t, 60*time.Second, "replication factor restored without the dead node", func() bool {
		tp, _ := c.anyNode().Metadata().Topic("t")
		for _, pa := range tp.Partitions {
			for _, id := range pa.Replicas {
				if id == victimID {
					return false
				}
			}
		}
		desc, err := c.anyNode().DescribeTopic(ctx, "t")
		if err != nil {
			return false
		}
		for _, p := range desc.Partitions {
			if p.Leader == "" || len(p.InSync) != 3 {
				return false
			}
		}
		return true
	})
	c.verifyAcked("t", a)
	// The dead node was a meta voter: the controller replaced it with the
	// spare, so the meta group keeps three voters.
	waitFor(t, 30*time.Second, "meta voters without the dead node", func() bool {
		var leader *Node
		for _, n := range c.running() {
			if n.meta.isLeader() {
				leader = n
			}
		}
		if leader == nil {
			return false
		}
		servers, err := leader.meta.servers(ctx)
		if err != nil {
			return false
		}
		voters := 0
		for _, s := range servers {
			if string(s.ID) == victimID {
				return false
			}
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
		return voters == 3
	})
}

func TestRollingRestartLosesNoAckedWrite(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c.createLedTopic(ctx, "t", 3, 3)
	a := &acked{}
	stop := make(chan struct{})
	errs := make(chan error, 3)
	var wg sync.WaitGroup
	// The longest time each partition went without an acknowledgement: the
	// unavailability window a producer saw (reported, not asserted: timing
	// on a shared machine is for benchmarks).
	windows := make([]time.Duration, 3)
	for p := int32(0); p < 3; p++ {
		wg.Add(1)
		go func(p int32) {
			defer wg.Done()
			last := time.Now()
			for seq := int32(0); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := c.produce(ctx, "t", p, batchOf(t, int64(p), seq))
				if err != nil {
					errs <- err
					return
				}
				windows[p] = max(windows[p], time.Since(last))
				last = time.Now()
				a.add(fmt.Sprintf("p%d-s%d", p, seq), p, res.BaseOffset)
			}
		}(p)
	}
	for _, tn := range c.nodes {
		before := a.len()
		c.stop(tn, true)
		c.restart(tn)
		c.waitReady(30 * time.Second)
		c.waitAllLed("t", 30*time.Second)
		waitFor(t, 30*time.Second, "writes after restarting "+tn.cfg.ID, func() bool { return a.len() > before+30 })
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c.verifyAcked("t", a)
	t.Logf("rolling restart: %d acknowledged writes; longest gap without an ack per partition: %v", a.len(), windows)
}

func TestDeadNodeWithoutSpareKeepsAssignment(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 3, 3)
	before, _ := c.anyNode().Metadata().Topic("t")
	c.stop(c.nodes[0], false)
	a := &acked{}
	for p := int32(0); p < 3; p++ {
		res, err := c.produce(ctx, "t", p, batchOf(t, int64(p), 0))
		if err != nil {
			t.Fatal(err)
		}
		a.add(fmt.Sprintf("p%d-s0", p), p, res.BaseOffset)
	}
	// Past replace-after there is nowhere to move the replicas: the
	// assignment stays, the partitions stay writable and under-replicated.
	c.assertAssignmentsStay(c.anyNode(), before, c.nodes[1].cfg.ReplaceAfter+3*time.Second, "with no spare node")
	st := c.anyNode().Status(ctx)
	if st.UnderReplicatedPartition != 3 || st.OfflinePartitions != 0 {
		t.Fatalf("status with a dead node: %+v", st)
	}
	c.verifyAcked("t", a)
}

func TestHTTPEndpointsServeHealthMetricsAndMetadata(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "web", 2, 3)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + c.nodes[1].node().HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d", code)
	}
	// An election on a loaded machine can leave a partition leaderless, or
	// a replica out of sync, for a moment: the description settles.
	var desc TopicDescription
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := get("/v1/topics/web")
		desc = TopicDescription{}
		if err := json.Unmarshal([]byte(body), &desc); code != http.StatusOK || err != nil {
			t.Fatalf("/v1/topics/web: %d %v %s", code, err, body)
		}
		if len(desc.Partitions) != 2 {
			t.Fatalf("description: %+v, want 2 partitions", desc.Partitions)
		}
		if desc.Partitions[0].Leader != "" && desc.Partitions[1].Leader != "" && len(desc.Partitions[0].InSync) == 3 && len(desc.Partitions[1].InSync) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("description never settled with leaders and 3 in sync: %+v", desc.Partitions)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get("/v1/topics/nope"); code != http.StatusNotFound {
		t.Fatalf("unknown topic: %d", code)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{`skiff_partition_high_watermark{partition="web/0/`, "skiff_node_replicas 2", "skiff_node_under_replicated_partitions 0"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
}

func TestAlterTopicConfig(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.anyNode().CreateTopic(ctx, TopicSpec{Name: "cfg", Partitions: 1, ReplicationFactor: 3,
		Configs: map[string]string{"retention.ms": "60000"}}); err != nil {
		t.Fatal(err)
	}
	topic, err := c.running()[1].AlterTopicConfig(ctx, "cfg", map[string]string{"retention.bytes": "1048576"}, []string{"retention.ms"})
	if err != nil {
		t.Fatal(err)
	}
	got := topic.Config.Map()
	if got["retention.bytes"] != "1048576" || got["retention.ms"] != metadata.DefaultTopicConfig().Map()["retention.ms"] {
		t.Fatalf("config after alter: %v", got)
	}
	for _, n := range c.running() {
		waitFor(t, 5*time.Second, "every node to see the new config", func() bool {
			tp, ok := n.Metadata().Topic("cfg")
			return ok && tp.Config.RetentionBytes == 1<<20
		})
	}
	// Durability changes reopen the replicas; the partition keeps working.
	if _, err := c.anyNode().AlterTopicConfig(ctx, "cfg", map[string]string{"durability": "replicated"}, nil); err != nil {
		t.Fatal(err)
	}
	c.waitAllLed("cfg", 30*time.Second)
	if _, err := c.produce(ctx, "cfg", 0, batchOf(t, 1, 0)); err != nil {
		t.Fatal(err)
	}
	_, err = c.anyNode().AlterTopicConfig(ctx, "cfg", map[string]string{"retention.forever": "1"}, nil)
	var ia *metadata.InvalidArgumentError
	if !errors.As(err, &ia) || ia.Field != "config.retention.forever" {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := c.anyNode().AlterTopicConfig(ctx, "nope", map[string]string{"retention.ms": "1"}, nil); !errors.Is(err, metadata.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
}

func TestMetadataWithTopicWaitsOutReplicationLag(t *testing.T) {
	c := newTestCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("fresh%d", i)
		if _, err := c.nodes[0].node().CreateTopic(ctx, TopicSpec{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
		// Asked right away, every other node answers with the new topic.
		for _, tn := range c.nodes[1:] {
			if _, ok := tn.node().MetadataWithTopic(ctx, name).Topics[name]; !ok {
				t.Fatalf("node %s does not know %s yet", tn.cfg.ID, name)
			}
		}
	}
	if _, ok := c.nodes[1].node().MetadataWithTopic(ctx, "never-created").Topics["never-created"]; ok {
		t.Fatal("an unknown topic was found")
	}
}

func TestAdvertisedGRPCAddressReachesClients(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), 1)
	cfg.ID = "solo"
	cfg.MetaVoters = 1
	cfg.AdvertiseGRPCAddr = "127.0.0.1:19410"
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Abort()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got := n.BrokerGRPCAddr("solo"); got != "127.0.0.1:19410" {
		t.Fatalf("registered gRPC address %q", got)
	}
	bad := testConfig(t, t.TempDir(), 1)
	bad.AdvertiseGRPCAddr = "no-port"
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--advertise-grpc-addr") {
		t.Fatalf("validate: %v", err)
	}
}

func TestGossipCutAloneMovesNoReplicas(t *testing.T) {
	c := newTestCluster(t, 3)
	c.addNode()
	c.waitReady(30 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c.createLedTopic(ctx, "t", 4, 3)
	before, _ := c.anyNode().Metadata().Topic("t")
	// n1 stops gossiping but keeps serving Raft and HTTP: the others see
	// it dead, yet it must keep its replicas.
	victim := c.nodes[1].node()
	if err := victim.members.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "gossip to call n1 dead", func() bool {
		_, dead := c.nodes[0].node().deadSince()["n1"]
		return dead
	})
	c.assertAssignmentsStay(c.nodes[0].node(), before, c.nodes[0].cfg.ReplaceAfter+4*time.Second, "off a node that still serves")
}
