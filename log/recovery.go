package log

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// errUnfinishedSegment marks a last segment whose creation was cut short by a
// crash during a roll: an empty data file without a valid journal.
var errUnfinishedSegment = errors.New("unfinished segment")

// recovery brings a log directory to a consistent state at Open and opens
// its segments. See doc.go for the algorithm.
type recovery struct {
	dir string
	cfg *Config
	// dirChanged records that directory entries were created or removed, so
	// the directory is fsynced once at the end, and only then: a node opening
	// thousands of partitions at start-up should not pay thousands of
	// directory fsyncs for logs that were closed cleanly.
	dirChanged bool
}

// recoverSegments returns the log's segments, oldest first; the last one is
// active.
func recoverSegments(dir string, cfg *Config) ([]*segment, error) {
	r := &recovery{dir: dir, cfg: cfg}
	segs, err := r.run()
	if err != nil {
		for _, s := range segs {
			s.release()
		}
		return nil, err
	}
	return segs, nil
}

func (r *recovery) run() (segs []*segment, err error) {
	if err := finishPendingReset(r.dir); err != nil {
		return nil, err
	}
	bases, err := r.listSegments()
	if err != nil {
		return nil, err
	}

	// The active segment: the newest one that is not an unfinished roll.
	var active *segment
	for active == nil && len(bases) > 0 {
		base := bases[len(bases)-1]
		bases = bases[:len(bases)-1]
		var prev []int64
		if len(bases) > 0 {
			prev = bases[len(bases)-1:]
		}
		active, err = r.openActive(base, prev)
		switch {
		case errors.Is(err, errUnfinishedSegment):
			if err := r.removeSegment(base); err != nil {
				return nil, err
			}
			if len(bases) == 0 {
				// The log's only segment was being created: start over at its
				// base. Its prevIndex is lost with it; only a crash while
				// creating the first segment of a log can get here.
				if active, err = r.create(base); err != nil {
					return nil, err
				}
			}
		case err != nil:
			return nil, err
		}
	}
	if active == nil {
		if active, err = r.create(0); err != nil {
			return nil, err
		}
	}

	for _, base := range bases {
		s, err := r.openSealed(base)
		if err != nil {
			return append(segs, active), err
		}
		segs = append(segs, s)
	}
	segs = append(segs, active)

	// Offsets must follow on from segment to segment. A gap can only come from
	// a crash while retention deleted old segments (directory operations reach
	// the disk in any order until the directory is fsynced): everything before
	// it was being deleted, so finish the job.
	keep := len(segs) - 1
	for keep > 0 && segs[keep-1].nextOffset() == segs[keep].base {
		keep--
	}
	for i, s := range segs[:keep] {
		if err := s.removeFiles(); err != nil {
			return segs[i:], err
		}
		r.dirChanged = true
		s.release()
	}
	segs = segs[keep:]
	if r.dirChanged {
		if err := syncDir(r.dir); err != nil {
			return segs, err
		}
	}
	return segs, nil
}

func (r *recovery) create(base int64) (*segment, error) {
	r.dirChanged = true
	return createSegment(r.dir, base, 0)
}

func (r *recovery) remove(path string) error {
	removed, err := removeFile(path)
	r.dirChanged = r.dirChanged || removed
	return err
}

func (r *recovery) removeSegment(base int64) error {
	for _, suffix := range segmentSuffixes {
		if err := r.remove(segmentPath(r.dir, base, suffix)); err != nil {
			return fmt.Errorf("remove segment %d: %w", base, err)
		}
	}
	return nil
}

// listSegments returns the base offsets of the segments, sorted, after
// deleting leftover temporary files and orphaned journal and index files
// (those whose data file is gone: a crash while deleting or creating a
// segment).
func (r *recovery) listSegments() ([]int64, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", r.dir, err)
	}
	hasData := make(map[int64]bool)
	type file struct {
		name string
		base int64
	}
	var others []file
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) && e.Type().IsRegular() {
			if err := r.remove(filepath.Join(r.dir, name)); err != nil {
				return nil, fmt.Errorf("remove leftover %s: %w", name, err)
			}
			continue
		}
		base, suffix, ok := parseSegmentFile(name)
		if !ok {
			continue
		}
		if suffix == dataSuffix {
			hasData[base] = true
		} else {
			others = append(others, file{name, base})
		}
	}
	for _, f := range others {
		if !hasData[f.base] {
			if err := r.remove(filepath.Join(r.dir, f.name)); err != nil {
				return nil, fmt.Errorf("remove orphan %s: %w", f.name, err)
			}
		}
	}
	bases := make([]int64, 0, len(hasData))
	for b := range hasData {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	return bases, nil
}

