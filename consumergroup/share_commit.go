package consumergroup

import (
	"context"
	"fmt"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Group commit of share commands. Every share operation of a shard
// decides under the shell's mutex against the working state (committed
// state plus the commands not yet committed), applies its commands to it
// and queues them; one committer goroutine per shard takes everything
// queued as one append to the offsets partition. It does not wait for an
// append to commit before it hands the next to Raft, up to
// maxCommitsInFlight of them: Raft replicates and fsyncs appends that
// arrive together as one, so an operation does not wait for the append
// ahead of it to finish, only for its own. While the pipeline is full the
// next operations queue up, so the batch grows with the load and an idle
// shard writes at once.
//
// The appends go to Raft from that one goroutine, so they enter the log
// in the order they were decided, and an answerer goroutine answers them
// in that order. When one fails, the answerer fails it and every
// operation behind it, in flight or queued (their decisions assumed it),
// and marks the working state stale, so that the next operation rebuilds
// it from the committed table once nothing is in flight. An operation
// answered without error therefore knows that everything decided before
// it is committed too.

// commitOp is one operation's commands waiting for the committer.
type commitOp struct {
	term   uint64
	values [][]byte // encoded commands
	// deferred are the commands that apply to the working state once
	// committed (submit).
	deferred []shareCmd
	member   string   // whose acks these are ("" for other operations)
	keys     [][]byte // record keys ("kind/group")
	bytes    int
	done     chan struct{}
	err      error // set before done is closed
}

// wait blocks until the op is committed (nil) or failed. A caller that
// stops waiting (ctx) does not stop the commit.
func (op *commitOp) wait(ctx context.Context) error {
	if op == nil {
		return nil
	}
	select {
	case <-op.done:
		return op.err
	case <-ctx.Done():
		return fmt.Errorf("waiting for share commands to commit: %w", ctx.Err())
	}
}

// Bounds of one group commit.
const (
	// maxCommitBytes keeps one commit within one record batch.
	maxCommitBytes = maxEntriesBatchBytes
	// maxCommitOps bounds the operations answered by one commit.
	maxCommitOps = 4096
	// maxCommitsInFlight bounds the appends handed to Raft and not yet
	// answered.
	maxCommitsInFlight = 4
)

// newCommitOp encodes cmds for the committer.
func newCommitOp(term uint64, cmds []shareCmd) (*commitOp, error) {
	op := &commitOp{term: term, done: make(chan struct{})}
	for _, c := range cmds {
		v, err := encodeShareCmd(c)
		if err != nil {
			return nil, err
		}
		op.values = append(op.values, v)
		op.keys = append(op.keys, []byte(c.kind()+"/"+c.groupID()))
		op.bytes += len(v) + len(c.groupID()) + 32
	}
	return op, nil
}

// pendingCommit is an append handed to Raft, waiting to be answered.
type pendingCommit struct {
	ops   []*commitOp
	start time.Time
	// wait returns the offset after the append (or the first error); nil
	// when nothing of it reached Raft.
	wait func(ctx context.Context) (end int64, err error)
	// err is why (part of) the append never reached Raft.
	err error
}

// runCommitter is the shard's committer; it returns when ctx ends,
// failing what is still queued, once the answerer answered what is in
// flight.
func (s *shard) runCommitter(ctx context.Context) {
	sh := &s.shares
	pending := make(chan *pendingCommit, maxCommitsInFlight)
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		s.answerCommits(ctx, pending)
	}()
	defer func() {
		close(pending)
		<-answered
	}()
	for {
		select {
		case <-ctx.Done():
			sh.mu.Lock()
			q := sh.queue
			sh.queue, sh.queueBytes = nil, 0
			sh.stale = true
			sh.mu.Unlock()
			for _, op := range q {
				op.err = ErrNotCoordinator
				close(op.done)
			}
			return
		case <-sh.kick:
		}
		for {
			sh.mu.Lock()
			n, size := 0, 0
			for n < len(sh.queue) && n < maxCommitOps && (n == 0 || size+sh.queue[n].bytes <= maxCommitBytes) {
				size += sh.queue[n].bytes
				n++
			}
			batch := sh.queue[:n:n]
			sh.queue = sh.queue[n:]
			sh.queueBytes -= size
			sh.inflight += n
			stale := sh.stale
			sh.mu.Unlock()
			if n == 0 {
				break
			}
			p := &pendingCommit{ops: batch, start: time.Now()}
			if stale {
				// An append ahead failed: these were decided against a
				// state that assumed it.
				p.err = ErrNotCoordinator
			} else {
				p.wait, p.err = s.submitCommit(ctx, batch)
				if p.err != nil {
					// Appends handed over after this one could still get
					// into the log without it: hand over none until the
					// working state is rebuilt from what did.
					sh.mu.Lock()
					sh.stale = true
					sh.mu.Unlock()
				}
			}
			// Blocks while maxCommitsInFlight are unanswered; the answerer
			// returns only once this goroutine closed the channel.
			pending <- p
		}
	}
}

