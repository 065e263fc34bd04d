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
// and queues them; one committer goroutine per shard writes everything
// queued as one append to the offsets partition and then answers each
// operation. While an append is in flight the next operations queue up,
// so the batch grows with the load and an idle shard writes at once.
//
// The committer writes batches in order and, when one fails, fails every
// operation queued behind it (their decisions assumed it) and marks the
// working state stale, so that the next operation rebuilds it from the
// committed table. An operation answered without error therefore knows
// that everything decided before it is committed too.

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

// runCommitter is the shard's committer; it returns when ctx ends,
// failing what is still queued.
func (s *shard) runCommitter(ctx context.Context) {
	sh := &s.shares
	busy := false
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
			if busy && s.c.cfg.ShareCommitWindow > 0 {
				// Under load, wait a moment for more operations: one
				// append then answers them all. Idle, there is no wait.
				sh.mu.Lock()
				small := sh.queueBytes < maxCommitBytes/2 && len(sh.queue) < maxCommitOps
				sh.mu.Unlock()
				if small {
					sleep(ctx, s.c.cfg.ShareCommitWindow)
				}
			}
			sh.mu.Lock()
			n, size := 0, 0
			for n < len(sh.queue) && n < maxCommitOps && (n == 0 || size+sh.queue[n].bytes <= maxCommitBytes) {
				size += sh.queue[n].bytes
				n++
			}
			batch := sh.queue[:n:n]
			sh.queue = sh.queue[n:]
			sh.queueBytes -= size
			backlog := len(sh.queue) > 0
			sh.inflight = n > 0
			sh.mu.Unlock()
			if n == 0 {
				busy = false
				break
			}
			busy = n > 1 || backlog
			err := s.commit(ctx, batch)
			s.c.metrics.shareCommitOps.Observe(float64(n))
			if err != nil {
				sh.mu.Lock()
				rest := sh.queue
				sh.queue, sh.queueBytes = nil, 0
				sh.stale = true
				sh.inflight = false
				sh.mu.Unlock()
				batch = append(batch, rest...)
			} else {
				sh.mu.Lock()
				sh.committed(batch)
				sh.inflight = false
				sh.mu.Unlock()
			}
			for _, op := range batch {
				op.err = err
				close(op.done)
			}
		}
	}
}

// commit appends the ops' commands as one batch (more only when one op
// alone exceeds a batch) and waits until this replica applied them.
func (s *shard) commit(ctx context.Context, ops []*commitOp) error {
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	term, ok := s.log.LeaderTerm()
	if !ok {
		return ErrNotCoordinator
	}
	for _, op := range ops {
		if op.term != term {
			// Decided in an earlier term, against a state another
			// coordinator may have changed since.
			return ErrNotCoordinator
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
					return err
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
			return err
		}
		batches = append(batches, batch)
	}
	// The append outlives any one caller: callers that gave up still get
	// their commands committed (or failed) in order.
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	var end int64
	for _, batch := range batches {
		base, err := s.log.Append(actx, batch)
		if err != nil {
			return err
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			return err
		}
		end = base + int64(h.LastOffsetDelta) + 1
	}
	s.c.metrics.shareCommitSeconds.Observe(time.Since(start).Seconds())
	return s.waitApplied(actx, end)
}
