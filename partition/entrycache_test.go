package partition

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func entries(from, to uint64, size int) []*raft.Log {
	var out []*raft.Log
	for i := from; i <= to; i++ {
		out = append(out, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i)}, size)})
	}
	return out
}

// countingStore counts reads that reach the store.
type countingStore struct {
	*raft.InmemStore
	reads int
}

func (s *countingStore) GetLog(i uint64, l *raft.Log) error {
	s.reads++
	return s.InmemStore.GetLog(i, l)
}

func TestEntryCacheStaysWithinItsBudgetAcrossPartitions(t *testing.T) {
	const budget = 64 << 10
	c := NewEntryCache(budget)
	var stores []*cachedLogStore
	var backing []*countingStore
	for p := 0; p < 8; p++ {
		b := &countingStore{InmemStore: raft.NewInmemStore()}
		backing = append(backing, b)
		st := c.wrap(b, true)
		st.setLeading(true)
		stores = append(stores, st)
	}
	for round := uint64(0); round < 20; round++ {
		for _, s := range stores {
			if err := s.StoreLogs(entries(round*4+1, round*4+4, 1000)); err != nil {
				t.Fatal(err)
			}
			if used := c.Used(); used > budget {
				t.Fatalf("cache holds %d bytes, budget %d", used, budget)
			}
		}
	}
	// Every entry is still readable (from the cache or the store) and right.
	for p, s := range stores {
		for i := uint64(1); i <= 80; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil {
				t.Fatalf("partition %d entry %d: %v", p, i, err)
			}
			if l.Index != i || len(l.Data) != 1000 || l.Data[0] != byte(i) {
				t.Fatalf("partition %d entry %d: got index %d, %d bytes", p, i, l.Index, len(l.Data))
			}
		}
	}
	// The newest entries of the last partition written came from memory;
	// the oldest of the first one had been evicted.
	last := backing[len(backing)-1]
	last.reads = 0
	var l raft.Log
	if err := stores[len(stores)-1].GetLog(80, &l); err != nil || last.reads != 0 {
		t.Fatalf("newest entry: err %v, store reads %d; want a cache hit", err, last.reads)
	}
	first := backing[0]
	first.reads = 0
	if err := stores[0].GetLog(1, &l); err != nil || first.reads != 1 {
		t.Fatalf("oldest entry: err %v, store reads %d; want it evicted", err, first.reads)
	}
}

func TestEntryCacheDeleteRangeAndCloseReturnBytes(t *testing.T) {
	c := NewEntryCache(1 << 20)
	s := c.wrap(raft.NewInmemStore(), true)
	s.setLeading(true)
	if err := s.StoreLogs(entries(1, 10, 100)); err != nil {
		t.Fatal(err)
	}
	full := c.Used()
	// A new leader truncates a conflicting tail: the cache must not serve
	// the old entries, and a rewritten index must be the new entry.
	if err := s.DeleteRange(6, 10); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Used(), full/2; got != want {
		t.Fatalf("after deleting half: %d bytes cached, want %d", got, want)
	}
	var l raft.Log
	if err := s.GetLog(7, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry 7: got %v (index %d), want ErrLogNotFound", err, l.Index)
	}
	rewritten := &raft.Log{Index: 6, Term: 2, Data: []byte("new")}
	if err := s.StoreLogs([]*raft.Log{rewritten}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(6, &l); err != nil || l.Term != 2 || string(l.Data) != "new" {
		t.Fatalf("rewritten entry 6: %v %+v", err, l)
	}
	s.close()
	if got := c.Used(); got != 0 {
		t.Fatalf("after close: %d bytes cached, want 0", got)
	}
}

func TestEntryCacheSkipsEntriesTooLargeToShare(t *testing.T) {
	c := NewEntryCache(4096)
	s := c.wrap(raft.NewInmemStore(), true)
	s.setLeading(true)
	if err := s.StoreLogs(entries(1, 1, 2000)); err != nil {
		t.Fatal(err)
	}
	if got := c.Used(); got != 0 {
		t.Fatalf("an entry over a quarter of the budget was cached (%d bytes)", got)
	}
	if !s.IsMonotonic() {
		t.Fatal("wrapper must report the WAL's monotonicity")
	}
}

func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"oversized request takes the whole budget", func(t *testing.T) {
			n, err := b.acquire(ctx, 1000)
			if err != nil || n != 100 {
				t.Fatalf("got %d, %v; want 100", n, err)
			}
			b.release(n)
		}},
		{"a small request does not overtake a waiting large one", func(t *testing.T) {
			a, _ := b.acquire(ctx, 80)
			granted := make(chan int64, 2)
			go func() { n, _ := b.acquire(ctx, 50); granted <- n }()
			waitFor(t, 5*time.Second, "the 50-byte request to queue", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.waiters) == 1
			})
			// 10 bytes would fit beside the 80 held, but the queue is FIFO.
			go func() { n, _ := b.acquire(ctx, 10); granted <- n }()
			waitFor(t, 5*time.Second, "the 10-byte request to queue", func() bool {
				b.mu.Lock()
				defer b.mu.Unlock()
				return len(b.waiters) == 2
			})
			if used := b.inUse(); used != 80 {
				t.Fatalf("%d bytes held while both wait, want 80", used)
			}
			b.release(a)
			b.release(<-granted)
			b.release(<-granted)
		}},
		{"deadline while waiting leaves nothing held", func(t *testing.T) {
			a, _ := b.acquire(ctx, 100)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			if _, err := b.acquire(cctx, 1); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("got %v, want deadline exceeded", err)
			}
			b.release(a)
			if used := b.inUse(); used != 0 {
				t.Fatalf("%d bytes still held", used)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
	if used := b.inUse(); used != 0 {
		t.Fatalf("%d bytes leaked", used)
	}
}

func TestEntryCacheHoldsOnlyLeadersEntries(t *testing.T) {
	c := NewEntryCache(1 << 20)
	follower := c.wrap(raft.NewInmemStore(), true)
	if err := follower.StoreLogs(entries(1, 10, 100)); err != nil {
		t.Fatal(err)
	}
	if got := c.Used(); got != 0 {
		t.Fatalf("a follower's entries take %d bytes of the node's cache", got)
	}
	follower.setLeading(true)
	if err := follower.StoreLogs(entries(11, 20, 100)); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Used(), 10*entrySize(entries(1, 1, 100)[0]); got != want {
		t.Fatalf("as leader: %d bytes cached, want %d", got, want)
	}
	follower.setLeading(false)
	if got := c.Used(); got != 0 {
		t.Fatalf("after losing leadership %d bytes stay cached", got)
	}
	var l raft.Log
	if err := follower.GetLog(15, &l); err != nil || l.Index != 15 {
		t.Fatalf("entry 15 from the store: %v, index %d", err, l.Index)
	}
}