// answerCommits answers the appends in the order they were handed to Raft
// until pending is closed.
func (s *shard) answerCommits(ctx context.Context, pending <-chan *pendingCommit) {
	sh := &s.shares
	for p := range pending {
		err := p.err
		if p.wait != nil {
			// The append outlives any one caller: callers that gave up
			// still get their commands committed (or failed) in order.
			// Waited for even when part of it was refused, so that what
			// reached Raft releases what it holds.
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			end, werr := p.wait(actx)
			if err == nil {
				err = werr
			}
			if err == nil {
				s.c.metrics.shareCommitSeconds.Observe(time.Since(p.start).Seconds())
				err = s.waitApplied(actx, end)
			}
			cancel()
		}
		s.c.metrics.shareCommitOps.Observe(float64(len(p.ops)))
		batch := p.ops
		sh.mu.Lock()
		sh.inflight -= len(p.ops)
		switch {
		case err == nil && !sh.stale:
			sh.committed(batch)
		case err == nil:
			// Committed, but an append ahead of it failed: answered as
			// failed, as its decisions assumed that one.
			err = ErrNotCoordinator
		default:
			rest := sh.queue
			sh.queue, sh.queueBytes = nil, 0
			sh.stale = true
			batch = append(batch, rest...)
		}
		sh.mu.Unlock()
		for _, op := range batch {
			op.err = err
			close(op.done)
		}
	}
}

// submitCommit checks that ops were decided in the current term and hands
// their commands to Raft as one batch (more only when one op alone
// exceeds a batch); wait returns once this replica applied them. When a
// batch is refused before it reaches Raft, submitCommit hands over none
// after it and returns the refusal, with a wait for those handed over
// before it (nil if none).
func (s *shard) submitCommit(ctx context.Context, ops []*commitOp) (wait func(ctx context.Context) (int64, error), err error) {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	term, ok := s.log.LeaderTerm()
	if !ok {
		return nil, ErrNotCoordinator
	}
	for _, op := range ops {
		if op.term != term {
			// Decided in an earlier term, against a state another
			// coordinator may have changed since.
			return nil, ErrNotCoordinator
		}
	}
	ts := s.c.cfg.Now().UnixMilli()
	b := record.NewBuilder(record.BatchOptions{})
	var batches [][]byte
	for _, op := range ops {
		for i, v := range op.values {
			r := record.Record{Timestamp: ts, Key: op.keys[i], Value: v}
			if b.Len() > 0 && b.EstimatedSizeWith(r) > maxEntriesBatchBytes {
				batch, err := b.Build()
				if err != nil {
					return nil, err
				}
				batches = append(batches, batch)
				b = record.NewBuilder(record.BatchOptions{})
			}
			b.Add(r)
		}
	}
	if b.Len() > 0 {
		batch, err := b.Build()
		if err != nil {
			return nil, err
		}
		batches = append(batches, batch)
	}
	// Handed to Raft one after the other from this goroutine, the batches
	// enter the log in this order, after any appended before.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	waits := make([]func(context.Context) (int64, error), 0, len(batches))
	lasts := make([]int64, 0, len(batches))
	var refused error
	for _, batch := range batches {
		h, err := record.ParseHeader(batch)
		if err == nil {
			var w func(context.Context) (int64, error)
			if w, err = s.log.AppendAsync(actx, batch); err == nil {
				waits = append(waits, w)
				lasts = append(lasts, int64(h.LastOffsetDelta))
				continue
			}
		}
		refused = err
		break
	}
	if len(waits) == 0 {
		cancel()
		return nil, refused
	}
	return func(ctx context.Context) (int64, error) {
		defer cancel()
		// Every batch is waited for, so that each releases what it holds.
		var end int64
		var first error
		for i, w := range waits {
			base, err := w(ctx)
			if err != nil && first == nil {
				first = err
			}
			end = base + lasts[i] + 1
		}
		if first != nil {
			return 0, first
		}
		return end, nil
	}, refused
}
