package consumergroup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// shard is this node's part in one offsets partition: a reader that keeps
// the committed-offset table current on every replica and, while the
// replica leads, the groups' membership.
type shard struct {
	c         *Coordinator
	partition int32
	log       Log

	mu       sync.Mutex
	table    *offsetTable
	next     int64         // next offset to apply
	advanced chan struct{} // closed (and replaced) whenever next moves
	// bytesSinceCheckpoint counts bytes applied since the last completed
	// checkpoint: the part of the log a new checkpoint would make
	// deletable.
	bytesSinceCheckpoint int64
	lastCheckpointTry    time.Time

	// Owned by the tail goroutine: skipped records already counted (all
	// below countedUpTo) and the classes already logged.
	countedUpTo     int64
	loggedMalformed map[string]bool

	// Leader-only soft state, valid for term.
	term        uint64
	leaderSince time.Time
	groups      map[string]*group

	// writeMu: commits hold it shared, a checkpoint exclusively, so that
	// a checkpoint's records are contiguous.
	writeMu sync.RWMutex

	// shares is the share groups' working and soft state and the group
	// committer's queue (leader only).
	shares shareShell

	cancel context.CancelFunc
	done   chan struct{} // closed when the tail returned
	// committerDone is closed when the share committer returned.
	committerDone chan struct{}
}

func newShard(c *Coordinator, p int32, lg Log) *shard {
	ctx, cancel := context.WithCancel(context.Background())
	s := &shard{c: c, partition: p, log: lg, table: newOffsetTable(), advanced: make(chan struct{}),
		groups: map[string]*group{}, cancel: cancel, done: make(chan struct{}), committerDone: make(chan struct{})}
	s.shares.setup()
	go s.tail(ctx)
	go func() {
		defer close(s.committerDone)
		s.runCommitter(ctx)
	}()
	return s
}

func (s *shard) close() {
	s.cancel()
	<-s.done
	<-s.committerDone
}