// openActive recovers the last segment: every batch is read and verified from
// the start, and the data and journal are cut after the last batch that is
// intact, follows on in offsets and has an intact journal entry bound to it.
// prev holds the base of the previous segment, if any.
func (r *recovery) openActive(base int64, prev []int64) (*segment, error) {
	dataPath := segmentPath(r.dir, base, dataSuffix)
	journalPath := segmentPath(r.dir, base, journalSuffix)
	// This segment is about to be written; if its files were hard-linked in
	// from another log or a snapshot, write to a private copy instead.
	for _, p := range []string{dataPath, journalPath} {
		if err := replaceWithPrivateCopy(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open segment %d: %w", base, err)
		}
	}
	data, err := os.OpenFile(dataPath, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	fileSize := fi.Size()
	j, err := openJournal(journalPath, base)
	if err != nil {
		if !errors.Is(err, errJournalInvalid) && !errors.Is(err, fs.ErrNotExist) {
			data.Close()
			return nil, fmt.Errorf("open journal of segment %d: %w", base, err)
		}
		if fileSize == 0 {
			data.Close()
			return nil, errUnfinishedSegment
		}
		// Data without a journal header: never written that way by a roll, so
		// the journal was damaged. No batch has an entry, so none survives;
		// take LastIndex from the previous segment's journal.
		var prevIndex uint64
		if len(prev) == 1 {
			prevIndex, _ = lastJournalIndex(segmentPath(r.dir, prev[0], journalSuffix), prev[0])
		}
		r.dirChanged = true
		if j, err = createJournal(journalPath, base, prevIndex); err != nil {
			data.Close()
			return nil, fmt.Errorf("recreate journal of segment %d: %w", base, err)
		}
	}
	s := newSegment(r.dir, base, data)
	s.journal = j
	s.lastIndex.Store(j.prevIndex)
	s.indexesReady.Store(true)
	if err := r.recoverBatches(s, fileSize); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (r *recovery) recoverBatches(s *segment, fileSize int64) error {
	sc := newBatchScanner(s.data, s.base, fileSize, r.cfg.MaxBatchBytes)
	jr := newJournalReader(s.journal)
	for {
		batch, h, _, err := sc.scan()
		if err != nil {
			var stop *scanStop
			if errors.Is(err, io.EOF) || errors.As(err, &stop) {
				break
			}
			return fmt.Errorf("recover segment %d: %w", s.base, err)
		}
		e, ok, err := jr.next(batch)
		if err != nil {
			return fmt.Errorf("recover journal of segment %d: %w", s.base, err)
		}
		if !ok || e.index < s.lastIndex.Load() {
			break
		}
		s.commit(h, e, int64(r.cfg.IndexIntervalBytes))
	}

	// Cut what did not survive. The cuts need no fsync of their own: until
	// the next Sync the tail is unsynced anyway, a crash before it makes the
	// next recovery cut again, and the fsyncs of that Sync cover the new size.
	if size := s.size(); fileSize > size {
		if err := s.data.Truncate(size); err != nil {
			return fmt.Errorf("truncate segment %d to %d: %w", s.base, size, err)
		}
	}
	jfi, err := s.journal.f.Stat()
	if err != nil {
		return fmt.Errorf("stat journal of segment %d: %w", s.base, err)
	}
	if jfi.Size() != journalSize(s.batches) {
		if err := s.journal.truncate(s.batches); err != nil {
			return fmt.Errorf("truncate journal of segment %d: %w", s.base, err)
		}
	}
	// The active segment's indexes live in memory (rebuilt just now); index
	// files from an earlier life as a sealed segment are stale.
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := r.remove(segmentPath(s.dir, s.base, suffix)); err != nil {
			return fmt.Errorf("remove stale index of segment %d: %w", s.base, err)
		}
	}
	return nil
}

// openSealed opens a segment that is not the last one. Sealed segments were
// fsynced before their successor was created, so they are trusted: only the
// header of the offset index is read, for the extent and newest timestamp;
// entries are loaded on first use. When the header is missing, damaged or
// disagrees with the data file's size, the segment is scanned now and its
// index files are rewritten.
func (r *recovery) openSealed(base int64) (*segment, error) {
	data, err := os.Open(segmentPath(r.dir, base, dataSuffix))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	s := newSegment(r.dir, base, data)
	s.sealed.Store(true)
	h, err := readIndexHeader(r.dir, offsetIndexKind, base)
	if err == nil && h.sum.size == fi.Size() {
		s.publish(h.sum.size, h.sum.next)
		s.maxTs.Store(h.sum.maxTs)
		return s, nil
	}
	if err != nil && !errors.Is(err, errIndexInvalid) && !errors.Is(err, fs.ErrNotExist) {
		s.release()
		return nil, fmt.Errorf("open index of segment %d: %w", base, err)
	}
	sum, err := s.rebuildIndexes(fi.Size(), r.cfg)
	if err != nil {
		s.release()
		return nil, fmt.Errorf("rebuild indexes of segment %d: %w", base, err)
	}
	// A damaged tail of a sealed segment is not cut (the file may be shared
	// by hard links); it is just not part of the log. If that leaves a gap
	// before the next segment, run drops this one and older ones.
	s.publish(sum.size, sum.next)
	s.maxTs.Store(sum.maxTs)
	s.indexesReady.Store(true)
	if sum.size > 0 {
		r.dirChanged = true
		if err := writeIndexFiles(r.dir, base, sum, s.index.load(), s.times.load()); err != nil {
			s.release()
			return nil, err
		}
	}
	return s, nil
}
