package log

import (
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"

	"github.com/skiff-mq/skiff/record"
)

// segment is one data file of the log with its journal and indexes. Its batch
// bytes below the committed size never change: the writer only appends past
// it, and recovery only cuts what lies beyond the last intact batch. That is
// what makes lock-free reads, hard-link snapshots and index-free reads of
// sealed files safe.
type segment struct {
	dir  string
	base int64
	data *os.File

	// committed packs the published extent of the data, (next offset - base)<<32
	// | size, into one word so a reader never sees the size of one batch with
	// the next offset of another. Both halves fit in 32 bits: the log rolls
	// before a relative offset passes MaxInt32, and SegmentBytes and
	// MaxBatchBytes are bounded so positions stay below 4 GiB.
	committed atomic.Uint64
	// refs counts the log's own reference plus one per in-flight reader or
	// sync; the files are closed when it drops to zero, so retention can
	// unlink a segment that a reader is still reading.
	refs      atomic.Int64
	sealed    atomic.Bool   // frozen by a roll: no more writes
	durable   atomic.Bool   // sealed, fsynced and marked by its index files
	maxTs     atomic.Int64  // newest MaxTimestamp; final and valid once sealed
	lastIndex atomic.Uint64 // index of the newest batch, or the journal's prevIndex
	dirty     atomic.Bool   // written since the last fsync

	index offsetIndex
	times timeIndex
	// indexesReady is false only for sealed segments found on disk whose index
	// files have not been read yet; loadMu serializes that lazy load.
	indexesReady atomic.Bool
	loadMu       sync.Mutex

	// syncMu orders fsyncs (which run without the log's writer lock, so
	// readers and appends never wait for them) against flush and close,
	// which close the journal.
	syncMu sync.Mutex
	// flushMu makes flush run once even when the flusher and Sync race.
	flushMu sync.Mutex
	// filesMu orders the creation of index files by flush against the
	// deletion of the segment by retention or reset, so a deleted segment
	// never gets its index files back.
	filesMu sync.Mutex
	deleted bool // guarded by filesMu

	// Writer state, guarded by Log.mu while the segment is active. journal is
	// read under syncMu by sync too, and set to nil under syncMu by flush
	// (once the segment is frozen, so no longer the writer's) and by close.
	journal     *journal
	batches     int64 // batches in the data (= journal entries)
	firstAppend int64 // Unix ms of the first batch's append; valid when batches > 0
	ix          indexer
}

func newSegment(dir string, base int64, data *os.File) *segment {
	s := &segment{dir: dir, base: base, data: data}
	s.refs.Store(1)
	s.maxTs.Store(math.MinInt64)
	s.ix = newIndexer(base, &s.index, &s.times)
	return s
}

// createSegment creates the files of a new, empty active segment, the
// journal first, so that a data file without a journal can only be the
// remains of a creation cut short (recovery removes it while it is empty).
// With durable the journal header is fsynced; the caller syncs the directory.
func createSegment(dir string, base int64, prevIndex uint64, durable bool) (*segment, error) {
	j, err := createJournal(segmentPath(dir, base, journalSuffix), base, prevIndex, durable)
	if err != nil {
		return nil, fmt.Errorf("create journal of segment %d: %w", base, err)
	}
	data, err := os.OpenFile(segmentPath(dir, base, dataSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		j.close()
		return nil, fmt.Errorf("create segment %d: %w", base, err)
	}
	// Index files left by an earlier segment of the same base (dropped by a
	// reset or an unfinished roll) must not be mistaken for ours.
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := removeIfExists(segmentPath(dir, base, suffix)); err != nil {
			j.close()
			data.Close()
			return nil, fmt.Errorf("create segment %d: %w", base, err)
		}
	}
	s := newSegment(dir, base, data)
	s.journal = j
	s.lastIndex.Store(prevIndex)
	s.indexesReady.Store(true)
	return s, nil
}

// extent returns the committed size and next offset.
func (s *segment) extent() (size, next int64) {
	c := s.committed.Load()
	return int64(uint32(c)), s.base + int64(c>>32)
}

