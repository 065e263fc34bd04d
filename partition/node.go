package partition

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MemoryConfig holds a node's byte budgets, shared by all its partition
// replicas, so a node's memory does not grow with batch size or with the
// number of partitions beyond them.
type MemoryConfig struct {
	// EntryCacheBytes bounds the Raft entries kept in memory for
	// replication (EntryCache), across all replicas. Followers are normally
	// milliseconds behind, so a few MiB cover the entries leaders resend;
	// older entries are read from the WAL. 0 turns the cache off.
	// Default 8 MiB.
	EntryCacheBytes int64
	// ProduceBytes bounds the bytes of batches handed to Raft and not yet
	// acknowledged (the produce pipeline), across all replicas of the node;
	// a produce waits for room, up to its deadline. Default 64 MiB.
	ProduceBytes int64
	// FetchBytes bounds the bytes being read from disk for fetches at once
	// across all replicas (each fetch reads at most this much); a fetch
	// waits for room. Default 64 MiB.
	FetchBytes int64
	// CleanerBytesPerSecond throttles log compaction: the node's one
	// compaction at a time reads and writes at most this many bytes per
	// second, so cleaning does not starve produce and fetch of disk.
	// 0 = unthrottled. Default 32 MiB/s.
	CleanerBytesPerSecond int64
	// CatchUpBytesPerSecond bounds the bytes per second the node takes in
	// as snapshots installed by leaders (new replicas of a reassignment or
	// rebalance, replicas far behind), across all its replicas, so that
	// catching up does not starve produce and fetch of disk and network.
	// Log entries a follower catches up from the leader's Raft log are not
	// paced. 0 = unthrottled. Default 64 MiB/s.
	CatchUpBytesPerSecond int64
}

// DefaultMemoryConfig returns the defaults documented on MemoryConfig.
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{EntryCacheBytes: 8 << 20, ProduceBytes: 64 << 20, FetchBytes: 64 << 20, CleanerBytesPerSecond: 32 << 20, CatchUpBytesPerSecond: 64 << 20}
}

// Validate reports the first invalid field.
func (c MemoryConfig) Validate() error {
	var errs []error
	if c.EntryCacheBytes < 0 {
		errs = append(errs, errors.New("EntryCacheBytes must not be negative"))
	}
	if c.ProduceBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("ProduceBytes %d: must be at least 1 MiB", c.ProduceBytes))
	}
	if c.FetchBytes < 64<<10 {
		errs = append(errs, fmt.Errorf("FetchBytes %d: must be at least 64 KiB", c.FetchBytes))
	}
	if c.CleanerBytesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("CleanerBytesPerSecond %d: must not be negative", c.CleanerBytesPerSecond))
	}
	if c.CatchUpBytesPerSecond < 0 {
		errs = append(errs, fmt.Errorf("CatchUpBytesPerSecond %d: must not be negative", c.CatchUpBytesPerSecond))
	}
	return errors.Join(errs...)
}

// Node holds what every partition replica of one node shares: the group
// commit of their Raft logs and the memory budgets. The cluster layer makes
// one per node and passes it in Config.Node; Close it after every replica
// using it has closed.
type Node struct {
	syncs   *SyncGroup
	cache   *EntryCache
	produce *byteBudget
	fetch   *byteBudget
	cleaner *logCleaner // log compaction: one pass at a time, throttled
	catchUp *catchUpLimiter

	reg        prometheus.Registerer // set by Register; Close unregisters
	collectors []prometheus.Collector
}

// NewNode starts a node's shared partition resources.
func NewNode(cfg MemoryConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("partition memory config: %w", err)
	}
	return &Node{
		syncs:   NewSyncGroup(),
		cache:   NewEntryCache(cfg.EntryCacheBytes),
		produce: newByteBudget(cfg.ProduceBytes),
		fetch:   newByteBudget(cfg.FetchBytes),
		cleaner: newLogCleaner(cfg.CleanerBytesPerSecond),
		catchUp: newCatchUpLimiter(cfg.CatchUpBytesPerSecond),
	}, nil
}

// Register exposes the group commit's and the budgets' figures on reg:
// requests per pass is what group commit saves; bytes held against
// each budget show how close the node runs to it.
func (n *Node) Register(reg prometheus.Registerer) error {
	stat := func(pick func(passes, files, requests uint64) uint64) func() float64 {
		return func() float64 { return float64(pick(n.syncs.Stats())) }
	}
	n.collectors = []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "raftlog", Name: "sync_passes_total",
			Help: "Group-commit passes over the node's Raft logs."}, stat(func(p, _, _ uint64) uint64 { return p })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "raftlog", Name: "sync_files_total",
			Help: "Raft log files fsynced by group-commit passes."}, stat(func(_, f, _ uint64) uint64 { return f })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "raftlog", Name: "sync_requests_total",
			Help: "Raft log appends made durable by group-commit passes."}, stat(func(_, _, r uint64) uint64 { return r })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "raftlog", Name: "entry_cache_bytes",
			Help: "Bytes of Raft entries held in the node's entry cache."}, func() float64 { return float64(n.cache.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "partition", Name: "produce_inflight_bytes",
			Help: "Bytes of batches handed to Raft and not yet acknowledged, all partitions."}, func() float64 { return float64(n.produce.inUse()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "skiff", Subsystem: "partition", Name: "fetch_reading_bytes",
			Help: "Bytes being read for fetches, all partitions."}, func() float64 { return float64(n.fetch.inUse()) }),
	}
	n.collectors = append(n.collectors,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "catchup_received_bytes_total",
			Help: "Bytes of snapshots this node received from partition leaders to catch replicas up."}, func() float64 { return float64(n.catchUp.bytes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "skiff", Subsystem: "partition", Name: "catchup_throttled_seconds_total",
			Help: "Time snapshot installs spent waiting for the node's catch-up budget (--catchup-bytes-per-sec)."}, func() float64 { return time.Duration(n.catchUp.waited.Load()).Seconds() }))
	n.collectors = append(n.collectors, n.cleaner.collectors()...)
	for i, c := range n.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range n.collectors[:i] {
				reg.Unregister(done)
			}
			n.collectors = nil
			return fmt.Errorf("register partition node metrics: %w", err)
		}
	}
	n.reg = reg
	return nil
}

// Close stops the group-commit goroutine and removes the metrics.
func (n *Node) Close() {
	n.syncs.Close()
	if n.reg != nil {
		for _, c := range n.collectors {
			n.reg.Unregister(c)
		}
		n.reg = nil
	}
}

// SyncStats reports the group commit's passes, file syncs and requests.
func (n *Node) SyncStats() (passes, fileSyncs, requests uint64) { return n.syncs.Stats() }

// EntryCacheBytes is the bytes of Raft entries cached now.
func (n *Node) EntryCacheBytes() int64 { return n.cache.Used() }

// ProduceBytesInFlight is the bytes of batches handed to Raft and not yet
// acknowledged.
func (n *Node) ProduceBytesInFlight() int64 { return n.produce.inUse() }