// tail applies the offsets log as it grows.
func (s *shard) tail(ctx context.Context) {
	defer close(s.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		s.mu.Lock()
		next := s.next
		s.mu.Unlock()
		res, err := s.log.Read(ctx, next, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.c.logger.Debug("offsets log read", "partition", s.partition, "error", err)
			sleep(ctx, backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if next < res.Start {
			s.restart(res.Start)
			continue
		}
		if err := s.applyBatches(res.Batches); err != nil {
			s.c.logger.Error("offsets log unreadable; rereading from its start", "partition", s.partition, "error", err)
			s.restart(res.Start)
			sleep(ctx, time.Second)
		}
	}
}

// restart forgets the table and reads the log again from start (the log
// was cut below our position, e.g. by a snapshot install).
func (s *shard) restart(start int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.table = newOffsetTable()
	s.next = start
	s.bytesSinceCheckpoint = 0
}

func (s *shard) applyBatches(data []byte) error {
	for batch, err := range record.Batches(data) {
		if errors.Is(err, record.ErrShortBuffer) {
			return nil
		}
		if err != nil {
			return err
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			return err
		}
		var entries []entry
		var offsets []int64
		err = record.Records(batch, func(r record.Record) error {
			e, err := decodeEntry(r)
			if err != nil {
				s.skipMalformed(r.Offset, err)
				return nil
			}
			entries = append(entries, e)
			offsets = append(offsets, r.Offset)
			return nil
		})
		if err != nil {
			// The batch's framing is intact (its header parsed) but its
			// records are not: skip the rest of it rather than read the
			// log again for ever.
			s.skipMalformed(h.BaseOffset, &malformedError{class: "undecodable-batch", reason: err.Error()})
		}
		completed := int64(-1)
		s.mu.Lock()
		if h.BaseOffset < s.next {
			s.mu.Unlock()
			continue
		}
		for i, e := range entries {
			if b := s.applyEntry(offsets[i], e); b >= 0 {
				completed = b
				s.bytesSinceCheckpoint = 0
			}
		}
		s.bytesSinceCheckpoint += int64(len(batch))
		s.next = h.BaseOffset + int64(h.LastOffsetDelta) + 1
		close(s.advanced)
		s.advanced = make(chan struct{})
		s.mu.Unlock()
		if completed >= 0 {
			if err := s.log.DeleteBefore(completed); err != nil {
				s.c.logger.Warn("offsets log cleanup", "partition", s.partition, "error", err)
			}
		}
	}
	return nil
}

// applyEntry applies one checked entry; s.mu must be held. checkEntry
// should leave apply nothing to panic on; should it still, the entry is
// skipped like a malformed one (deterministically, so on every replica)
// and the node stays up.
func (s *shard) applyEntry(offset int64, e entry) (completed int64) {
	defer func() {
		if p := recover(); p != nil {
			completed = -1
			s.skipMalformed(offset, &malformedError{class: "apply-panic", reason: fmt.Sprint(p)})
		}
	}()
	return s.table.apply(offset, e)
}

// skipMalformed counts a skipped record and logs the first of each class
// on this partition: a log full of junk must not flood the node's log.
// Records below countedUpTo were counted before a re-read from the log
// start (restart) and are not counted twice. Only the tail goroutine
// calls it.
func (s *shard) skipMalformed(offset int64, err error) {
	if offset < s.countedUpTo {
		return
	}
	s.countedUpTo = offset + 1
	s.c.metrics.malformed.Inc()
	class := "malformed"
	var me *malformedError
	if errors.As(err, &me) {
		class = me.class
	}
	if s.loggedMalformed == nil {
		s.loggedMalformed = map[string]bool{}
	}
	if s.loggedMalformed[class] || len(s.loggedMalformed) >= maxLoggedMalformedClasses {
		return
	}
	s.loggedMalformed[class] = true
	s.c.logger.Warn("skipping malformed offsets log record (further ones of this kind on this partition are only counted)",
		"partition", s.partition, "offset", offset, "error", err, "metric", "skiff_group_offsets_malformed_total")
}

// maxLoggedMalformedClasses bounds the classes skipMalformed remembers.
// Classes are kinds this version knows plus a few of its own, so the
// bound is never reached in practice; it is there in case a class ever
// comes from input.
const maxLoggedMalformedClasses = 64

// waitApplied waits until every offset below off is applied.
func (s *shard) waitApplied(ctx context.Context, off int64) error {
	for {
		s.mu.Lock()
		next, ch := s.next, s.advanced
		s.mu.Unlock()
		if next >= off {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// lead makes sure this replica leads and its state is loaded for the
// current term; it must be called with s.mu unlocked. It returns the
// groups map's owner term.
func (s *shard) lead(ctx context.Context) error {
	term, ok := s.log.LeaderTerm()
	if !ok {
		return ErrNotCoordinator
	}
	s.mu.Lock()
	loaded := s.term == term
	s.mu.Unlock()
	if loaded {
		return nil
	}
	// Everything committed before this term must be in the table before
	// the new coordinator answers.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hw := s.log.HighWatermark()
	if err := s.waitApplied(wctx, hw); err != nil {
		return ErrCoordinatorLoading
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.term != term {
		s.term = term
		s.leaderSince = s.c.cfg.Now()
		s.groups = map[string]*group{}
		s.c.logger.Info("coordinating offsets partition", "partition", s.partition, "term", term)
	}
	return nil
}

// group returns group id's soft state, restored from its latest snapshot
// in the log when this coordinator has not seen it yet (nil if it has
// none). s.mu must be held.
func (s *shard) group(id string, now time.Time) *group {
	if g := s.groups[id]; g != nil {
		return g
	}
	snap := s.table.members[id]
	if snap == nil {
		return nil
	}
	g := restoreGroup(id, snap, &s.c.cfg, now)
	s.groups[id] = g
	return g
}

// stillLeads reports whether the loaded term is still current.
func (s *shard) stillLeads() bool {
	term, ok := s.log.LeaderTerm()
	s.mu.Lock()
	defer s.mu.Unlock()
	return ok && term == s.term
}

// append writes entries, waits until the local table has applied them and
// returns the offset after the last one.
func (s *shard) append(ctx context.Context, entries []entry) error {
	batches, err := encodeEntries(entries, s.c.cfg.Now())
	if err != nil {
		return err
	}
	var end int64
	for _, b := range batches {
		base, err := s.log.Append(ctx, b)
		if err != nil {
			return err
		}
		h, _ := record.ParseHeader(b)
		end = base + int64(h.LastOffsetDelta) + 1
	}
	return s.waitApplied(ctx, end)
}

// maybeCheckpoint rewrites the live offsets when enough log has piled up
// since the last checkpoint.
func (s *shard) maybeCheckpoint(ctx context.Context) {
	now := s.c.cfg.Now()
	s.mu.Lock()
	due := s.bytesSinceCheckpoint >= s.c.cfg.CheckpointBytes && now.Sub(s.lastCheckpointTry) > 10*time.Second
	if due {
		s.lastCheckpointTry = now
	}
	s.mu.Unlock()
	if !due || !s.stillLeads() {
		return
	}
	if err := s.checkpoint(ctx); err != nil {
		s.c.logger.Warn("offsets checkpoint", "partition", s.partition, "error", err)
	}
}

// checkpoint writes begin, the whole table, end. The table is read after
// the begin entry is applied, under the exclusive write lock, so no commit
// falls between what it restates and what follows it.
func (s *shard) checkpoint(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	beginBatch, err := encodeEntries([]entry{{Kind: kindCheckpointBegin}}, s.c.cfg.Now())
	if err != nil {
		return err
	}
	begin, err := s.log.Append(ctx, beginBatch[0])
	if err != nil {
		return err
	}
	if err := s.waitApplied(ctx, begin+1); err != nil {
		return err
	}
	s.mu.Lock()
	live := s.table.checkpointEntries()
	s.mu.Unlock()
	live = append(live, entry{Kind: kindCheckpointEnd, Begin: begin})
	if err := s.append(ctx, live); err != nil {
		return err
	}
	s.c.metrics.checkpoints.Inc()
	s.c.logger.Info("offsets checkpoint written", "partition", s.partition, "begin", begin, "entries", len(live)-1)
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
