package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc"
)

// testCluster is an in-process cluster: nodes on loopback ports, each with
// its gRPC server. The client under test sees it only over gRPC.
type testCluster struct {
	nodes []*testNode
}

type testNode struct {
	id     string
	addr   string // gRPC address
	node   *cluster.Node
	srv    *rpc.Server
	served chan error

	stopOnce sync.Once
}

// nodeConfig is a node with every listener on port 0 and Raft timing fast
// enough for tests.
func nodeConfig(dir, id string, expect int) cluster.Config {
	cfg := cluster.LoopbackConfig(dir, id, expect)
	if os.Getenv("SKIFF_TEST_LOG") != "" { // the nodes' logs, on stderr
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return cfg
}

// startCluster starts count nodes that bootstrap together, in dir, and
// waits until all are ready.
func startCluster(dir string, count int) (*testCluster, error) {
	c := &testCluster{}
	for i := 0; i < count; i++ {
		cfg := nodeConfig(filepath.Join(dir, fmt.Sprintf("n%d", i)), fmt.Sprintf("n%d", i), count)
		if i > 0 {
			cfg.Join = []string{c.nodes[0].node.GossipAddr()}
		}
		tn, err := startNode(cfg)
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
			return nil, fmt.Errorf("node %s not ready: %w", tn.id, err)
		}
	}
	for _, tn := range c.nodes {
		for !tn.srv.Serving() {
			if ctx.Err() != nil {
				c.close()
				return nil, fmt.Errorf("node %s not serving", tn.id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c, nil
}

// startNode listens first, so the node advertises its listener's real
// address, then starts the node and serves gRPC on the listener.
func startNode(cfg cluster.Config) (*testNode, error) {
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
	tn := &testNode{id: cfg.ID, addr: cfg.GRPCAddr, node: n, srv: rpc.NewServer(n), served: make(chan error, 1)}
	go func() { tn.served <- tn.srv.Serve(ln) }()
	return tn, nil
}

// stop shuts the node down the way an operator's stop does: the server
// stops serving, the node hands its leaderships away and leaves.
func (tn *testNode) stop() {
	tn.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		tn.srv.Stop(ctx)
		<-tn.served
		tn.node.Close(ctx)
	})
}

// kill stops the node as a crash would: connections cut at once, no
// leadership handover, no gossip leave.
func (tn *testNode) kill() {
	tn.stopOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // no grace: in-flight calls are cut
		tn.srv.Stop(ctx)
		<-tn.served
		tn.node.Abort()
	})
}

func (c *testCluster) close() {
	var wg sync.WaitGroup
	for _, tn := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tn.stop()
		}()
	}
	wg.Wait()
}

func (c *testCluster) brokers() []string {
	var addrs []string
	for _, tn := range c.nodes {
		addrs = append(addrs, tn.addr)
	}
	return addrs
}

func (c *testCluster) node(id string) *testNode {
	for _, tn := range c.nodes {
		if tn.id == id {
			return tn
		}
	}
	return nil
}

// shared is one cluster for the tests that do not harm it, started on
// first use and stopped by TestMain.
var shared struct {
	once sync.Once
	c    *testCluster
	dir  string
	err  error
}

func sharedCluster(t testing.TB) *testCluster {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "skiff-client-test-")
		if shared.err == nil {
			shared.c, shared.err = startCluster(shared.dir, 3)
		}
	})
	if shared.err != nil {
		t.Fatalf("start cluster: %v", shared.err)
	}
	return shared.c
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.c != nil {
		shared.c.close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// newClient connects to c and closes the client when the test ends.
func newClient(t testing.TB, c *testCluster) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := client.Config{Brokers: c.brokers()}
	if os.Getenv("SKIFF_CLIENT_DEBUG") != "" { // the client's retries, on stderr
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cl, err := client.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// createTopic creates a topic and waits until every partition has a leader.
func createTopic(t testing.TB, cl *client.Client, name string, partitions, rf int) {
	t.Helper()
	createTopicWith(t, cl, name, partitions, rf, nil)
}

// createTopicWith is createTopic with topic configs.
func createTopicWith(t testing.TB, cl *client.Client, name string, partitions, rf int, configs map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.CreateTopic(ctx, name, partitions, rf, configs); err != nil {
		t.Fatal(err)
	}
	// The package's tests share one cluster: leave it as found, so a
	// repeated run (-count=2) starts from an empty topic again.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cl.DeleteTopic(ctx, name)
	})
	for {
		ti, err := cl.DescribeTopic(ctx, name)
		if err == nil && len(ti.Partitions) == partitions {
			ok := true
			for _, p := range ti.Partitions {
				ok = ok && p.Leader != ""
			}
			if ok {
				return
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s has no leaders: %v %+v", name, err, ti)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// panicTB lets examples, which have no *testing.T, use the test helpers.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (panicTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
