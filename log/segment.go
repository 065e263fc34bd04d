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
	sealed    atomic.Bool
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
	// readers and appends never wait for them) against sealing and closing,
	// which replace journal.
	syncMu sync.Mutex

	// Writer state, guarded by Log.mu. journal is also guarded by syncMu when
	// written; it is nil once the segment is sealed or was found sealed.
	journal     *journal
	batches     int64 // batches in the data (= journal entries); active segments only
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

// createSegment creates the files of a new, empty active segment. The journal
// goes first and is fsynced, so a data file never exists with a journal that
// lacks its header unless the roll was cut short, which recovery detects by
// the data file being empty. The caller syncs the directory.
func createSegment(dir string, base int64, prevIndex uint64) (*segment, error) {
	j, err := createJournal(segmentPath(dir, base, journalSuffix), base, prevIndex)
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

// write stores batch (already stamped with its base offset) and its journal
// entry past the committed end without publishing them: one pwrite each.
// After a failure nothing is published and the next write overwrites the
// same positions.
func (s *segment) write(batch []byte, e journalEntry) error {
	if s.journal == nil {
		return fmt.Errorf("segment %d is sealed", s.base)
	}
	size := s.size()
	if _, err := s.data.WriteAt(batch, size); err != nil {
		return fmt.Errorf("write segment %d at position %d: %w", s.base, size, err)
	}
	if err := s.journal.write(s.batches, e, batch); err != nil {
		return err
	}
	s.dirty.Store(true)
	return nil
}

// commit publishes the batch that write stored (or that recovery found
// intact): readers see it from here on. Index entries are added after the
// publication, so any entry a reader loads points at committed bytes.
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
	if err := s.data.Sync(); err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("fsync segment %d: %w", s.base, err)
	}
	if s.journal != nil {
		if err := s.journal.sync(); err != nil {
			s.dirty.Store(true)
			return fmt.Errorf("fsync journal of segment %d: %w", s.base, err)
		}
	}
	return nil
}

// seal makes the active segment immutable: data and journal fsynced (recovery
// trusts sealed segments without scanning them), indexes written, journal
// closed. The caller syncs the directory.
func (s *segment) seal() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if err := s.data.Sync(); err != nil {
		return fmt.Errorf("seal segment %d: fsync: %w", s.base, err)
	}
	if err := s.journal.sync(); err != nil {
		return fmt.Errorf("seal segment %d: fsync journal: %w", s.base, err)
	}
	s.dirty.Store(false)
	s.ix.finish()
	size, next := s.extent()
	sum := segmentSummary{next: next, size: size, maxTs: s.ix.maxTs}
	if err := writeIndexFiles(s.dir, s.base, sum, s.index.load(), s.times.load()); err != nil {
		return fmt.Errorf("seal segment %d: %w", s.base, err)
	}
	if err := s.journal.close(); err != nil {
		return fmt.Errorf("seal segment %d: close journal: %w", s.base, err)
	}
	s.journal = nil
	s.maxTs.Store(s.ix.maxTs)
	s.sealed.Store(true)
	return nil
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
	var first error
	for _, suffix := range segmentSuffixes {
		if err := removeIfExists(segmentPath(s.dir, s.base, suffix)); err != nil && first == nil {
			first = fmt.Errorf("remove segment %d: %w", s.base, err)
		}
	}
	return first
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
	// IndexPath and TimeIndexPath are derived files; they may be missing, in
	// which case Open rebuilds them. Empty for the active segment, whose
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
