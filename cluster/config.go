// Package cluster turns partition replicas into a cluster of nodes: gossip
// membership, the `meta` Raft group holding the metadata, topic
// administration, placement, reconciliation of local replicas with the
// metadata, and self-healing.
package cluster

import (
	"errors"
	"fmt"
	"github.com/skiff-mq/skiff/consumergroup"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/cluster/membership"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/certs"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/raftnet"
)

// Config configures a node. Addresses are host:port to bind; the advertise
// host replaces the host part of each when peers and clients need to reach
// them (containers, NAT).
type Config struct {
	// ID names the node; stable across restarts. If empty, the id persisted
	// in DataDir is used, or a new one is generated and persisted.
	ID string
	// DataDir holds the node id, the meta group and every partition replica.
	// Required.
	DataDir string
	// GRPCAddr is the client API address. Default ":9400".
	GRPCAddr string
	// RaftAddr is the one port every Raft group of the node shares.
	// Default ":9401".
	RaftAddr string
	// GossipAddr is memberlist's address (UDP and TCP). Default ":9402".
	GossipAddr string
	// HTTPAddr serves /metrics, /healthz, /readyz and node-to-node calls.
	// Default ":9403".
	HTTPAddr string
	// AdvertiseHost is the host others use to reach this node. Default:
	// the bind host, or 127.0.0.1 when binding all interfaces.
	AdvertiseHost string
	// AdvertiseGRPCAddr is the client address published for this node when
	// clients reach it differently from its peers (Kafka's
	// advertised.listeners): e.g. a container whose gRPC port is published
	// on the host as 127.0.0.1:9410. Default: AdvertiseHost with the gRPC
	// port.
	AdvertiseGRPCAddr string
	// Listeners are the node's named client listeners and the address
	// advertised for each (skiff server --listener NAME=BIND[,ADVERTISED]);
	// the gRPC server serves them, the node publishes them so that a client
	// is always given addresses of the listener it connected on. Empty: the
	// one listener on GRPCAddr (AdvertiseGRPCAddr), named
	// metadata.DefaultListener.
	Listeners map[string]string
	// Join lists gossip addresses of other nodes; any one live one suffices.
	Join []string
	// BootstrapExpect is the number of nodes to wait for before the first
	// start of a new cluster bootstraps the meta group. Every initial node
	// passes the same value. 0 = join an existing cluster only.
	BootstrapExpect int
	// ReplaceAfter is how long a node may be dead before its replicas are
	// moved to live nodes. Default 30s.
	ReplaceAfter time.Duration
	// Rack places replicas of a partition on distinct racks when given.
	Rack string
	// MetaVoters is how many nodes vote in the meta group (3 or 5; the
	// others replicate it as non-voters). Default 3.
	MetaVoters int
	// Partition is the template for every partition replica (Raft timing,
	// snapshot thresholds); Group, NodeID, Dir, Log, Durability and
	// Registerer are set per replica.
	Partition partition.Config
	// PartitionMemory holds the byte budgets every partition replica of
	// the node shares: the Raft entry cache, the produce pipeline and fetch
	// reads (`skiff server --raft-entry-cache-bytes`, `--produce-buffer-bytes`,
	// `--fetch-buffer-bytes`). Default partition.DefaultMemoryConfig().
	PartitionMemory partition.MemoryConfig
	// MaxConcurrentMoves bounds the partitions a decommission or a
	// rebalance moves at once: each move copies a partition to a new
	// replica, competing with produce traffic
	// (`skiff server --max-concurrent-moves`). Default 4.
	MaxConcurrentMoves int
	// MinFreeBytes and MinFreePercent set the free space under which the
	// node is degraded (`skiff server --min-free-bytes`,
	// `--min-free-percent`): it refuses produce (RESOURCE_EXHAUSTED "disk
	// full on node ID"), takes no new replicas and hands its leaderships
	// away, before the disk is actually full. The threshold is the smaller
	// of the two; 0 disables one. Defaults 1 GiB and 5%.
	MinFreeBytes   int64
	MinFreePercent float64
	// DiskCheckInterval is how often free space is measured. Default 1s:
	// a statfs is cheap, and a node that fills up must report itself
	// degraded before other nodes hand it leaderships it cannot serve.
	DiskCheckInterval time.Duration
	// SilentLeaderAfter is how long a leader may be silent to a majority
	// of its group's voters before the one among them with the most
	// complete log stands for election without waiting for Raft's
	// randomized timers and pre-vote (silence.go). Default 0: the
	// partitions' Raft heartbeat timeout (`--raft-heartbeat-timeout`);
	// negative turns the check off.
	SilentLeaderAfter time.Duration
	// Faults, in tests, routes this node's node-to-node network (Raft,
	// the peer routes, gossip over the mux) through a fault-injecting
	// network that can cut and slow links. Nil in production.
	Faults *raftnet.FaultNetwork
	// StatFS measures the data directory's file system; nil is the real
	// statfs (tests substitute a fake disk).
	StatFS func(dir string) (DiskUsage, error)
	// AutoRebalance starts a rebalance (placement.Rebalance over the live
	// nodes) when a node joins, so it takes its share of replicas and
	// leaders (`skiff server --auto-rebalance`). Default true.
	AutoRebalance bool
	// ReconcileInterval is how often the node re-checks its replicas
	// against the metadata even without a change. Default 1s.
	ReconcileInterval time.Duration
	// OffsetsPartitions is the partition count of the internal
	// __consumer_offsets topic, fixed when the controller creates it.
	// Default 16.
	OffsetsPartitions int
	// OffsetsReplicationFactor is its replication factor (lowered to the
	// number of nodes in smaller clusters). Default 3.
	OffsetsReplicationFactor int
	// Limits is the operator's policy for topics: partitions and
	// replication factor per topic, topics and partitions in the whole
	// cluster (`skiff server --max-topics`, `--max-partitions`). Checked
	// by this node when it creates a topic; the cluster-wide counts also
	// travel in the CreateTopic command (see metadata.CreateTopic). Set
	// the same on every node. Default metadata.DefaultLimits().
	Limits metadata.Limits
	// Groups tunes the consumer group coordinator (session timeout,
	// heartbeat interval, ...); zero fields take consumergroup's defaults.
	Groups consumergroup.Config
	// TLS, when set, serves the Raft mux (and with it every node-to-node
	// call) with mutual TLS between nodes of the cluster CA, and the HTTP
	// port with TLS. The gRPC server is the caller's (cmd/skiff serves it
	// with the same Reloader). The certificate must name this node
	// (skiff://node/<ID>). Default nil: plaintext.
	TLS *certs.Reloader
	// ClientAuth makes the gRPC server require an identity on every client
	// call (skiff server --auth; rpc.AuthConfig.Enabled). The node only
	// carries it to the gRPC server, which is the caller's. Default false.
	ClientAuth bool
	// SuperUsers are the principals ("User:admin", "Node:n1") that may
	// manage users and will bypass ACLs (rpc.AuthConfig.SuperUsers).
	SuperUsers []string
	// PasswordHash are the argon2id parameters of passwords set through
	// this node (rpc.AuthConfig.PasswordHash). Each hash carries its own
	// parameters, so nodes may differ and lowering them only cheapens new
	// passwords. No flag sets it: tests use cheap ones, as the rpc tests
	// do. Default zero: metadata.DefaultArgon2Params.
	PasswordHash metadata.Argon2Params
	// GossipKeyFile names a file of base64 AES-256 keys, one per line
	// (blank lines and '#' comments ignored): the first key encrypts
	// gossip, the others are accepted, for rotation. Once a live rotation
	// (`skiff cluster gossip-keys`) has changed the keyring, the node keeps
	// it in DataDir/gossip-keyring, which then wins over this file on every
	// start. Default "": gossip is not encrypted (unless that persisted
	// keyring exists).
	GossipKeyFile string
	// ClusterName labels all gossip (memberlist's label), so that two
	// clusters on one network never merge even when pointed at each other.
	// Every node of a cluster must use the same name. Default "": no label.
	ClusterName string
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
	// Registry receives every metric of the node. Default: a new registry.
	Registry *prometheus.Registry

	// gossipProfile overrides the membership timing profile; tests use
	// "local" for fast failure detection.
	gossipProfile string
}

