package rpc

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ttlCache remembers answers that are expensive to compute (a topic's
// description costs a call to every node) for a short while, and lets
// concurrent callers missing the same key share one computation.
type ttlCache[V any] struct {
	mu      sync.Mutex
	entries map[string]*cacheEntry[V] // guarded by mu
}

type cacheEntry[V any] struct {
	done    chan struct{} // closed once val and err are set
	val     V
	err     error
	expires time.Time // set before done closes
}

// maxCacheEntries triggers a sweep of expired entries.
const maxCacheEntries = 1024

func newTTLCache[V any]() *ttlCache[V] {
	return &ttlCache[V]{entries: make(map[string]*cacheEntry[V])}
}

// get returns the cached value of key, or computes it with load, which
// also says how long the value stays fresh (errors are never cached). load
// runs detached from ctx, bounded by timeout, so that one impatient caller
// does not fail the others waiting for the same key.
func (c *ttlCache[V]) get(ctx context.Context, key string, timeout time.Duration, load func(context.Context) (V, time.Duration, error)) (V, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok || c.expired(e, now) {
		if len(c.entries) >= maxCacheEntries {
			c.sweep(now)
		}
		e = &cacheEntry[V]{done: make(chan struct{})}
		c.entries[key] = e
		c.mu.Unlock()
		return c.fill(ctx, e, timeout, load)
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.val, e.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}

// fill computes e's value. Waiters are released even if load panics
// (the panic goes on up the caller's stack).
func (c *ttlCache[V]) fill(ctx context.Context, e *cacheEntry[V], timeout time.Duration, load func(context.Context) (V, time.Duration, error)) (val V, err error) {
	var ttl time.Duration
	loaded := false
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		e.val, e.err, e.expires = val, err, time.Now().Add(ttl)
		if !loaded {
			e.err = errors.New("loading a cached value failed (panic)")
		}
		if e.err != nil {
			e.expires = time.Time{} // never cache an error
		}
		close(e.done)
	}()
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	val, ttl, err = load(lctx)
	loaded = true
	return val, err
}

// expired reports whether a finished entry is stale. Caller holds mu.
func (c *ttlCache[V]) expired(e *cacheEntry[V], now time.Time) bool {
	select {
	case <-e.done:
		return !now.Before(e.expires)
	default:
		return false // still loading: wait for it
	}
}

// forget drops key, so the next get computes it afresh.
func (c *ttlCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// sweep drops expired entries. Caller holds mu.
func (c *ttlCache[V]) sweep(now time.Time) {
	for k, e := range c.entries {
		if c.expired(e, now) {
			delete(c.entries, k)
		}
	}
}
