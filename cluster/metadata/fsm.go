package metadata

import (
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

var _ raft.FSM = (*FSM)(nil)

// FSM applies meta log entries to the State; it is the raft.FSM of the
// meta group on every node.
//
// Readers never block Apply and never see a half-applied command: each
// command is applied to a copy of the state (copy-on-write, cheap because
// unchanged topics are shared), which is then published atomically.
//
// Raft calls Apply, Snapshot and Restore from one goroutine; State and
// Changed are safe from any goroutine. The FSM holds everything in memory,
// so the meta Raft group must restore its newest snapshot on start (do not
// set raft.Config.NoSnapshotRestoreOnStart for it).
type FSM struct {
	state atomic.Pointer[State]

	mu sync.Mutex
	// changed is closed and replaced on every publish; guarded by mu so
	// that a reader who got a channel is sure to see it closed after any
	// later state.
	changed chan struct{}
}

// NewFSM returns an FSM holding an empty state.
func NewFSM() *FSM {
	f := &FSM{changed: make(chan struct{})}
	f.state.Store(NewState())
	return f
}

// State returns the current state. It is immutable: never modify it (Clone
// it for a copy you may change).
func (f *FSM) State() *State {
	return f.state.Load()
}

// Changed returns a channel closed at the next publication of a new state:
// after every applied log entry (rejected commands included, as they
// advance State().Index) and after a Restore. To wait for a condition,
// take the channel first, then read State, then wait:
//
//	for {
//		ch := fsm.Changed()
//		if s := fsm.State(); ready(s) {
//			return s
//		}
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return ctx.Err()
//		}
//	}
func (f *FSM) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

func (f *FSM) publish(s *State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state.Store(s)
	close(f.changed)
	f.changed = make(chan struct{})
}

// Apply applies one committed entry and returns a Result (read it with
// ResultOf). A rejected command (invalid, unknown type, malformed) leaves
// the state unchanged except for Index, identically on every replica; it
// never panics.
//
// An entry at or below State().Index is already part of the state (replay
// after a restore) and is skipped.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cur := f.state.Load()
	res := Result{Index: l.Index}
	if l.Index <= cur.Index {
		return res
	}
	cmd, err := DecodeCommand(l.Data)
	if err == nil {
		next := cur.cow()
		if err = applyRecovering(cmd, next, l.Index, &res); err == nil {
			next.Index = l.Index
			f.publish(next)
			return res
		}
	}
	// Rejected: publish the same state at the new index, so waiters on an
	// index are woken whatever became of the entry. Sharing cur's maps is
	// fine: published states are never modified.
	next := *cur
	next.Index = l.Index
	f.publish(&next)
	return Result{Index: l.Index, Err: err}
}
