// Package inproc is the fault backend without Docker: a Skiff cluster of
// in-process nodes on loopback ports (cluster.LoopbackConfig), each with
// its gRPC server, started and killed by the test itself. It injects the
// faults a process can suffer without help from the network (kill, graceful
// stop, restart on the same data and ports); network faults and pauses
// return fault.ErrUnsupported.
package inproc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault"
	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc"
)

// Config configures an in-process cluster.
type Config struct {
	// Dir holds each node's data directory.
	Dir string
	// Nodes is the cluster size. Default 3.
	Nodes int
	// Logger receives the nodes' logs. Default: discard.
	Logger *slog.Logger
}

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("inproc config: Dir is required"))
	}
	if c.Nodes < 0 || c.Nodes > 9 {
		errs = append(errs, fmt.Errorf("inproc config: Nodes %d: want 1 to 9", c.Nodes))
	}
	return errors.Join(errs...)
}

// Cluster is a running in-process cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	cfg Config
	cl  *client.Client // for leader lookups

	mu    sync.Mutex // guards nodes' running state
	nodes []*node
}

var _ fault.Cluster = (*Cluster)(nil)

// node is one member; cur is nil while it is down.
type node struct {
	cfg    cluster.Config // addresses fixed after the first start, so restarts keep them
	cur    *cluster.Node
	srv    *rpc.Server
	served chan error
}

// Start starts the nodes, waits until the cluster is formed (within ctx)
// and returns it. Close it when done.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg}
	for i := range cfg.Nodes {
		id := fmt.Sprintf("n%d", i)
		ncfg := cluster.LoopbackConfig(filepath.Join(cfg.Dir, id), id, cfg.Nodes)
		ncfg.Logger = cfg.Logger.With("node", id)
		if i > 0 {
			ncfg.Join = []string{c.nodes[0].cfg.GossipAddr}
		}
		n := &node{cfg: ncfg}
		c.nodes = append(c.nodes, n)
		if err := c.startLocked(n); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Close()
		return nil, err
	}
	cl, err := client.New(ctx, client.Config{Brokers: c.Brokers(), RequestTimeout: 5 * time.Second})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("inproc: lookup client: %w", err)
	}
	c.cl = cl
	return c, nil
}

// Brokers returns every node's gRPC address.
func (c *Cluster) Brokers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.cfg.GRPCAddr)
	}
	return addrs
}

// startLocked starts n on its old addresses (fresh loopback ports the
// first time) and serves gRPC.
func (c *Cluster) startLocked(n *node) error {
	addr := n.cfg.GRPCAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("inproc: start %s: %w", n.cfg.ID, err)
	}
	n.cfg.GRPCAddr = ln.Addr().String()
	cn, err := cluster.Start(context.Background(), n.cfg)
	if err != nil {
		ln.Close()
		return fmt.Errorf("inproc: start %s: %w", n.cfg.ID, err)
	}
	n.cfg.RaftAddr, n.cfg.HTTPAddr, n.cfg.GossipAddr = cn.RaftAddr(), cn.HTTPAddr(), cn.GossipAddr()
	n.cur, n.srv, n.served = cn, rpc.NewServer(cn, rpc.WithLogger(n.cfg.Logger)), make(chan error, 1)
	go func(srv *rpc.Server, served chan error) { served <- srv.Serve(ln) }(n.srv, n.served)
	return nil
}

// stopLocked stops n gracefully (handing leaderships away, within ctx) or
// as a crash.
func (c *Cluster) stopLocked(ctx context.Context, n *node, graceful bool) error {
	if n.cur == nil {
		return nil
	}
	cn, srv, served := n.cur, n.srv, n.served
	n.cur, n.srv, n.served = nil, nil, nil
	sctx := ctx
	if !graceful {
		var cancel context.CancelFunc
		sctx, cancel = context.WithCancel(ctx)
		cancel() // no grace: in-flight calls are cut
	}
	srv.Stop(sctx)
	<-served
	if graceful {
		return cn.Close(ctx)
	}
	return cn.Abort()
}

func (c *Cluster) find(id string) (*node, error) {
	for _, n := range c.nodes {
		if n.cfg.ID == id {
			return n, nil
		}
	}
	return nil, fmt.Errorf("inproc: no node %q", id)
}

