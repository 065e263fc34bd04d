package consumergroup

import (
	"context"
	"sync"
	"time"
)

// shareShell is the share part of a shard on its leader: the working
// state the core decides against, the groups' soft state, and the queue
// of the group committer (share_commit.go).
//
// mu serialises decisions; it is never held across a replicated write
// (the committer takes it only to take the queue). It may be held across
// reads of the data partitions that fill the feeds.
type shareShell struct {
	mu sync.Mutex
	// term is the leader term work and groups belong to.
	term uint64
	// work is the committed share state (the table's) with every queued
	// or in-flight command applied: selection proceeds against it, so
	// that two concurrent fetches never pick the same record. Nil until
	// loaded for term.
	work map[string]*shareGroupState
	// stale says a commit failed: work holds decisions that may never
	// land, and must be rebuilt from the table.
	stale  bool
	groups map[string]*shareRuntime
	// changed is closed (and replaced) when queued commands may have made
	// records deliverable: waiting fetches try again.
	changed chan struct{}

	// reportSeq numbers the progress reports of term (shareProgress).
	reportSeq uint64

	queue      []*commitOp
	queueBytes int
	inflight   int           // operations handed to Raft, not yet answered
	kick       chan struct{} // wakes the committer; capacity 1
}

func (sh *shareShell) setup() {
	sh.kick = make(chan struct{}, 1)
	sh.changed = make(chan struct{})
}

// shareBegin makes sure this replica leads, loads the working state for
// the current term when needed, and returns with s.shares.mu held and
// the term.
func (s *shard) shareBegin(ctx context.Context) (uint64, error) {
	sh := &s.shares
	for {
		term, ok := s.log.LeaderTerm()
		if !ok {
			return 0, ErrNotCoordinator
		}
		sh.mu.Lock()
		if sh.term == term && sh.work != nil && !sh.stale {
			return term, nil
		}
		if len(sh.queue) > 0 || sh.inflight > 0 {
			// Commands of the state being replaced are still on their way
			// (they will fail or land): rebuild once they did.
			sh.mu.Unlock()
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return 0, err
			}
			continue
		}
		sh.mu.Unlock()
		// Everything committed must be in the table before it becomes
		// the working state.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.waitApplied(wctx, s.log.HighWatermark())
		cancel()
		if err != nil {
			return 0, ErrCoordinatorLoading
		}
		sh.mu.Lock()
		if len(sh.queue) > 0 || sh.inflight > 0 {
			sh.mu.Unlock()
			continue
		}
		s.mu.Lock()
		work := make(map[string]*shareGroupState, len(s.table.shares))
		for g, st := range s.table.shares {
			work[g] = st.clone()
		}
		s.mu.Unlock()
		if sh.term != term || sh.groups == nil {
			sh.groups = map[string]*shareRuntime{}
		}
		for _, rt := range sh.groups {
			rt.settling = nil // the queue is empty: nothing is settling
		}
		sh.term, sh.work, sh.stale = term, work, false
		sh.wake()
		return term, nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rt returns a group's soft state; sh.mu must be held.
func (sh *shareShell) rt(group string) *shareRuntime {
	rt := sh.groups[group]
	if rt == nil {
		rt = newShareRuntime()
		sh.groups[group] = rt
	}
	return rt
}

// state returns a group's working state (nil if it has none); sh.mu must
// be held.
func (sh *shareShell) state(group string) *shareGroupState { return sh.work[group] }

// wake tells waiting fetches to look again; sh.mu must be held.
func (sh *shareShell) wake() {
	close(sh.changed)
	sh.changed = make(chan struct{})
}

// submit queues cmds for the committer; sh.mu must be held. Commands
// that lock or restrict records (acquire, renew, init, config, pause)
// apply to the working state at once, so that no later decision hands
// out the same record; commands that free records (accept, release,
// reject, leave, dead letters, resume) apply when they are committed, so
// that a record freed by one member's ack is handed to another only by a
// fetch decided after the ack was answered. Records whose settling is
// queued count as not held (an ack of them fails) until then. The
// returned op (nil when there are no commands) is answered once the
// commands are committed: wait on it after unlocking.
func (s *shard) submit(term uint64, cmds []shareCmd) (*commitOp, error) {
	return s.submitFrom(term, "", cmds)
}

// submitFrom is submit for a member's acks: the keys of the records they
// settle are held for the member until it is answered (committed).
func (s *shard) submitFrom(term uint64, member string, cmds []shareCmd) (*commitOp, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	sh := &s.shares
	op, err := newCommitOp(term, cmds)
	if err != nil {
		return nil, err
	}
	op.member = member
	for _, c := range cmds {
		if !freesRecords(c) {
			c.apply(sh.work)
			continue
		}
		op.deferred = append(op.deferred, c)
		sh.rt(c.groupID()).markSettling(c, +1)
	}
	sh.queue = append(sh.queue, op)
	sh.queueBytes += op.bytes
	select {
	case sh.kick <- struct{}{}:
	default:
	}
	return op, nil
}

// committed applies the freeing commands of committed ops to the working
// state, notes the hand-offs of the keys whose records members' acks
// settled (share_handoff.go), and wakes waiting fetches; sh.mu must be
// held.
func (sh *shareShell) committed(ops []*commitOp) {
	now := time.Now()
	freed := false
	for _, op := range ops {
		for _, c := range op.deferred {
			rt := sh.rt(c.groupID())
			if a, ok := c.(*shareAckCmd); ok && op.member != "" {
				rt.noteHandoffs(a, op.member, now)
			}
			c.apply(sh.work)
			rt.markSettling(c, -1)
			freed = true
		}
	}
	if freed {
		sh.wake()
	}
}

// freesRecords tells the commands that apply at commit (see submit).
func freesRecords(c shareCmd) bool {
	switch c := c.(type) {
	case *shareAckCmd:
		return c.Ack != ackRenew
	case *shareDeadCmd, *shareDeadLetteredCmd, *shareResolveCmd, *shareLeaveCmd, *shareResumeCmd:
		return true
	}
	return false
}

// markSettling counts the records an ack or reject command settles.
func (rt *shareRuntime) markSettling(c shareCmd, delta int) {
	add := func(tp TopicPartition, o int64) {
		k := tpOffset{tp, o}
		if n := rt.settling[k] + delta; n > 0 {
			if rt.settling == nil {
				rt.settling = map[tpOffset]int{}
			}
			rt.settling[k] = n
		} else {
			delete(rt.settling, k)
		}
	}
	switch c := c.(type) {
	case *shareAckCmd:
		for _, o := range c.Offsets {
			add(TopicPartition{c.Topic, c.Partition}, o)
		}
	case *shareDeadCmd:
		add(TopicPartition{c.Topic, c.Partition}, c.Offset)
	}
}
