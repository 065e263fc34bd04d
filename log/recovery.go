package log

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// errUnfinishedSegment marks a last segment whose creation was cut short by a
// crash during a roll: an empty data file without a valid journal.
var errUnfinishedSegment = errors.New("unfinished segment")

// recoverSegments brings dir to a consistent state and opens its segments,
// oldest first; the last one is active. See doc.go for the algorithm.
func recoverSegments(dir string, cfg *Config) (segs []*segment, err error) {
	if err := finishPendingReset(dir); err != nil {
		return nil, err
	}
	bases, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.release()
			}
			segs = nil
		}
	}()

	// The active segment: the newest one that is not an unfinished roll.
	var active *segment
	for active == nil && len(bases) > 0 {
		base := bases[len(bases)-1]
		bases = bases[:len(bases)-1]
		var prev []int64
		if len(bases) > 0 {
			prev = bases[len(bases)-1:]
		}
		active, err = openActiveSegment(dir, base, prev, cfg)
		switch {
		case errors.Is(err, errUnfinishedSegment):
			if err := removeSegmentFiles(dir, base); err != nil {
				return nil, err
			}
			if len(bases) == 0 {
				// The log's only segment was being created: start over at its
				// base. Its prevIndex is lost with it; only a crash while
				// creating the first segment of a log can get here.
				if active, err = createSegment(dir, base, 0); err != nil {
					return nil, err
				}
			}
		case err != nil:
			return nil, err
		}
	}
	if active == nil {
		if active, err = createSegment(dir, 0, 0); err != nil {
			return nil, err
		}
	}

	for _, base := range bases {
		s, err := openSealedSegment(dir, base, cfg)
		if err != nil {
			segs = append(segs, active)
			return segs, err
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
	for _, s := range segs[:keep] {
		if err := s.removeFiles(); err != nil {
			return segs, err
		}
		s.release()
	}
	segs = segs[keep:]
	if err := syncDir(dir); err != nil {
		return segs, err
	}
	return segs, nil
}

// listSegments returns the base offsets of the segments in dir, sorted, after
// deleting leftover temporary files and orphaned journal and index files
// (those whose data file is gone: a crash while deleting or creating a
// segment).
func listSegments(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
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
			if err := removeIfExists(dirJoin(dir, name)); err != nil {
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
			if err := removeIfExists(dirJoin(dir, f.name)); err != nil {
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

func dirJoin(dir, name string) string { return dir + string(os.PathSeparator) + name }

func removeSegmentFiles(dir string, base int64) error {
	for _, suffix := range segmentSuffixes {
		if err := removeIfExists(segmentPath(dir, base, suffix)); err != nil {
			return fmt.Errorf("remove segment %d: %w", base, err)
		}
	}
	return nil
}

// openActiveSegment recovers the last segment: every batch is read and
// verified from the start, and the data and journal are cut after the last
// batch that is intact, follows on in offsets and has an intact journal entry
// bound to it. prev holds the base of the previous segment, if any.
func openActiveSegment(dir string, base int64, prev []int64, cfg *Config) (*segment, error) {
	dataPath := segmentPath(dir, base, dataSuffix)
	journalPath := segmentPath(dir, base, journalSuffix)
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
			prevIndex, _ = lastJournalIndex(segmentPath(dir, prev[0], journalSuffix), prev[0])
		}
		if j, err = createJournal(journalPath, base, prevIndex); err != nil {
			data.Close()
			return nil, fmt.Errorf("recreate journal of segment %d: %w", base, err)
		}
	}
	s := newSegment(dir, base, data)
	s.journal = j
	s.lastIndex.Store(j.prevIndex)
	s.indexesReady.Store(true)
	if err := s.recoverBatches(fileSize, cfg); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *segment) recoverBatches(fileSize int64, cfg *Config) error {
	sc := newBatchScanner(s.data, s.base, fileSize, cfg.MaxBatchBytes)
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
		s.commit(h, e, int64(cfg.IndexIntervalBytes))
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
		if err := removeIfExists(segmentPath(s.dir, s.base, suffix)); err != nil {
			return fmt.Errorf("remove stale index of segment %d: %w", s.base, err)
		}
	}
	return nil
}

// openSealedSegment opens a segment that is not the last one. Sealed segments
// were fsynced before their successor was created, so they are trusted: only
// the header of the offset index is read, for the extent and newest timestamp;
// entries are loaded on first use. When the header is missing, damaged or
// disagrees with the data file's size, the segment is scanned now and its
// index files are rewritten.
func openSealedSegment(dir string, base int64, cfg *Config) (*segment, error) {
	data, err := os.Open(segmentPath(dir, base, dataSuffix))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	s := newSegment(dir, base, data)
	s.sealed.Store(true)
	h, err := readIndexHeader(dir, offsetIndexKind, base)
	if err == nil && h.sum.size == fi.Size() {
		s.publish(h.sum.size, h.sum.next)
		s.maxTs.Store(h.sum.maxTs)
		return s, nil
	}
	if err != nil && !errors.Is(err, errIndexInvalid) && !errors.Is(err, fs.ErrNotExist) {
		s.release()
		return nil, fmt.Errorf("open index of segment %d: %w", base, err)
	}
	sum, err := s.rebuildIndexes(fi.Size(), cfg)
	if err != nil {
		s.release()
		return nil, fmt.Errorf("rebuild indexes of segment %d: %w", base, err)
	}
	// A damaged tail of a sealed segment is not cut (the file may be shared
	// by hard links); it is just not part of the log. If that leaves a gap
	// before the next segment, recoverSegments drops this one and older ones.
	s.publish(sum.size, sum.next)
	s.maxTs.Store(sum.maxTs)
	s.indexesReady.Store(true)
	if sum.size > 0 {
		if err := writeIndexFiles(dir, base, sum, s.index.load(), s.times.load()); err != nil {
			s.release()
			return nil, err
		}
	}
	return s, nil
}