// Close stops every node (as a crash: the data is thrown away anyway).
func (c *Cluster) Close() error {
	if c.cl != nil {
		c.cl.Close()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.stopLocked(context.Background(), n, false)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) Nodes(context.Context) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, n := range c.nodes {
		ids = append(ids, n.cfg.ID)
	}
	return ids, nil
}

func (c *Cluster) Kill(ctx context.Context, id string) error { return c.stop(ctx, id, false) }
func (c *Cluster) Stop(ctx context.Context, id string) error { return c.stop(ctx, id, true) }

func (c *Cluster) stop(ctx context.Context, id string, graceful bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(id)
	if err != nil {
		return err
	}
	return c.stopLocked(ctx, n, graceful)
}

func (c *Cluster) Start(_ context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.find(id)
	if err != nil || n.cur != nil {
		return err
	}
	n.cfg.Join = c.joinListLocked(n)
	return c.startLocked(n)
}

// joinListLocked is the gossip address of every other running node.
func (c *Cluster) joinListLocked(self *node) []string {
	var join []string
	for _, o := range c.nodes {
		if o != self && o.cur != nil {
			join = append(join, o.cfg.GossipAddr)
		}
	}
	return join
}

func (c *Cluster) StartAll(ctx context.Context) error {
	ids, _ := c.Nodes(ctx)
	var errs []error
	for _, id := range ids {
		errs = append(errs, c.Start(ctx, id))
	}
	return errors.Join(errs...)
}

func (c *Cluster) Pause(context.Context, string) error  { return fault.ErrUnsupported }
func (c *Cluster) Resume(context.Context, string) error { return fault.ErrUnsupported }
func (c *Cluster) Isolate(context.Context, string) error {
	return fault.ErrUnsupported
}
func (c *Cluster) Partition(context.Context, []string, []string) error { return fault.ErrUnsupported }
func (c *Cluster) Loss(context.Context, string, float64) error         { return fault.ErrUnsupported }
func (c *Cluster) Delay(context.Context, string, time.Duration, time.Duration) error {
	return fault.ErrUnsupported
}

// Heal has nothing to undo: this backend injects no network fault.
func (c *Cluster) Heal(context.Context) error { return nil }

// WaitHealthy waits until every node runs, is ready, serves gRPC, and the
// cluster lists every node alive with a controller.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.healthy(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("inproc: cluster not healthy: %w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	c.mu.Lock()
	var running []*cluster.Node
	for _, n := range c.nodes {
		if n.cur == nil {
			c.mu.Unlock()
			return fmt.Errorf("%s is down", n.cfg.ID)
		}
		if !n.cur.Ready() || !n.srv.Serving() {
			c.mu.Unlock()
			return fmt.Errorf("%s is not ready", n.cfg.ID)
		}
		running = append(running, n.cur)
	}
	want := len(c.nodes)
	c.mu.Unlock()
	if c.cl == nil { // during Start: readiness is enough
		return nil
	}
	ci, err := c.cl.DescribeCluster(ctx)
	if err != nil {
		return err
	}
	alive := 0
	for _, b := range ci.Brokers {
		if b.State == "alive" {
			alive++
		}
	}
	if alive != want || ci.ControllerID == "" {
		return fmt.Errorf("%d of %d brokers alive, controller %q", alive, want, ci.ControllerID)
	}
	return nil
}

func (c *Cluster) LeaderOf(ctx context.Context, topic string, partition int32) (string, error) {
	ti, err := c.cl.DescribeTopic(ctx, topic)
	if err != nil {
		return "", fmt.Errorf("inproc: leader of %s/%d: %w", topic, partition, err)
	}
	i := slices.IndexFunc(ti.Partitions, func(p client.PartitionInfo) bool { return p.Partition == partition })
	if i < 0 || ti.Partitions[i].Leader == "" {
		return "", fmt.Errorf("inproc: no leader known for %s/%d", topic, partition)
	}
	return ti.Partitions[i].Leader, nil
}

func (c *Cluster) Controller(ctx context.Context) (string, error) {
	ci, err := c.cl.DescribeCluster(ctx)
	if err != nil {
		return "", fmt.Errorf("inproc: controller: %w", err)
	}
	if ci.ControllerID == "" {
		return "", errors.New("inproc: no controller known")
	}
	return ci.ControllerID, nil
}
