package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/skiff-mq/skiff/consumergroup"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/internal/raftutil"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/raftnet"
)

// Node is one Skiff process: gossip membership, its member of the meta Raft
// group, its partition replicas and its HTTP endpoints. Start brings it up
// in order; Close takes it down in the reverse order.
type Node struct {
	cfg    Config
	id     string
	logger *slog.Logger
	reg    *prometheus.Registry

	mux      *raftnet.Mux
	hub      *raftnet.Hub // every Raft group's transport, on mux
	httpLn   net.Listener
	httpSrv  *http.Server
	httpMux  *http.ServeMux // the public HTTP port's routes (HandleHTTP adds some)
	meta     *metaGroup
	members  *membership.Membership
	replicas *replicaSet
	partNode *partition.Node // group commit and memory budgets of all replicas
	groups   *consumergroup.Coordinator
	// peerFailed holds, per node id, when a partition status probe of it
	// last failed.
	peerFailed sync.Map
	// creatingOffsets is set while a request to create the offsets topic
	// is in flight.
	creatingOffsets atomic.Bool
	metrics         *nodeMetrics
	// peerSrv serves the node-to-node routes on the Raft mux; peerClient
	// reaches other nodes' (peer.go).
	peerSrv    *http.Server
	peerClient *http.Client
	// livenessClient holds the long-lived liveness requests (liveness.go):
	// like peerClient but without its whole-request timeout.
	livenessClient *http.Client
	// gossip is members once it has started: the mux's plaintext peer
	// check runs on its own goroutines from before then.
	gossip atomic.Pointer[membership.Membership]

	// Advertised addresses (bind addresses with real ports and the
	// advertise host).
	raftAddr, httpAddr, grpcAddr string

	registered atomic.Bool // this node's broker entry matches its addresses

	rebal rebalancer // the rebalance this node applies (rebalance.go)
	// shareProgress holds the share groups' progress this node's
	// coordinator reports, until runShareProgress sends it.
	shareProgress shareProgressSender
	disk          diskMonitor // free space of the data directory (disk.go)

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Start brings a node up. It returns once the node's own services run; the
// cluster may still be forming (see WaitReady).
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, logger: cfg.Logger, reg: cfg.Registry, stop: make(chan struct{})}
	n.disk.wake = make(chan struct{}, 1)
	if n.logger == nil {
		n.logger = slog.New(slog.DiscardHandler)
	}
	if n.reg == nil {
		n.reg = prometheus.NewRegistry()
	}
	if err := n.start(ctx); err != nil {
		n.shutdown(context.Background(), false)
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	id, err := loadOrCreateNodeID(cfg.DataDir, cfg.ID)
	if err != nil {
		return err
	}
	n.id = id
	n.logger = n.logger.With("node", id)

	// Listeners first: their real ports (port 0 in tests) are what we
	// advertise.
	var raftLn net.Listener
	if cfg.Faults != nil {
		raftLn, err = cfg.Faults.Listen(id, cfg.RaftAddr)
	} else {
		raftLn, err = net.Listen("tcp", cfg.RaftAddr)
	}
	if err != nil {
		return fmt.Errorf("listen raft %s: %w", cfg.RaftAddr, err)
	}
	n.raftAddr = cfg.advertise(raftLn.Addr().String())
	muxCfg := raftnet.DefaultMuxConfig()
	muxCfg.NodeID = id
	muxCfg.Advertise = n.raftAddr
	muxCfg.Logger = n.logger
	muxCfg.Authorize = n.authorizePeer
	n.metrics = newNodeMetrics(n)
	n.registerDiskMetrics()
	muxCfg.OnRefused = func(reason string) { n.metrics.peerRefused.WithLabelValues(reason).Inc() }
	if cfg.TLS != nil {
		if certID := cfg.TLS.NodeID(); certID != id {
			raftLn.Close()
			return fmt.Errorf("tls: certificate %s names node %q, but this node is %q: give each node its own certificate (skiff certs create --nodes %s)", "--tls-cert-file", certID, id, id)
		}
		muxCfg.TLS = &raftnet.MuxTLS{Server: cfg.TLS.PeerServerConfig(), Client: cfg.TLS.PeerClientConfig(), PeerID: certs.PeerNodeID}
	}
	if cfg.Faults != nil {
		muxCfg = cfg.Faults.Configure(id, muxCfg)
	}
	if n.mux, err = raftnet.NewMux(raftLn, muxCfg); err != nil {
		raftLn.Close()
		return fmt.Errorf("raft mux: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
	}
	plain := map[string]string{}
	if cfg.TLS != nil {
		n.httpLn = tls.NewListener(n.httpLn, cfg.TLS.ServerConfig("h2", "http/1.1"))
	} else {
		plain["grpc"], plain["raft"], plain["http"] = cfg.GRPCAddr, cfg.RaftAddr, cfg.HTTPAddr
		// Every named client listener, by the address it is advertised
		// at: one advertised beyond loopback takes clients from elsewhere.
		for name, addr := range cfg.Listeners {
			plain["grpc/"+name] = addr
		}
	}
	if cfg.GossipKeyFile == "" {
		plain["gossip"] = cfg.GossipAddr
	}
	warnPlaintext(n.logger, plain)
	n.httpAddr = cfg.advertise(n.httpLn.Addr().String())
	n.grpcAddr = cfg.advertise(cfg.GRPCAddr)
	if cfg.AdvertiseGRPCAddr != "" {
		n.grpcAddr = cfg.AdvertiseGRPCAddr
	}

	// A frame must hold the largest AppendEntries a partition sends: one
	// batch (up to 64 MiB, within the default bound) or MaxAppendBytes of
	// smaller ones, which an operator may set above the default bound.
	hubCfg := raftnet.HubConfig{
		MaxFrameBytes: max(raftnet.DefaultMaxFrameBytes, cfg.Partition.Raft.MaxAppendBytes+1<<20),
		Logger:        n.logger,
	}
	if n.hub, err = raftnet.NewHub(n.mux, hubCfg); err != nil {
		return fmt.Errorf("raft hub: %w", err)
	}
	if n.meta, err = openMetaGroup(filepath.Join(cfg.DataDir, "meta"), id, n.hub, cfg.Partition.Raft, n.logger); err != nil {
		return err
	}
	if n.partNode, err = partition.NewNode(cfg.PartitionMemory); err != nil {
		return err
	}
	if err := n.partNode.Register(n.reg); err != nil {
		return err
	}
	n.replicas = newReplicaSet(n)

	mcfg := membership.DefaultConfig()
	mcfg.Meta = membership.Meta{ID: id, GRPCAddr: n.grpcAddr, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr, Rack: cfg.Rack}
	mcfg.BindAddr = cfg.GossipAddr
	if cfg.AdvertiseHost != "" {
		mcfg.AdvertiseAddr = cfg.advertise(cfg.GossipAddr)
	}
	mcfg.Join = cfg.Join
	mcfg.Logger = n.logger
	if cfg.gossipProfile != "" {
		mcfg.Profile = cfg.gossipProfile
	}
	if err := n.gossipSecurity(&mcfg); err != nil { // keys and cluster name: gossipkeys.go
		return fmt.Errorf("gossip: %w", err)
	}
	if n.members, err = membership.Start(ctx, mcfg); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	n.gossip.Store(n.members)
	if err := n.startPeerHTTP(); err != nil {
		return err
	}

	n.httpSrv = &http.Server{
		Handler:           n.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Failed TLS handshakes (port scanners, plaintext clients) are
		// debug noise, not errors of this node.
		ErrorLog: slog.NewLogLogger(n.logger.Handler(), slog.LevelDebug),
	}
	n.goLoop(func() {
		if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("http server", "error", err)
		}
	})
	n.goLoop(n.runBootstrap)
	n.goLoop(n.runRegistration)
	n.goLoop(n.replicas.run)
	n.goLoop(n.runController)
	n.goLoop(n.runDiskMonitor)
	n.goLoop(n.runShareProgress)
	n.goLoop(n.runLiveness)
	n.goLoop(n.runSilenceCheck)
	gcfg := n.cfg.Groups
	if gcfg.Logger == nil {
		gcfg.Logger = n.logger.With("component", "groups")
	}
	if n.groups, err = consumergroup.New(gcfg, groupHost{n}, n.reg); err != nil {
		return err
	}
	n.logger.Info("node started", "raft", n.raftAddr, "http", n.httpAddr, "gossip", n.members.Addr())
	return nil
}