func (s *segment) size() int64       { size, _ := s.extent(); return size }
func (s *segment) nextOffset() int64 { _, next := s.extent(); return next }

func (s *segment) publish(size, next int64) {
	s.committed.Store(uint64(next-s.base)<<32 | uint64(size))
}

// writeData stores batch (already stamped with its base offset) past the
// committed end with one pwrite, without publishing it; writeJournal then
// stores its journal entry. Until commit, the bytes are not part of the log:
// after a failure the next write overwrites the same positions, and recovery
// cuts a batch without its entry.
func (s *segment) writeData(batch []byte) error {
	if s.journal == nil {
		return fmt.Errorf("segment %d is sealed", s.base)
	}
	size := s.size()
	if _, err := s.data.WriteAt(batch, size); err != nil {
		return fmt.Errorf("write segment %d at position %d: %w", s.base, size, err)
	}
	s.dirty.Store(true)
	return nil
}

func (s *segment) writeJournal(batch []byte, e journalEntry) error {
	if err := s.journal.write(s.batches, e, batch); err != nil {
		return err
	}
	// After the last write: a Sync that cleared the flag in between must not
	// leave this entry unsynced.
	s.dirty.Store(true)
	return nil
}

// commit publishes the batch that writeData and writeJournal stored (or that
// recovery found intact): readers see it from here on. Index entries are
// added after the publication, so any entry a reader loads points at
// committed bytes.
func (s *segment) commit(h record.BatchHeader, e journalEntry, interval int64) {
	pos := s.size()
	if s.batches == 0 {
		s.firstAppend = e.appendTime
	}
	s.batches++
	s.lastIndex.Store(e.index)
	s.publish(pos+int64(h.Size()), h.NextOffset())
	s.ix.track(pos, h, interval)
}

// sync makes everything written so far durable. Concurrent callers serialize
// on syncMu, so one that finds nothing dirty knows an earlier fsync finished.
func (s *segment) sync() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if !s.dirty.Swap(false) {
		return nil
	}
	if err := s.fsyncLocked(); err != nil {
		s.dirty.Store(true)
		return err
	}
	return nil
}

// fsyncLocked fsyncs the data and the journal. The two fsyncs run in
// parallel: on a journaling file system they usually share one journal
// commit, so SyncEveryAppend pays about one fsync per append instead of two.
func (s *segment) fsyncLocked() error {
	j := s.journal
	if j == nil {
		if err := s.data.Sync(); err != nil {
			return fmt.Errorf("fsync segment %d: %w", s.base, err)
		}
		return nil
	}
	jerr := make(chan error, 1)
	go func() { jerr <- j.sync() }()
	derr := s.data.Sync()
	if err := <-jerr; err != nil {
		return fmt.Errorf("fsync journal of segment %d: %w", s.base, err)
	}
	if derr != nil {
		return fmt.Errorf("fsync segment %d: %w", s.base, derr)
	}
	return nil
}

// freeze ends writing to the active segment at a roll: its extent and
// indexes are final from here on. flush makes it durable later, off the
// append path.
func (s *segment) freeze() {
	s.ix.finish()
	s.maxTs.Store(s.ix.maxTs)
	s.sealed.Store(true)
}

// flush makes a frozen segment durable and marks it so: data and journal are
// fsynced, the journal is closed, and then the index files are written.
// Recovery trusts a sealed segment without scanning it only when its index
// files exist and match its size, so this order is what makes them a
// durability marker. It always fsyncs, because a segment recovered after a
// process crash may hold data that only the page cache has. Idempotent; the
// caller syncs the directory when did is true.
func (s *segment) flush() (did bool, err error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if s.durable.Load() {
		return false, nil
	}
	s.filesMu.Lock()
	deleted := s.deleted
	s.filesMu.Unlock()
	if deleted {
		return false, nil // retention or reset got there first
	}
	s.syncMu.Lock()
	err = s.fsyncLocked()
	if err == nil && s.journal != nil {
		if err = s.journal.close(); err == nil {
			s.journal = nil
		}
	}
	if err == nil {
		s.dirty.Store(false)
	}
	s.syncMu.Unlock()
	if err != nil {
		return false, fmt.Errorf("flush segment %d: %w", s.base, err)
	}
	s.filesMu.Lock()
	if !s.deleted {
		size, next := s.extent()
		sum := segmentSummary{next: next, size: size, maxTs: s.maxTs.Load()}
		err = writeIndexFiles(s.dir, s.base, sum, s.index.load(), s.times.load())
	}
	s.filesMu.Unlock()
	if err != nil {
		return false, err
	}
	s.durable.Store(true)
	return true, nil
}

