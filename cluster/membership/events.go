package membership

import (
	"context"
	"log/slog"
	"sync"
)

// EventBuffer is the number of events a subscriber's channel holds. When it
// is full the oldest event is dropped to make room: gossip never waits for a
// subscriber. A subscriber that may fall behind should treat events as hints
// and recompute from Members(), which is always current.
const EventBuffer = 64

type subscriber struct {
	ch      chan Event
	dropped uint64 // guarded by Membership.mu
}

// Subscribe returns a channel that receives every membership event from now
// on, and a function that unsubscribes and closes the channel (safe to call
// more than once). See EventBuffer for what happens to a slow reader. The
// channel is also closed when the Membership is closed.
func (m *Membership) Subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, EventBuffer)}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	m.subs[s] = struct{}{}
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if _, ok := m.subs[s]; ok {
				delete(m.subs, s)
				close(s.ch)
			}
		})
	}
}

// Changed returns a channel that is closed at the next membership change
// (any event). Take it before reading Members() and wait on it after, so no
// change slips in between. After the Membership is closed it returns a
// closed channel.
func (m *Membership) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// publishLocked delivers ev to every subscriber and wakes Changed waiters.
// It runs inside memberlist callbacks, so it never blocks. Caller holds mu.
func (m *Membership) publishLocked(ev Event) {
	if m.closed {
		return
	}
	level := slog.LevelInfo
	if ev.Type == EventUpdated {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, "member "+ev.Type.String(), "id", ev.Member.Meta.ID, "addr", ev.Member.Addr)
	for s := range m.subs {
		if s.deliver(ev) && s.dropped == 1 {
			m.log.Warn("membership subscriber is not keeping up; dropping its oldest events")
		}
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// deliver sends ev, dropping the oldest buffered event if the channel is
// full. Only the publisher sends (under mu), so after one receive there is
// room. It reports whether an event was dropped.
func (s *subscriber) deliver(ev Event) (dropped bool) {
	for {
		select {
		case s.ch <- ev:
			return dropped
		default:
		}
		select {
		case <-s.ch:
			s.dropped++
			dropped = true
		default:
		}
	}
}

// close marks the Membership closed, closes every subscriber channel and
// wakes Changed and WaitForMembers waiters for good. memberlist may still
// call the delegates afterwards (its suspicion timers outlive Shutdown);
// they see closed and do nothing.
func (m *Membership) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	for s := range m.subs {
		close(s.ch)
	}
	clear(m.subs)
	close(m.changed) // left closed: Changed() returns a closed channel from now on
}