func (n *Node) goLoop(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// ID is the node's id.
func (n *Node) ID() string { return n.id }

// GossipAddr is the address other nodes join.
func (n *Node) GossipAddr() string { return n.members.Addr() }

// HTTPAddr is the advertised metrics/health address.
func (n *Node) HTTPAddr() string { return n.httpAddr }

// RaftAddr is the advertised Raft address.
func (n *Node) RaftAddr() string { return n.raftAddr }

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Metadata returns the node's current copy of the cluster metadata.
func (n *Node) Metadata() *metadata.State { return n.meta.fsm.State() }

// Ready reports whether the node can serve: the meta group has a leader,
// this node is registered in the metadata with its current addresses, and
// its replicas match the metadata it has seen.
func (n *Node) Ready() bool {
	id, _ := n.meta.leader()
	return id != "" && n.registered.Load() && n.replicas.inSyncWithMetadata()
}

// WaitReady blocks until Ready or ctx ends.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !n.Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready: %w", n.id, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// runBootstrap forms a new cluster: once gossip sees BootstrapExpect nodes,
// every one of them bootstraps the meta group with the same voters (the
// first MetaVoters ids in order), as Consul does. A node with meta state
// never bootstraps again.
func (n *Node) runBootstrap() {
	if n.cfg.BootstrapExpect == 0 || n.meta.hasState() {
		return
	}
	ctx, cancel := n.stopContext()
	defer cancel()
	if err := n.members.WaitForMembers(ctx, n.cfg.BootstrapExpect); err != nil {
		return
	}
	alive := n.members.Alive()
	// A node added to a running cluster with --bootstrap-expect still set
	// must not bootstrap a second meta group (Consul guards the same way):
	// if any member already has meta state, the leader will add us.
	if n.anyMemberBootstrapped(ctx, alive) {
		n.logger.Info("joining an existing cluster; not bootstrapping")
		return
	}
	if ctx.Err() != nil {
		return // stopping
	}
	voters := bootstrapVoters(alive, n.cfg.MetaVoters)
	for _, v := range voters {
		if string(v.ID) == n.id {
			if err := n.meta.bootstrap(voters); err != nil {
				n.logger.Error("bootstrap meta group", "error", err)
			} else {
				n.logger.Info("bootstrapped meta group", "voters", len(voters))
			}
			return
		}
	}
	// Not a voter: the meta leader adds this node as a non-voter.
}

// anyMemberBootstrapped asks the other members whether they hold meta
// state. It decides only once every member still alive has answered: one
// that cannot be asked yet (it has not learnt of this node from gossip, so
// the peer channel refuses us) may be the one with state, and guessing
// "no" would bootstrap a second meta group. It gives up (false) only when
// ctx ends.
func (n *Node) anyMemberBootstrapped(ctx context.Context, members []membership.Member) bool {
	var pending []membership.Member
	for _, m := range members {
		if m.Meta.ID != n.id && m.Meta.RaftAddr != "" {
			pending = append(pending, m)
		}
	}
	for attempt := 1; ; attempt++ {
		var unanswered []membership.Member
		for _, m := range pending {
			has, err := n.probeBootstrapped(ctx, m.Meta.RaftAddr)
			if err != nil {
				unanswered = append(unanswered, m)
				continue
			}
			if has {
				return true
			}
		}
		if len(unanswered) == 0 {
			return false
		}
		if n.meta.hasState() {
			return true // the meta leader reached us first
		}
		if attempt%20 == 0 {
			n.logger.Warn("waiting for every member to say whether it holds meta state before bootstrapping", "unanswered", len(unanswered), "first", unanswered[0].Meta.ID)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(250 * time.Millisecond):
		}
		// A member that died meanwhile cannot hold up the cluster's birth.
		alive := map[string]bool{}
		for _, m := range n.members.Alive() {
			alive[m.Meta.ID] = true
		}
		pending = pending[:0]
		for _, m := range unanswered {
			if alive[m.Meta.ID] {
				pending = append(pending, m)
			}
		}
	}
}

// probeBootstrapped asks one member, at its Raft address, whether it holds
// meta state.
func (n *Node) probeBootstrapped(ctx context.Context, raftAddr string) (bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, peerURL(raftAddr, "/internal/v1/bootstrapped"), nil)
	if err != nil {
		return false, err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: %s", raftAddr, resp.Status)
	}
	var body struct {
		HasState bool `json:"has_state"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil {
		return false, err
	}
	return body.HasState, nil
}

// stopContext returns a context cancelled when the node stops.
func (n *Node) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// runRegistration keeps this node's broker entry in the metadata equal to
// its current addresses (they may change across restarts).
func (n *Node) runRegistration() {
	want := metadata.Broker{ID: n.id, GRPCAddr: n.grpcAddr, RaftAddr: n.raftAddr, HTTPAddr: n.httpAddr, GossipAddr: n.members.Addr(),
		Rack: n.cfg.Rack, Listeners: maps.Clone(n.cfg.Listeners)}
	for {
		changed := n.meta.fsm.Changed()
		st := n.meta.fsm.State()
		if b, ok := st.Brokers[n.id]; ok && b.Equal(want) {
			n.registered.Store(true)
		} else {
			n.registered.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := n.proposeMeta(ctx, metadata.RegisterBroker{Broker: want})
			cancel()
			if err != nil {
				n.logger.Debug("register broker", "error", err)
				select {
				case <-n.stop:
					return
				case <-time.After(250 * time.Millisecond):
				}
				continue
			}
		}
		select {
		case <-n.stop:
			return
		case <-changed:
		}
	}
}

// Close shuts the node down gracefully: partition and meta leadership are
// handed to other nodes first, the node leaves the gossip cluster, then
// everything stops in the reverse order of Start.
func (n *Node) Close(ctx context.Context) error {
	return n.shutdown(ctx, true)
}

// Abort stops the node as a crash would: no leadership handover, no gossip
// leave; peers find out by failure detection. For tests and fault
// injection; operators want Close.
func (n *Node) Abort() error {
	return n.shutdown(context.Background(), false)
}

func (n *Node) shutdown(ctx context.Context, graceful bool) error {
	n.closeOnce.Do(func() {
		var errs []error
		n.rebal.close()
		if graceful && n.replicas != nil {
			n.replicas.handOffLeadership(ctx)
			if n.meta != nil && n.meta.isLeader() {
				tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := raftutil.WaitFuture(tctx, n.meta.raft.LeadershipTransfer()); err != nil {
					n.logger.Warn("meta leadership transfer", "error", err)
				}
				cancel()
			}
		}
		if n.members != nil {
			if graceful {
				// A failed leave only means peers learn of our departure by
				// failure detection instead; shutdown goes on.
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := n.members.Leave(lctx); err != nil {
					n.logger.Warn("gossip leave", "error", err)
					errs = append(errs, n.members.Shutdown())
				}
				cancel()
			} else {
				errs = append(errs, n.members.Shutdown())
			}
		}
		close(n.stop)
		if n.groups != nil {
			errs = append(errs, n.groups.Close())
		}
		if n.httpSrv != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, n.httpSrv.Shutdown(sctx))
			cancel()
		} else if n.httpLn != nil {
			n.httpLn.Close()
		}
		if n.peerSrv != nil {
			// Peers' calls in flight are not worth waiting for: they retry
			// elsewhere, and a long poll must not hold shutdown up.
			n.peerSrv.Close()
		}
		if n.peerClient != nil {
			n.peerClient.CloseIdleConnections()
		}
		if n.livenessClient != nil {
			n.livenessClient.CloseIdleConnections()
		}
		n.wg.Wait()
		if n.replicas != nil {
			errs = append(errs, n.replicas.closeAll())
		}
		if n.partNode != nil {
			n.partNode.Close()
		}
		if n.meta != nil {
			errs = append(errs, n.meta.close())
		}
		if n.metrics != nil {
			n.metrics.unregister()
		}
		if n.hub != nil {
			errs = append(errs, n.hub.Close())
		}
		if n.mux != nil {
			errs = append(errs, n.mux.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// loadOrCreateNodeID returns the node's persistent id: the configured one
// (persisted on first use; a different persisted id is an error, since the
// data belongs to that node), else the persisted one, else a new one.
func loadOrCreateNodeID(dir, configured string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if configured != "" && configured != stored {
			return "", fmt.Errorf("--id %q, but %s belongs to node %q: use that id or another data dir", configured, dir, stored)
		}
		return stored, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read node id: %w", err)
	}
	id := configured
	if id == "" {
		var buf [6]byte
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		id = "node-" + hex.EncodeToString(buf[:])
	}
	if err := validateNodeID(id); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("persist node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("persist node id: %w", err)
	}
	return id, nil
}

func validateNodeID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("node id %q: want 1 to 64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("node id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

// warnPlaintext logs once for each listener that serves plaintext beyond
// this machine: anyone on that network can read its traffic and, on the
// Raft port, pose as a node (README, "Security").
func warnPlaintext(logger *slog.Logger, addrs map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(addrs)) {
		host, _, err := net.SplitHostPort(addrs[name])
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			continue
		}
		fix := "set --tls-cert-file, --tls-key-file and --tls-ca-file (skiff certs create)"
		if name == "gossip" {
			fix = "set --gossip-key-file"
		}
		logger.Warn("listening in plaintext on a non-loopback address: traffic is readable and peers are not authenticated; "+fix, "listener", name, "addr", addrs[name])
	}
}