// acquire takes a reference for a reader; false means the segment was
// already released by the log (deleted, reset or closed): reload the view.
func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference; the last one closes the files.
func (s *segment) release() {
	if s.refs.Add(-1) == 0 {
		s.closeFiles()
	}
}

func (s *segment) closeFiles() {
	s.syncMu.Lock()
	j := s.journal
	s.journal = nil
	s.syncMu.Unlock()
	if j != nil {
		j.close()
	}
	s.data.Close()
}

// removeFiles unlinks the segment's files, data first (see segmentSuffixes).
// Open descriptors stay usable until release closes them.
func (s *segment) removeFiles() error {
	s.filesMu.Lock()
	defer s.filesMu.Unlock()
	s.deleted = true
	var first error
	for _, suffix := range segmentSuffixes {
		if err := removeIfExists(segmentPath(s.dir, s.base, suffix)); err != nil && first == nil {
			first = fmt.Errorf("remove segment %d: %w", s.base, err)
		}
	}
	return first
}

// markDeleted tells a pending flush that someone else removes the files.
func (s *segment) markDeleted() {
	s.filesMu.Lock()
	s.deleted = true
	s.filesMu.Unlock()
}

// SegmentInfo describes one segment, for snapshots and tooling.
//
// The bytes of DataPath below Size never change while the log is open (the
// log only appends past them), and a sealed segment's files never change at
// all (index files are replaced by rename, never rewritten in place). So a
// hard link to a sealed segment's files, or a copy of the first Size bytes of
// the active segment's data and the first JournalSize bytes of its journal,
// is a consistent piece of a snapshot, provided the data was synced (Sync)
// before the snapshot is relied on: an unsynced tail may be cut by recovery
// after a power loss. Log.Checkpoint does exactly this.
type SegmentInfo struct {
	BaseOffset   int64
	NextOffset   int64 // offset after the segment's last batch
	Size         int64 // bytes of batch data
	MaxTimestamp int64 // largest batch MaxTimestamp; math.MinInt64 if empty
	Sealed       bool
	DataPath     string
	JournalPath  string
	JournalSize  int64 // bytes of the journal matching the first Size bytes of data
	// IndexPath and TimeIndexPath are derived files, written once a sealed
	// segment is durable; they may be missing, in which case Open rebuilds
	// them (by scanning the segment). Empty for the active segment, whose
	// indexes live in memory until it is sealed.
	IndexPath     string
	TimeIndexPath string
}

// info describes s; the caller holds Log.mu.
func (s *segment) info() SegmentInfo {
	size, next := s.extent()
	si := SegmentInfo{
		BaseOffset:   s.base,
		NextOffset:   next,
		Size:         size,
		MaxTimestamp: s.maxTs.Load(),
		Sealed:       s.sealed.Load(),
		DataPath:     segmentPath(s.dir, s.base, dataSuffix),
		JournalPath:  segmentPath(s.dir, s.base, journalSuffix),
	}
	if si.Sealed {
		si.IndexPath = segmentPath(s.dir, s.base, indexSuffix)
		si.TimeIndexPath = segmentPath(s.dir, s.base, timeIndexSuffix)
		if fi, err := os.Stat(si.JournalPath); err == nil {
			si.JournalSize = fi.Size()
		}
	} else {
		si.MaxTimestamp = s.ix.maxTs
		si.JournalSize = journalSize(s.batches)
	}
	return si
}
