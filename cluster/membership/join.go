package membership

import (
	"context"
	"math/rand/v2"
	"time"
)

// runJoin contacts the seeds until this node is in a cluster with at least
// one other node. Success is judged by the member count rather than by
// memberlist's Join result, because Join counts this node's own address as
// a successful contact when it appears among the seeds (a common setup: every
// node gets the same seed list), which would end the loop before anyone was
// reached. A node that others join first is in a cluster too, and stops.
func (m *Membership) runJoin(ctx context.Context) {
	var deadline time.Time
	if m.cfg.JoinTimeout > 0 {
		deadline = time.Now().Add(m.cfg.JoinTimeout)
	}
	for attempt := 1; ; attempt++ {
		if m.list.NumMembers() > 1 {
			m.log.Info("joined cluster", "members", m.list.NumMembers(), "attempts", attempt-1)
			return
		}
		// Join cannot be cancelled; each contact is bounded by memberlist's
		// TCPTimeout.
		contacted, err := m.list.Join(m.cfg.Join)
		if m.list.NumMembers() > 1 {
			m.log.Info("joined cluster", "members", m.list.NumMembers(), "contacted", contacted, "attempts", attempt)
			return
		}
		// The first failure and every tenth are worth a warning; the rest
		// are expected while other nodes are still starting.
		level := m.log.Debug
		if attempt == 1 || attempt%10 == 0 {
			level = m.log.Warn
		}
		level("no other node reachable yet; retrying", "seeds", m.cfg.Join, "attempt", attempt, "error", err)
		if !deadline.IsZero() && time.Now().After(deadline) {
			m.log.Error("giving up joining the cluster", "seeds", m.cfg.Join, "after", m.cfg.JoinTimeout)
			return
		}
		wait := m.cfg.JoinRetryInterval + rand.N(m.cfg.JoinRetryInterval/4+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
