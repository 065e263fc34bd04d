package log

import (
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Log is one partition's on-disk log: a sequence of segments holding record
// batches at increasing offsets. One goroutine at a time appends (Append is
// also guarded by a mutex); any number read concurrently without waiting for
// the writer or its fsyncs.
type Log struct {
	dir string

	cfg     atomic.Pointer[Config]
	view    atomic.Pointer[view] // copy-on-write list of segments
	closed  atomic.Bool
	failed  atomic.Pointer[error] // sticky write or fsync failure
	changed notifier
	syncs   atomic.Int64 // completed background syncs, for tests
	// dirDirty is set by a roll: the new segment's directory entry is not
	// known to be durable until the directory is fsynced.
	dirDirty atomic.Bool

	// mu serializes everything that writes: Append, rolls, ApplyRetention,
	// Reset, SetConfig, Checkpoint's capture, Segments and Close. Readers and
	// Sync never take it.
	mu          sync.Mutex
	syncer      *syncer  // guarded by mu
	checkpoints int      // checkpoints in progress, guarded by mu; retention waits
	resets      uint64   // Reset calls, guarded by mu; a checkpoint checks it
	flusher     *flusher // set by Open, stopped by Close

	// floor is the advanced log start offset (start.go); the log starts at
	// max(first segment's base, floor). Written under mu.
	floor atomic.Int64
	// startMu orders writes of start.offset; savedFloor, guarded by it, is
	// the value the file holds.
	startMu    sync.Mutex
	savedFloor int64

	// compactHook, set by tests only, can stop a compaction at a named
	// step (compact.go).
	compactHook func(step string) error
	compactions atomic.Uint64 // passes that swapped segments in
}

// view is an immutable snapshot of the segments, oldest first; the last one
// is the active segment. Writers replace the whole view; readers load it once
// per operation.
type view struct {
	segs []*segment
}

func (v *view) active() *segment { return v.segs[len(v.segs)-1] }
func (v *view) start() int64     { return v.segs[0].base }

// find returns the index of the segment that holds offset (the last one whose
// base is <= offset). The caller has checked offset >= start.
func (v *view) find(offset int64) int {
	return sort.Search(len(v.segs), func(i int) bool { return v.segs[i].base > offset }) - 1
}

// Open opens the log in dir, creating the directory and an empty log if
// needed, and recovers it from a crash: see doc.go.
func Open(dir string, cfg Config) (*Log, error) {
	cfg = cfg.normalized()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	segs, err := recoverSegments(dir, &cfg)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	floor, err := readStartFile(dir)
	if err != nil {
		for _, s := range segs {
			s.release()
		}
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l := &Log{dir: dir, savedFloor: floor}
	l.floor.Store(min(floor, segs[len(segs)-1].nextOffset()))
	l.cfg.Store(&cfg)
	l.view.Store(&view{segs: segs})
	l.flusher = startFlusher(dir, l.fail)
	if cfg.Sync == SyncInterval {
		l.syncer = startSyncer(cfg.SyncInterval, l.backgroundSync)
	}
	return l, nil
}

// Dir is the directory the log lives in.
func (l *Log) Dir() string { return l.dir }

// Append verifies batch (one whole v2 batch: length within MaxBatchBytes,
// magic, CRC), stamps its base offset with NextOffset in place (the caller's
// slice is modified), writes it and advances NextOffset by the batch's
// lastOffsetDelta+1. index is the caller's position of this batch (its Raft
// log index; 0 for callers without one); it must not be lower than LastIndex,
// and it is stored with the batch so that after a crash LastIndex names the
// newest batch that survived.
//
// The batch is visible to readers when Append returns. It survives a process
// crash from then on, and a machine crash once synced (Sync, or the sync
// policy).
func (l *Log) Append(batch []byte, index uint64) (baseOffset int64, err error) {
	cfg := l.cfg.Load()
	if len(batch) > cfg.MaxBatchBytes {
		return 0, &BatchTooLargeError{Size: len(batch), Max: cfg.MaxBatchBytes}
	}
	h, crc, err := verifyBatch(batch)
	if err != nil {
		return 0, err
	}
	if crc != nil {
		defer crc.wait() // it reads batch: not past our return
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if err := l.failure(); err != nil {
		return 0, err
	}
	v := l.view.Load()
	s := v.active()
	if last := s.lastIndex.Load(); index < last {
		return 0, fmt.Errorf("%w: %d < %d", ErrIndexDecreased, index, last)
	}
	next := s.nextOffset()
	if next > math.MaxInt64-int64(h.LastOffsetDelta)-1 {
		return 0, ErrOffsetOverflow
	}
	now := cfg.Now()
	if shouldRoll(s, len(batch), next+int64(h.LastOffsetDelta), now, cfg) {
		if s, err = l.roll(v); err != nil {
			l.fail(err)
			return 0, err
		}
	}

	record.SetBaseOffset(batch, next)
	h.BaseOffset = next
	e := journalEntry{index: index, appendTime: now.UnixMilli()}
	if err := s.writeData(batch); err != nil {
		return 0, err
	}
	if crc != nil {
		if err := crc.wait(); err != nil {
			return 0, err
		}
	}
	if err := s.writeJournal(batch, e); err != nil {
		return 0, err
	}
	if cfg.Sync == SyncEveryAppend {
		// Everything Sync does, not just this segment: after a roll, the
		// batch is only safe once the new segment's directory entry and the
		// previous segment are durable too (recovery ends the log at the
		// first damaged segment).
		if err := l.syncView(l.view.Load()); err != nil {
			return 0, err
		}
	}
	s.commit(h, e, int64(cfg.IndexIntervalBytes))
	l.changed.notify()
	return next, nil
}

// shouldRoll decides whether a batch ending at lastOffset must go to a new
// segment. An empty segment never rolls, so a batch larger than SegmentBytes
// gets a segment of its own.
func shouldRoll(s *segment, batchLen int, lastOffset int64, now time.Time, cfg *Config) bool {
	if s.batches == 0 {
		return false
	}
	switch {
	case s.size()+int64(batchLen) > cfg.SegmentBytes:
		return true
	case cfg.SegmentMaxAge > 0 && now.Sub(time.UnixMilli(s.firstAppend)) >= cfg.SegmentMaxAge:
		return true
	case lastOffset-s.base > math.MaxInt32:
		// Index entries hold offsets relative to the base in 32 bits.
		return true
	}
	return false
}

// roll freezes the active segment and starts a new one after it, without
// any fsync on the append path. The old segment is made durable by the
// flusher in the background; the new segment's journal header and directory
// entry become durable with the next Sync (or the flusher's directory fsync,
// whichever comes first), before any batch written to it is reported
// durable. Fsyncing the directory right here would cost a third of the
// append throughput: on ext4 it waits for a journal commit that is busy
// with the flusher's writeback of the old segment.
//
// A crash before that loses only unsynced data: recovery finds the new
// segment either empty without a valid journal (removed) or with data but no
// valid journal header (the data is dropped and LastIndex is taken from the
// previous segment, which is either durable or verified by the scan).
func (l *Log) roll(v *view) (*segment, error) {
	old := v.active()
	old.freeze()
	s, err := createSegment(l.dir, old.nextOffset(), old.lastIndex.Load(), false)
	if err != nil {
		return nil, err
	}
	l.dirDirty.Store(true)
	segs := make([]*segment, len(v.segs)+1)
	copy(segs, v.segs)
	segs[len(v.segs)] = s
	l.view.Store(&view{segs: segs})
	old.acquire() // the flusher's reference; cannot fail, the view holds one
	l.flusher.add(old)
	return s, nil
}

// fail records the first write or fsync failure; later writes get ErrFailed.
func (l *Log) fail(err error) {
	l.failed.CompareAndSwap(nil, &err)
}

func (l *Log) failure() error {
	if p := l.failed.Load(); p != nil {
		return fmt.Errorf("%w: %w", ErrFailed, *p)
	}
	return nil
}

// LastIndex is the index passed to Append with the newest batch in the log,
// or the index given to Reset if no batch was appended since; 0 for a new
// log. It survives reopening, retention and rolls.
func (l *Log) LastIndex() uint64 { return l.view.Load().active().lastIndex.Load() }

// NextOffset is the offset the next appended batch gets: the log's end (its
// high watermark; everything below it is readable).
func (l *Log) NextOffset() int64 { return l.view.Load().active().nextOffset() }

// LogStartOffset is the lowest offset still in the log.
func (l *Log) LogStartOffset() int64 { return l.startOf(l.view.Load()) }

// Size is the number of data bytes across all segments.
func (l *Log) Size() int64 {
	var n int64
	for _, s := range l.view.Load().segs {
		n += s.size()
	}
	return n
}

// Changed returns a channel that is closed by the next successful Append (or
// by Reset or Close). A long-polling reader takes it, re-checks NextOffset,
// and waits on it only if there is still nothing new.
func (l *Log) Changed() <-chan struct{} { return l.changed.wait() }

// Sync makes every batch appended before the call, and its index, durable:
// it fsyncs the active segment and flushes any sealed segment the background
// flusher has not reached yet (normally none). It does not block appends or
// reads.
func (l *Log) Sync() error {
	if err := l.failure(); err != nil {
		return err
	}
	if l.closed.Load() {
		return ErrClosed
	}
	return l.syncView(l.view.Load())
}

// syncView makes the segments of v durable. Only a suffix of the segments
// (the unflushed sealed ones and the active one) can be non-durable.
func (l *Log) syncView(v *view) error {
	if l.dirDirty.Swap(false) {
		if err := syncDir(l.dir); err != nil {
			l.dirDirty.Store(true)
			l.fail(err)
			return err
		}
	}
	for i := len(v.segs) - 1; i >= 0; i-- {
		s := v.segs[i]
		if s.durable.Load() {
			break
		}
		if !s.acquire() {
			continue // deleted or closed meanwhile: nothing to keep
		}
		var err error
		if s.sealed.Load() {
			var did bool
			if did, err = s.flush(); err == nil && did {
				err = syncDir(l.dir)
			}
		} else {
			err = s.sync()
		}
		s.release()
		if err != nil {
			l.fail(err)
			return err
		}
	}
	if err := l.persistStart(); err != nil {
		l.fail(err)
		return err
	}
	return nil
}

func (l *Log) backgroundSync() {
	if l.Sync() == nil {
		l.syncs.Add(1)
	}
}

// SetConfig changes the configuration of an open log. New segment sizes and
// ages apply from the next append, retention from the next ApplyRetention,
// and a new sync policy at once.
func (l *Log) SetConfig(cfg Config) error {
	cfg = cfg.normalized()
	if err := cfg.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return ErrClosed
	}
	old := l.cfg.Load()
	l.cfg.Store(&cfg)
	var stop *syncer
	if old.Sync != cfg.Sync || old.SyncInterval != cfg.SyncInterval {
		stop, l.syncer = l.syncer, nil
		if cfg.Sync == SyncInterval {
			l.syncer = startSyncer(cfg.SyncInterval, l.backgroundSync)
		}
	}
	l.mu.Unlock()
	if stop != nil {
		stop.stop()
	}
	return nil
}

// Config returns the current configuration.
func (l *Log) Config() Config { return *l.cfg.Load() }

// Segments describes the segments, oldest first; the last is active. See
// SegmentInfo for what may be linked or copied from them. Nil once closed.
func (l *Log) Segments() []SegmentInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil
	}
	v := l.view.Load()
	infos := make([]SegmentInfo, len(v.segs))
	for i, s := range v.segs {
		infos[i] = s.info()
	}
	return infos
}

// Close syncs and closes the log and stops its background goroutines (the
// flusher finishes first, so every sealed segment is durable). Reads in
// flight finish; later calls get ErrClosed, except NextOffset, LogStartOffset,
// LastIndex and Size, which keep returning the final values.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed.Store(true)
	stop := l.syncer
	l.syncer = nil
	l.mu.Unlock()
	if stop != nil {
		stop.stop()
	}

	// The flusher finishes what is queued: sealed segments are durable
	// after a clean Close, so the next Open scans only the last one.
	l.flusher.stop()

	l.mu.Lock()
	defer l.mu.Unlock()
	v := l.view.Load()
	err := l.failure()
	if err == nil {
		err = l.syncView(v)
	}
	for _, s := range v.segs {
		s.release()
	}
	l.changed.close()
	return err
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	// The data is going away: neither a failed final sync nor an earlier
	// Close matters.
	_ = l.Close()
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log: %w", err)
	}
	return nil
}