// DefaultConfig returns the documented defaults; callers set DataDir.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:           ":9400",
		RaftAddr:           ":9401",
		GossipAddr:         ":9402",
		HTTPAddr:           ":9403",
		ReplaceAfter:       30 * time.Second,
		MetaVoters:         3,
		Partition:          partition.DefaultConfig(),
		PartitionMemory:    partition.DefaultMemoryConfig(),
		ReconcileInterval:  time.Second,
		MaxConcurrentMoves: 4,
		AutoRebalance:      true,
		MinFreeBytes:       1 << 30,
		MinFreePercent:     5,
		DiskCheckInterval:  time.Second,

		OffsetsPartitions:        16,
		OffsetsReplicationFactor: 3,
		Groups:                   consumergroup.DefaultConfig(),
		Limits:                   metadata.DefaultLimits(),
	}
}

// partitionFlagNames names the `skiff server` flag behind each partition
// setting an error may mention, so a refusal says what to change.
var partitionFlagNames = strings.NewReplacer(
	"Raft.LeaderLeaseTimeout", "--raft-leader-lease-timeout",
	"Raft.HeartbeatTimeout", "--raft-heartbeat-timeout",
	"Raft.ElectionTimeout", "--raft-election-timeout",
	"HeartbeatTimeout", "--raft-heartbeat-timeout",
	"Raft.MaxAppendEntries", "--raft-max-append-entries",
	"Raft.MaxAppendBytes", "--raft-max-append-bytes",
	"EntryCacheBytes", "--raft-entry-cache-bytes",
	"ProduceBytes", "--produce-buffer-bytes",
	"FetchBytes", "--fetch-buffer-bytes",
)

