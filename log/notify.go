package log

import (
	"sync"
	"sync/atomic"
)

// notifier hands out a channel that the next append closes (the NotifyLEO
// pattern): a long-polling reader takes the channel, re-checks NextOffset, and
// waits on the channel only if there was nothing new.
//
// Appends pay one atomic load when nobody waits: the channel is only closed
// and replaced once a waiter has armed it. No wake-up is lost: a waiter arms
// before it re-checks NextOffset and an append publishes before it checks the
// arm, and Go's atomics are sequentially consistent, so either the waiter
// sees the new offset or the append sees the arm.
type notifier struct {
	armed atomic.Bool
	mu    sync.Mutex
	ch    chan struct{} // guarded by mu; nil until a waiter asks
	shut  bool          // guarded by mu; set by Close: waiters get a closed channel
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
		if n.shut {
			close(n.ch)
		}
	}
	n.armed.Store(true)
	return n.ch
}

func (n *notifier) notify() {
	if !n.armed.Load() {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil && !n.shut {
		close(n.ch)
		n.ch = nil
	}
	n.armed.Store(false)
}

// close wakes all waiters for good.
func (n *notifier) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.shut {
		return
	}
	n.shut = true
	if n.ch != nil {
		close(n.ch)
	} else {
		n.ch = make(chan struct{})
		close(n.ch)
	}
}
