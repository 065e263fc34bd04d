package partition

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// EntryCache keeps the newest Raft entries of every replica of a node in
// memory, within one byte budget shared by all of them, so a leader sends
// fresh entries to its followers without reading them back from disk.
//
// It replaces raft.NewLogCache(1024, ...) per replica, which bounded
// entries, not bytes: with batches of up to 1 MiB that was up to 1 GiB per
// partition, and it grew with the number of partitions. Here the oldest
// entry of the node is evicted first, whichever partition it belongs to, so
// a busy partition uses the budget an idle one does not need.
type EntryCache struct {
	mu     sync.Mutex
	budget int64
	used   int64         // guarded by mu; bytes of live entries
	fifo   []*cachedItem // guarded by mu; oldest first, from head
	head   int           // guarded by mu
}

type cachedItem struct {
	owner *cachedLogStore
	log   *raft.Log
	size  int64
	dead  bool // removed from owner (delete or close) but still in fifo
}

// NewEntryCache returns a cache holding at most budget bytes of entries.
// An entry larger than a quarter of the budget is not cached at all, so one
// huge batch does not flush every other partition's entries.
func NewEntryCache(budget int64) *EntryCache {
	return &EntryCache{budget: budget}
}

// Used returns the bytes of entries held now.
func (c *EntryCache) Used() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// entrySize is an entry's footprint: its payloads plus the struct.
func entrySize(l *raft.Log) int64 { return int64(len(l.Data)+len(l.Extensions)) + 96 }

// wrap returns store with this cache in front of it. monotonic says whether
// store (possibly behind a test wrapper that hides it) is a
// raft.MonotonicLogStore, which changes how raft clears logs after a
// snapshot install.
func (c *EntryCache) wrap(store raft.LogStore, monotonic bool) *cachedLogStore {
	return &cachedLogStore{LogStore: store, cache: c, entries: make(map[uint64]*cachedItem), monotonic: monotonic}
}

func (c *EntryCache) add(owner *cachedLogStore, logs []*raft.Log) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range logs {
		size := entrySize(l)
		if size > c.budget/4 {
			continue
		}
		if old, ok := owner.entries[l.Index]; ok {
			c.drop(old)
		}
		it := &cachedItem{owner: owner, log: l, size: size}
		owner.entries[l.Index] = it
		c.fifo = append(c.fifo, it)
		c.used += size
	}
	for c.used > c.budget && c.head < len(c.fifo) {
		it := c.fifo[c.head]
		c.fifo[c.head] = nil
		c.head++
		if !it.dead {
			delete(it.owner.entries, it.log.Index)
			c.drop(it)
		}
	}
	// Skip dead items at the head so their memory is not kept by the queue.
	for c.head < len(c.fifo) && c.fifo[c.head].dead {
		c.fifo[c.head] = nil
		c.head++
	}
	if c.head > 1024 && c.head*2 > len(c.fifo) {
		c.fifo = append([]*cachedItem(nil), c.fifo[c.head:]...)
		c.head = 0
	}
}

// drop marks it dead and returns its bytes to the budget; mu is held.
func (c *EntryCache) drop(it *cachedItem) {
	if it.dead {
		return
	}
	it.dead = true
	it.log = nil
	c.used -= it.size
}

func (c *EntryCache) forget(owner *cachedLogStore) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx, it := range owner.entries {
		c.drop(it)
		delete(owner.entries, idx)
	}
}

// cachedLogStore is one replica's view of the node's EntryCache.
//
// Only a leader caches what it stores: it is the one that sends entries
// again (to its followers, moments later). A follower's entries would only
// crowd the leaders' out of the node's budget; after an election the new
// leader reads what lagging followers still need from its WAL.
type cachedLogStore struct {
	raft.LogStore
	cache     *EntryCache
	entries   map[uint64]*cachedItem // guarded by cache.mu
	monotonic bool
	leading   atomic.Bool
}

// setLeading starts or stops caching stored entries; a replica that stops
// leading gives its cached bytes back to the node.
func (s *cachedLogStore) setLeading(leading bool) {
	s.leading.Store(leading)
	if !leading {
		s.cache.forget(s)
	}
}

var (
	_ raft.LogStore          = (*cachedLogStore)(nil)
	_ raft.MonotonicLogStore = (*cachedLogStore)(nil)
)

func (s *cachedLogStore) IsMonotonic() bool { return s.monotonic }

func (s *cachedLogStore) GetLog(idx uint64, out *raft.Log) error {
	s.cache.mu.Lock()
	it, ok := s.entries[idx]
	if ok {
		*out = *it.log
	}
	s.cache.mu.Unlock()
	if ok {
		return nil
	}
	return s.LogStore.GetLog(idx, out)
}

func (s *cachedLogStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs caches entries only once the store has them durably, so GetLog
// never returns an entry a crash could lose.
func (s *cachedLogStore) StoreLogs(logs []*raft.Log) error {
	if err := s.LogStore.StoreLogs(logs); err != nil {
		return fmt.Errorf("store raft log entries: %w", err)
	}
	if s.leading.Load() {
		s.cache.add(s, logs)
	}
	return nil
}

func (s *cachedLogStore) DeleteRange(lo, hi uint64) error {
	s.cache.mu.Lock()
	for idx, it := range s.entries {
		if idx >= lo && idx <= hi {
			s.cache.drop(it)
			delete(s.entries, idx)
		}
	}
	s.cache.mu.Unlock()
	return s.LogStore.DeleteRange(lo, hi)
}

// close returns this replica's cached bytes to the node.
func (s *cachedLogStore) close() { s.cache.forget(s) }
