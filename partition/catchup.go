package partition

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// catchUpLimiter bounds the bytes per second a node takes in as snapshots
// installed by leaders: the bulk of a replica's catch-up when it is new
// (a reassignment, a rebalance, a replaced node) or far behind. Pacing the
// receiving side back-pressures the leader's stream through TCP, so the
// wire carries no more either, and a node receiving several replicas at
// once shares one budget, as Kafka's follower replication throttle does.
// Entries a follower catches up from the leader's Raft log tail are not
// paced: they are what keeps the partition committing.
type catchUpLimiter struct {
	lim    *rate.Limiter // nil = unthrottled
	burst  int
	bytes  atomic.Int64 // bytes received
	waited atomic.Int64 // nanoseconds spent waiting for the budget
}

func newCatchUpLimiter(bytesPerSec int64) *catchUpLimiter {
	c := &catchUpLimiter{}
	if bytesPerSec > 0 {
		// A burst of 1/8 s of traffic (at least 64 KiB, at most 8 MiB)
		// keeps pacing smooth without starving a small rate.
		c.burst = int(min(max(bytesPerSec/8, 64<<10), 8<<20))
		c.lim = rate.NewLimiter(rate.Limit(bytesPerSec), c.burst)
	}
	return c
}

// wait takes n bytes from the budget, sleeping as long as that needs.
func (c *catchUpLimiter) wait(ctx context.Context, n int) error {
	if c == nil {
		return nil
	}
	c.bytes.Add(int64(n))
	if c.lim == nil {
		return nil
	}
	start := time.Now()
	defer func() { c.waited.Add(int64(time.Since(start))) }()
	for n > 0 {
		chunk := min(n, c.burst)
		if err := c.lim.WaitN(ctx, chunk); err != nil {
			return err
		}
		n -= chunk
	}
	return nil
}
