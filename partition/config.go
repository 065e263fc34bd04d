package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/log"
)

// Durability says when an acknowledged write is safe.
type Durability int

const (
	// DurabilityFsync acknowledges a batch only after a majority of replicas
	// have fsynced it to their Raft log. A correlated power loss of every
	// replica cannot lose it (the lesson of the 2025 Jepsen report on NATS).
	DurabilityFsync Durability = iota
	// DurabilityReplicated acknowledges a batch once a majority hold it in
	// memory or page cache, like Kafka's default. Faster, but a simultaneous
	// power loss of a majority can lose acknowledged writes. The Raft term and
	// vote are still fsynced: losing them would break Raft's safety.
	DurabilityReplicated
)

func (d Durability) String() string {
	switch d {
	case DurabilityFsync:
		return "fsync"
	case DurabilityReplicated:
		return "replicated"
	}
	return fmt.Sprintf("durability(%d)", int(d))
}

// ParseDurability parses "fsync" or "replicated".
func ParseDurability(s string) (Durability, error) {
	switch s {
	case "fsync":
		return DurabilityFsync, nil
	case "replicated":
		return DurabilityReplicated, nil
	}
	return 0, fmt.Errorf("durability %q: want fsync or replicated", s)
}

// RaftTiming holds the Raft timers of a partition group.
//
// The defaults aim at a leader loss healed within about two seconds on a LAN
// (a follower notices after HeartbeatTimeout..2*HeartbeatTimeout, then one
// pre-vote and vote round), while a 2-core node carrying a hundred or more
// groups does not flap: hashicorp/raft heartbeats every HeartbeatTimeout/10,
// so 100 groups with two followers each cost ~2,500 small RPCs per second at
// 800ms, which leaves the scheduler plenty of slack before a heartbeat is late.
type RaftTiming struct {
	HeartbeatTimeout time.Duration // default 800ms
	ElectionTimeout  time.Duration // default 800ms
	// LeaderLeaseTimeout: a leader that has heard from no quorum for this
	// long steps down. Default 800ms; shorter leases made leaders step down
	// on a CPU-starved 2-core machine (measured: 480ms scheduling gaps under
	// load average 10), and Skiff serves no lease-based reads that would
	// profit from a short one.
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration // default 20ms
	// RPCTimeout bounds one Raft RPC on the wire (one more per 256 KiB of
	// a snapshot install, see raftnet.TransportConfig). A stalled peer
	// costs at most this long per RPC. Default 10s.
	RPCTimeout time.Duration
	// MaxAppendEntries caps the entries a leader loads for one
	// AppendEntries; one entry is one batch. hashicorp/raft counts entries,
	// not bytes, so this also bounds the leader's memory per follower
	// (MaxAppendEntries times the largest batch) and the size of one WAL
	// append on the leader (raft batches up to this many queued produces
	// into one StoreLogs). Default 32.
	MaxAppendEntries int
	// MaxAppendBytes bounds one AppendEntries RPC on the wire: the
	// transport splits a larger one into consecutive RPCs of at most this
	// many bytes of entries (always at least one entry), which bounds the
	// follower's decode buffer and a slow link's retransmit. Default (and
	// when 0) 4 MiB.
	MaxAppendBytes int
}

// DefaultRaftTiming returns the timers described on RaftTiming.
func DefaultRaftTiming() RaftTiming {
	return RaftTiming{
		HeartbeatTimeout:   800 * time.Millisecond,
		ElectionTimeout:    800 * time.Millisecond,
		LeaderLeaseTimeout: 800 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		RPCTimeout:         10 * time.Second,
		MaxAppendEntries:   32,
		MaxAppendBytes:     4 << 20,
	}
}

// Config configures one partition replica.
type Config struct {
	// Group names the Raft group (for example "orders/3"); used in logs,
	// metric labels and as the transport group name. Required.
	Group string
	// NodeID is this node's Raft server id. Required.
	NodeID string
	// Dir holds this replica's files: log/, raft-wal/ (the Raft log),
	// raft-stable.db, snapshots/. A raft-log.db left by an older version is
	// migrated into raft-wal/ on open. Required.
	Dir string
	// Log configures the segmented log (segment size, retention).
	// Default log.DefaultConfig(); its Sync policy is managed by the replica.
	Log log.Config
	// Durability of acknowledged writes. Default DurabilityFsync.
	Durability Durability
	// RaftLogSegmentBytes is the size of one Raft log (WAL) segment file;
	// files are preallocated, and whole segments are dropped once a
	// snapshot covers them. Default (and when 0) 8 MiB.
	RaftLogSegmentBytes int
	// Node holds the resources every replica of a node shares: group
	// commit of the Raft logs and the memory budgets (NewNode). Nil gives
	// the replica a private one with DefaultMemoryConfig.
	Node *Node
	// Raft timers. Default DefaultRaftTiming().
	Raft RaftTiming
	// SnapshotThreshold is the number of Raft entries after which a snapshot
	// is taken (snapshots are cheap: hard links). Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked. Default 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many Raft entries are kept behind a snapshot so a
	// briefly lagging follower catches up from the log, not a snapshot.
	// Default 10240.
	TrailingLogs uint64
	// RetainSnapshots is how many snapshots are kept on disk. Default 2.
	RetainSnapshots int
	// WatchdogTimeout: a leader whose oldest pending write has waited this
	// long (a hung disk, hashicorp/raft issue #503) hands leadership away.
	// Default 10s; 0 disables the watchdog.
	WatchdogTimeout time.Duration
	// RetentionCheckInterval is how often expired segments are deleted
	// (Kafka's log.retention.check.interval.ms). Default 5m.
	RetentionCheckInterval time.Duration
	// CompactionCheckInterval is how often a compacted partition checks
	// whether its log is worth compacting (min.cleanable.dirty.ratio,
	// max.compaction.lag.ms). Default 15s.
	CompactionCheckInterval time.Duration
	// Producers bounds the idempotent-producer state.
	Producers ProducerConfig
	// Logger receives the replica's and Raft's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the replica's metrics; nil registers nothing.
	Registerer prometheus.Registerer

	// wrapLogStore lets tests put a fault-injecting twin around the Raft
	// log store (a disk that stalls).
	wrapLogStore func(raft.LogStore) raft.LogStore
}

