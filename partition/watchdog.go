package partition

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/skiff-mq/skiff/internal/raftutil"
)

// pendingWrites tracks when each in-flight Produce started, so the watchdog
// can tell a leader whose writes stall from one that is merely busy.
type pendingWrites struct {
	mu     sync.Mutex
	next   uint64
	starts map[uint64]time.Time // guarded by mu
}

func newPendingWrites() *pendingWrites {
	return &pendingWrites{starts: make(map[uint64]time.Time)}
}

// add records a write started at t and returns the func that retires it.
func (p *pendingWrites) add(t time.Time) func() {
	p.mu.Lock()
	id := p.next
	p.next++
	p.starts[id] = t
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.starts, id)
		p.mu.Unlock()
	}
}

// oldest returns the start of the longest-waiting write, ok false if none.
func (p *pendingWrites) oldest() (t time.Time, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.starts {
		if !ok || s.Before(t) {
			t, ok = s, true
		}
	}
	return t, ok
}

// runWatchdog hands leadership away when writes stall on this leader: a
// leader whose disk hangs keeps sending heartbeats and never steps down by
// itself (hashicorp/raft #503), leaving the partition unwritable. If even the
// transfer cannot run (the leader loop itself is stuck in the disk write),
// the replica cuts its Raft transport so followers stop hearing heartbeats
// and elect a new leader, and marks itself failed for the cluster layer to
// rebuild.
func (r *Replica) runWatchdog() {
	defer r.wg.Done()
	limit := r.cfg.WatchdogTimeout
	if limit <= 0 {
		return
	}
	tick := time.NewTicker(limit / 4)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		if r.raft.State() != raft.Leader {
			continue
		}
		started, ok := r.pending.oldest()
		if !ok || time.Since(started) < limit {
			continue
		}
		r.metrics.watchdogFired()
		r.logger.Warn("writes stalled on this leader; transferring leadership", "oldest_write_age", time.Since(started))
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		err := raftutil.WaitFuture(ctx, r.raft.LeadershipTransfer())
		cancel()
		if err == nil {
			continue
		}
		r.logger.Error("leadership transfer failed while writes stall; fencing this replica", "error", err)
		r.trans.Close()
		r.fail(err)
		return
	}
}

// runRetention deletes expired segments periodically. Each replica decides
// on its own clock, as Kafka brokers do: a read below a replica's log start
// gets OffsetOutOfRange with the valid range either way.
func (r *Replica) runRetention() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.RetentionCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		r.fsm.snapshotMu.Lock()
		n, err := r.fsm.log().ApplyRetention()
		r.fsm.snapshotMu.Unlock()
		if err != nil {
			r.logger.Warn("retention", "error", err)
		} else if n > 0 {
			r.logger.Info("retention deleted segments", "segments", n)
		}
	}
}
