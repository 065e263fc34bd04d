package partition

import (
	"context"
	"sync"
)

// byteBudget is a FIFO counting semaphore of bytes shared by every replica
// of a node: a caller that would take the total past the limit waits (in
// arrival order, so a large request is not starved by small ones) until
// others give bytes back or its context ends. A request larger than the
// whole budget takes the whole budget, so it can still run, alone.
type byteBudget struct {
	mu      sync.Mutex
	limit   int64
	used    int64           // guarded by mu
	waiters []*budgetWaiter // guarded by mu; FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are granted
}

func newByteBudget(limit int64) *byteBudget { return &byteBudget{limit: limit} }

// acquire takes n bytes (capped at the limit) and returns how many it took,
// which the caller hands back to release.
func (b *byteBudget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.limit)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				b.grantLocked() // the head may have changed
				b.mu.Unlock()
				return 0, ctx.Err()
			}
		}
		b.mu.Unlock()
		// Granted while the context ended: give the bytes back.
		b.release(n)
		return 0, ctx.Err()
	}
}

func (b *byteBudget) release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	b.grantLocked()
	b.mu.Unlock()
}

func (b *byteBudget) grantLocked() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// inUse returns the bytes held now.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
