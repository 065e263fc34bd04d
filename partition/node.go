package partition

import (
	"errors"
	"fmt"
)

// MemoryConfig holds a node's byte budgets, shared by all its partition
// replicas, so a node's memory does not grow with batch size or with the
// number of partitions beyond them.
type MemoryConfig struct {
	// EntryCacheBytes bounds the Raft entries kept in memory for
	// replication (EntryCache), across all replicas. Default 32 MiB.
	EntryCacheBytes int64
	// ProduceBytes bounds the bytes of batches handed to Raft and not yet
	// acknowledged (the produce pipeline), across all replicas of the node;
	// a produce waits for room, up to its deadline. Default 64 MiB.
	ProduceBytes int64
	// FetchBytes bounds the bytes being read from disk for fetches at once
	// across all replicas (each fetch reads at most this much); a fetch
	// waits for room. Default 64 MiB.
	FetchBytes int64
}

// DefaultMemoryConfig returns the defaults documented on MemoryConfig.
func DefaultMemoryConfig() MemoryConfig {
	return MemoryConfig{EntryCacheBytes: 32 << 20, ProduceBytes: 64 << 20, FetchBytes: 64 << 20}
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
	}, nil
}

// Close stops the group-commit goroutine.
func (n *Node) Close() { n.syncs.Close() }

// SyncStats reports the group commit's passes, file syncs and requests.
func (n *Node) SyncStats() (passes, fileSyncs, requests uint64) { return n.syncs.Stats() }

// EntryCacheBytes is the bytes of Raft entries cached now.
func (n *Node) EntryCacheBytes() int64 { return n.cache.Used() }

// ProduceBytesInFlight is the bytes of batches handed to Raft and not yet
// acknowledged.
func (n *Node) ProduceBytesInFlight() int64 { return n.produce.inUse() }
