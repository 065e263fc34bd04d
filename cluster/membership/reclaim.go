package membership

import (
	"context"
	"time"
)

// Name reclaim.
//
// When a node restarts at a new address while peers still list its old
// process, memberlist rejects the new address ("conflicting address") until
// the old entry has been dead for DeadNodeReclaimTime. After that it accepts
// the new address, but only when the new process's alive message reaches it
// again — in practice at the next periodic push-pull, up to 30s later, long
// enough to look like a lasting failure to the controller.
//
// So each node remembers the claimant from memberlist's conflict callback
// and, once the old entry is reclaimable, push-pulls with the claimant's
// address itself. The exchange carries the claimant's alive state, which
// memberlist now accepts (and gossips on); it also tells the claimant its old
// self is dead, so it refutes with a fresh incarnation.

const (
	// reclaimMargin covers the gap between memberlist's StateChange and our
	// Since (taken just after it, in the same callback) and timer slack.
	reclaimMargin = 250 * time.Millisecond
	// maxReclaimAttempts bounds retries for a claimant that answers but is
	// still not accepted; a new conflict starts over.
	maxReclaimAttempts = 5
)

// reclaim is a pending takeover of a member's name by a process at addr.
type reclaim struct {
	addr      string
	attempts  int
	notBefore time.Time
}

// noteConflict records that addr claims id's name. Called from memberlist's
// conflict callback: never blocks.
func (m *Membership) noteConflict(id, addr string) {
	m.mu.Lock()
	if r, ok := m.reclaims[id]; !ok || r.addr != addr {
		m.reclaims[id] = &reclaim{addr: addr}
		m.log.Info("member claims a new address; will accept it once the old one is reclaimable", "id", id, "addr", addr)
	}
	m.mu.Unlock()
	select {
	case m.wakeup <- struct{}{}:
	default:
	}
}

func (m *Membership) runReclaim(ctx context.Context) {
	for {
		changed := m.Changed()
		due, next := m.dueReclaims(time.Now())
		for id, addr := range due {
			if ctx.Err() != nil {
				return
			}
			_, err := m.list.Join([]string{addr})
			m.finishReclaim(id, addr, err)
		}
		if len(due) > 0 {
			continue
		}
		var timer *time.Timer
		var timeout <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
		case <-m.wakeup:
		case <-changed:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// dueReclaims returns the claimants to contact now (by id) and when the next
// one becomes due, dropping resolved ones.
func (m *Membership) dueReclaims(now time.Time) (map[string]string, time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	due := make(map[string]string)
	var next time.Time
	for id, r := range m.reclaims {
		e, ok := m.members[id]
		var at time.Time
		switch {
		case !ok, e.member.State == StateAlive && e.member.Addr == r.addr:
			delete(m.reclaims, id) // resolved (or never known)
			continue
		case e.member.State == StateAlive:
			continue // old process still believed alive: wait for its death
		case e.member.State == StateDead:
			at = e.member.Since.Add(m.cfg.DeadNodeReclaimTime + reclaimMargin)
		default: // left: reclaimable at once
			at = now
		}
		if r.notBefore.After(at) {
			at = r.notBefore
		}
		if !at.After(now) {
			due[id] = r.addr
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return due, next
}

func (m *Membership) finishReclaim(id, addr string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reclaims[id]
	if !ok || r.addr != addr {
		return
	}
	r.attempts++
	if err != nil || r.attempts >= maxReclaimAttempts {
		// An unreachable claimant is gone; a live one will conflict again.
		m.log.Debug("giving up reclaim", "id", id, "addr", addr, "attempts", r.attempts, "error", err)
		delete(m.reclaims, id)
		return
	}
	r.notBefore = time.Now().Add(m.cfg.JoinRetryInterval)
}
