package membership

import (
	"context"
	"math/rand/v2"
	"time"
)

// DefaultReconnectInterval is how often members marked dead are contacted
// again.
const DefaultReconnectInterval = 5 * time.Second

// runReconnect heals a partition after it ends. memberlist never probes a
// node it has declared dead, so once both sides of a long enough partition
// have declared each other dead they stay apart for ever, however healthy
// the network is again. Like Serf's reconnect loop, this one keeps joining
// the last known address of every member that failed (not one that left
// gracefully) and the seeds; a join's push-pull exchange merges the two
// views and the dead side refutes its death.
func (m *Membership) runReconnect(ctx context.Context) {
	for {
		wait := m.cfg.ReconnectInterval + rand.N(m.cfg.ReconnectInterval/4+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		addrs := m.reconnectTargets()
		if len(addrs) == 0 {
			continue
		}
		// Join cannot be cancelled; each contact is bounded by memberlist's
		// TCP timeout.
		if n, err := m.list.Join(addrs); err != nil && n == 0 {
			m.log.Debug("reconnect to failed members", "addrs", addrs, "error", err)
		}
	}
}

// reconnectTargets lists the addresses of failed members, plus the seeds
// when any member is failed (the seeds may know a way back).
func (m *Membership) reconnectTargets() []string {
	var addrs []string
	for _, mb := range m.Members() {
		if mb.State == StateDead && mb.Meta.ID != m.cfg.Meta.ID && mb.Addr != "" {
			addrs = append(addrs, mb.Addr)
		}
	}
	if len(addrs) > 0 {
		addrs = append(addrs, m.cfg.Join...)
	}
	return addrs
}