// DefaultConfig returns a Config with every default set; callers fill
// Group, NodeID and Dir.
func DefaultConfig() Config {
	return Config{
		Log:                     log.DefaultConfig(),
		Durability:              DurabilityFsync,
		RaftLogSegmentBytes:     8 << 20,
		Raft:                    DefaultRaftTiming(),
		SnapshotThreshold:       8192,
		SnapshotInterval:        30 * time.Second,
		TrailingLogs:            10240,
		RetainSnapshots:         2,
		WatchdogTimeout:         10 * time.Second,
		RetentionCheckInterval:  5 * time.Minute,
		CompactionCheckInterval: 15 * time.Second,
		Producers:               DefaultProducerConfig(),
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("partition config: Group is required"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("partition config: NodeID is required"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("partition config: Dir is required"))
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("partition config: Log: %w", err))
	}
	if c.Durability != DurabilityFsync && c.Durability != DurabilityReplicated {
		errs = append(errs, fmt.Errorf("partition config: Durability %d unknown", c.Durability))
	}
	t := c.Raft
	if t.HeartbeatTimeout < 5*time.Millisecond || t.ElectionTimeout < 5*time.Millisecond {
		errs = append(errs, errors.New("partition config: Raft heartbeat and election timeouts must be at least 5ms"))
	}
	if t.LeaderLeaseTimeout <= 0 || t.LeaderLeaseTimeout > t.HeartbeatTimeout {
		errs = append(errs, errors.New("partition config: Raft.LeaderLeaseTimeout must be in (0, HeartbeatTimeout]"))
	}
	if t.RPCTimeout <= 0 {
		errs = append(errs, errors.New("partition config: Raft.RPCTimeout must be positive"))
	}
	if t.CommitTimeout <= 0 {
		errs = append(errs, errors.New("partition config: Raft.CommitTimeout must be positive"))
	}
	if t.MaxAppendEntries < 1 || t.MaxAppendEntries > 1024 {
		errs = append(errs, errors.New("partition config: Raft.MaxAppendEntries must be in [1, 1024]"))
	}
	if t.MaxAppendBytes != 0 && t.MaxAppendBytes < 64<<10 {
		errs = append(errs, errors.New("partition config: Raft.MaxAppendBytes must be at least 64 KiB (0: the default)"))
	}
	if c.RaftLogSegmentBytes != 0 && (c.RaftLogSegmentBytes < 1<<20 || c.RaftLogSegmentBytes > 1<<30) {
		errs = append(errs, errors.New("partition config: RaftLogSegmentBytes must be in [1 MiB, 1 GiB] (0: the default)"))
	}
	if c.SnapshotThreshold < 1 {
		errs = append(errs, errors.New("partition config: SnapshotThreshold must be at least 1"))
	}
	if c.SnapshotInterval <= 0 {
		errs = append(errs, errors.New("partition config: SnapshotInterval must be positive"))
	}
	if c.RetainSnapshots < 1 {
		errs = append(errs, errors.New("partition config: RetainSnapshots must be at least 1"))
	}
	if c.RetentionCheckInterval <= 0 {
		errs = append(errs, errors.New("partition config: RetentionCheckInterval must be positive"))
	}
	if c.CompactionCheckInterval <= 0 {
		errs = append(errs, errors.New("partition config: CompactionCheckInterval must be positive"))
	}
	if c.WatchdogTimeout < 0 {
		errs = append(errs, errors.New("partition config: WatchdogTimeout must not be negative"))
	}
	if err := c.Producers.validate(); err != nil {
		errs = append(errs, fmt.Errorf("partition config: Producers: %w", err))
	}
	return errors.Join(errs...)
}

// ProducerConfig bounds the idempotent-producer state (see producers.go).
// Every replica of a partition must use the same values.
type ProducerConfig = producerConfig

// DefaultProducerConfig returns a 7-day expiry and a 100,000-producer cap.
func DefaultProducerConfig() ProducerConfig { return defaultProducerConfig() }
