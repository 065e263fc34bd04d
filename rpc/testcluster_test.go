package rpc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// testCluster is an in-process cluster of nodes, each with its gRPC server
// on its own loopback port, and a client connection to each.
type testCluster struct {
	dir   string
	nodes []*testNode
}

// testNode is one node, its server and the clients of that server.
type testNode struct {
	node     *cluster.Node
	srv      *Server
	addr     string // the gRPC address, as advertised
	conn     *grpc.ClientConn
	producer skiffpb.ProducerClient
	consumer skiffpb.ConsumerClient
	admin    skiffpb.AdminClient
	served   chan error
}

// testClusterConfig is a node config with every listener on port 0 and
// Raft timing fast enough for tests (as in cluster's own tests).
func testClusterConfig(dir, id string, expect int) cluster.Config {
	return cluster.LoopbackConfig(dir, id, expect)
}

// startTestCluster starts count nodes that bootstrap together, each with
// a server, and waits until every node is ready.
func startTestCluster(dir string, count int) (*testCluster, error) {
	c := &testCluster{dir: dir}
	for i := 0; i < count; i++ {
		cfg := testClusterConfig(filepath.Join(dir, fmt.Sprintf("n%d", i)), fmt.Sprintf("n%d", i), count)
		if i > 0 {
			cfg.Join = []string{c.nodes[0].node.GossipAddr()}
		}
		tn, err := startTestNode(cfg)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, tn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tn := range c.nodes {
		if err := tn.node.WaitReady(ctx); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// startTestNode listens first, so that the node advertises the real
// address of its gRPC listener (as cmd/skiff's runNode does).
func startTestNode(cfg cluster.Config) (*testNode, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg.GRPCAddr = ln.Addr().String()
	n, err := cluster.Start(context.Background(), cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	tn := &testNode{node: n, srv: NewServer(n), addr: cfg.GRPCAddr, served: make(chan error, 1)}
	go func() { tn.served <- tn.srv.Serve(ln) }()
	if tn.conn, err = grpc.NewClient(tn.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		tn.stop()
		return nil, err
	}
	tn.producer = skiffpb.NewProducerClient(tn.conn)
	tn.consumer = skiffpb.NewConsumerClient(tn.conn)
	tn.admin = skiffpb.NewAdminClient(tn.conn)
	return tn, nil
}

func (tn *testNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if tn.conn != nil {
		tn.conn.Close()
	}
	tn.srv.Stop(ctx)
	<-tn.served
	tn.node.Close(ctx)
}

// close stops the nodes one after the other: closed together, each
// hands its leaderships to nodes that are closing too, and shutdown takes
// tens of seconds instead of about one.
func (c *testCluster) close() {
	for _, tn := range c.nodes {
		tn.stop()
	}
}

// byAddr returns the node serving gRPC at addr.
func (c *testCluster) byAddr(t testing.TB, addr string) *testNode {
	t.Helper()
	for _, tn := range c.nodes {
		if tn.addr == addr {
			return tn
		}
	}
	t.Fatalf("no node serves %q", addr)
	return nil
}

// byID returns the node with that id.
func (c *testCluster) byID(t testing.TB, id string) *testNode {
	t.Helper()
	for _, tn := range c.nodes {
		if tn.node.ID() == id {
			return tn
		}
	}
	t.Fatalf("no node %q", id)
	return nil
}

var (
	sharedOnce    sync.Once
	sharedCluster *testCluster
	sharedErr     error
)

// theCluster returns the 3-node cluster the package's tests share (each
// test works on its own topics); TestMain stops it.
func theCluster(t testing.TB) *testCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "skiff-rpc-test-")
		if err != nil {
			sharedErr = err
			return
		}
		sharedCluster, sharedErr = startTestCluster(dir, 3)
	})
	if sharedErr != nil {
		t.Fatalf("start cluster: %v", sharedErr)
	}
	return sharedCluster
}

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCluster != nil {
		sharedCluster.close()
		os.RemoveAll(sharedCluster.dir)
	}
	os.Exit(code)
}

// createTopic creates a topic through the first node and waits until every
// partition has a leader that serves (ListOffsets answers), returning the
// leaders' nodes by partition.
func (c *testCluster) createTopic(t testing.TB, name string, partitions, rf int, configs map[string]string) []*testNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.nodes[0].admin.CreateTopic(ctx, &skiffpb.CreateTopicRequest{Name: name, Partitions: int32(partitions),
		ReplicationFactor: int32(rf), Configs: configs}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	leaders := make([]*testNode, partitions)
	for p := range leaders {
		leaders[p] = c.waitLeader(t, name, int32(p))
	}
	return leaders
}

// waitLeader waits until the partition's preferred replica leads it and
// serves leader-only requests, and returns that node. (Leadership moves to
// the preferred replica soon after a topic is created; waiting for it
// keeps the tests' leaders still.)
func (c *testCluster) waitLeader(t testing.TB, topic string, p int32) *testNode {
	t.Helper()
	var leader *testNode
	waitFor(t, 30*time.Second, fmt.Sprintf("the preferred leader of %s/%d serving", topic, p), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		tm, err := c.nodes[0].admin.DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: topic})
		if err != nil || int(p) >= len(tm.Partitions) {
			return false
		}
		tn := c.byID(t, tm.Partitions[p].Replicas[0])
		_, err = tn.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: topic, Partition: p})
		if err != nil {
			return false
		}
		leader = tn
		return true
	})
	return leader
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ctxFor returns a context bounded by d and cancelled when the test ends.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// statusOf returns err's status, failing the test for a non-status error.
func statusOf(t testing.TB, err error) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	return st
}

// wantCode fails the test unless err has the code.
func wantCode(t testing.TB, err error, code codes.Code) *status.Status {
	t.Helper()
	st := statusOf(t, err)
	if st.Code() != code {
		t.Fatalf("got %v (%s), want %v", st.Code(), st.Message(), code)
	}
	return st
}

// fieldViolation returns the field named by the status's BadRequest detail.
func fieldViolation(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field
		}
	}
	return ""
}

// notLeaderDetail returns the status's NotLeader detail, nil if none.
func notLeaderDetail(st *status.Status) *skiffpb.NotLeader {
	for _, d := range st.Details() {
		if nl, ok := d.(*skiffpb.NotLeader); ok {
			return nl
		}
	}
	return nil
}

// errorReason returns the status's ErrorInfo reason.
func errorReason(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.Reason
		}
	}
	return ""
}