// Validate reports every invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("cluster config: data dir is required (--data-dir)"))
	}
	for name, addr := range map[string]string{"grpc-addr": c.GRPCAddr, "raft-addr": c.RaftAddr, "gossip-addr": c.GossipAddr, "http-addr": c.HTTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: --%s %q: want host:port", name, addr))
		}
	}
	if c.AdvertiseGRPCAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseGRPCAddr); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: --advertise-grpc-addr %q: want host:port", c.AdvertiseGRPCAddr))
		}
	}
	if len(c.Listeners) > metadata.MaxListeners {
		errs = append(errs, fmt.Errorf("cluster config: %d listeners, at most %d allowed", len(c.Listeners), metadata.MaxListeners))
	}
	for name, addr := range c.Listeners {
		if err := metadata.ValidateListenerName(name); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: --listener: %w", err))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: --listener %s: advertised address %q: want host:port", name, addr))
		}
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, errors.New("cluster config: --bootstrap-expect must not be negative"))
	}
	if c.ReplaceAfter <= 0 {
		errs = append(errs, errors.New("cluster config: --replace-after must be positive"))
	}
	if c.MetaVoters != 1 && c.MetaVoters != 3 && c.MetaVoters != 5 {
		errs = append(errs, fmt.Errorf("cluster config: meta voters %d: want 1, 3 or 5", c.MetaVoters))
	}
	if c.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("cluster config: --min-free-bytes %d: must not be negative (0 disables it)", c.MinFreeBytes))
	}
	if c.MinFreePercent < 0 || c.MinFreePercent >= 100 {
		errs = append(errs, fmt.Errorf("cluster config: --min-free-percent %v: want 0 (off) to below 100", c.MinFreePercent))
	}
	if hb := c.Partition.Raft.HeartbeatTimeout; c.SilentLeaderAfter > 0 && c.SilentLeaderAfter < hb/2 {
		// A leader's heartbeats come every tenth to fifth of the timeout;
		// a shorter threshold would call a healthy idle leader silent.
		errs = append(errs, fmt.Errorf("cluster config: silent leader after %v: want at least half the Raft heartbeat timeout (%v), or 0 for the timeout itself", c.SilentLeaderAfter, hb))
	}
	if c.DiskCheckInterval <= 0 {
		errs = append(errs, errors.New("cluster config: --disk-check-interval must be positive"))
	}
	if c.MaxConcurrentMoves < 1 || c.MaxConcurrentMoves > 1000 {
		errs = append(errs, fmt.Errorf("cluster config: max concurrent moves %d: want 1..1000", c.MaxConcurrentMoves))
	}
	if c.ReconcileInterval <= 0 {
		errs = append(errs, errors.New("cluster config: reconcile interval must be positive"))
	}
	if c.OffsetsPartitions < 1 || c.OffsetsPartitions > 1000 {
		errs = append(errs, fmt.Errorf("cluster config: offsets partitions %d: want 1..1000", c.OffsetsPartitions))
	}
	if c.OffsetsReplicationFactor < 1 || c.OffsetsReplicationFactor > 5 {
		errs = append(errs, fmt.Errorf("cluster config: offsets replication factor %d: want 1..5", c.OffsetsReplicationFactor))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("cluster config: %w", err))
	}
	// The per-replica fields are filled in when a replica opens; check the
	// template's own settings (Raft timing, flags) before the node starts.
	pc := c.Partition
	pc.Group, pc.NodeID, pc.Dir = "template", "template", "template"
	if err := pc.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("cluster config: %s", partitionFlagNames.Replace(err.Error())))
	}
	if err := c.PartitionMemory.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("cluster config: partition memory: %s", partitionFlagNames.Replace(err.Error())))
	}
	if err := c.Groups.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := membership.ValidateClusterName(c.ClusterName); err != nil {
		errs = append(errs, fmt.Errorf("cluster config: --cluster-name: %w", err))
	}
	if c.PasswordHash != (metadata.Argon2Params{}) {
		if err := c.PasswordHash.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: password hash: %w", err))
		}
	}
	if c.GossipKeyFile != "" {
		// Read here too so a bad file stops the node before it binds anything.
		if _, err := membership.ReadKeyFile(c.GossipKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("cluster config: --gossip-key-file: %w", err))
		}
	}
	return errors.Join(errs...)
}

// advertise returns addr with its host replaced by the advertise host (or a
// loopback address when addr binds every interface).
// Advertised is the address others use for a local bind address: its
// port with AdvertiseHost, or 127.0.0.1 for an unspecified host.
func (c Config) Advertised(addr string) string { return c.advertise(addr) }

func (c Config) advertise(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch {
	case c.AdvertiseHost != "":
		host = c.AdvertiseHost
	case host == "" || host == "0.0.0.0" || host == "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
