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
	if err := finishPendingCompaction(r.dir); err != nil {
		return nil, err
	}
	bases, err := r.listSegments()
	if err != nil {
		return nil, err
	}
	// A crash during a roll leaves an empty data file without a valid
	// journal behind the last segment: the roll did not happen.
	for len(bases) > 0 {
		last := bases[len(bases)-1]
		unfinished, err := r.unfinished(last)
		if err != nil {
			return nil, err
		}
		if !unfinished {
			break
		}
		if err := r.removeSegment(last); err != nil {
			return nil, err
		}
		bases = bases[:len(bases)-1]
		if len(bases) == 0 {
			// The log's only segment was being created: start over at its
			// base. Its prevIndex is lost with it; only a crash while
			// creating the first segment of a log can get here.
			s, err := r.create(last)
			if err != nil {
				return nil, err
			}
			return r.finish([]*segment{s})
		}
	}
	if len(bases) == 0 {
		s, err := r.create(0)
		if err != nil {
			return nil, err
		}
		return r.finish([]*segment{s})
	}

	// Sealed segments that were made durable carry index files that match
	// them: trust those without reading their data. They form a prefix.
	i := 0
	for ; i < len(bases)-1; i++ {
		s, err := r.openTrusted(bases[i])
		if err != nil {
			return segs, err
		}
		if s == nil {
			break
		}
		segs = append(segs, s)
	}
	// Scan the rest in order, verifying every batch and journal entry, up to
	// the first damage: the log ends there, and later segments (unsynced
	// data written after the damaged part) are deleted.
	for ; i < len(bases); i++ {
		var prev *segment
		if len(segs) > 0 {
			prev = segs[len(segs)-1]
		}
		s, complete, err := r.scan(bases[i], prev)
		if err != nil {
			return segs, err
		}
		last := i == len(bases)-1
		if complete && !last && s.nextOffset() == bases[i+1] {
			// Intact and followed on: make it durable and mark it.
			s.freeze()
			if _, err := s.flush(); err != nil {
				s.release()
				return segs, err
			}
			r.dirChanged = true
			segs = append(segs, s)
			continue
		}
		for _, b := range bases[i+1:] {
			if err := r.removeSegment(b); err != nil {
				s.release()
				return segs, err
			}
		}
		if err := r.activate(s, prev); err != nil {
			s.release()
			return segs, err
		}
		segs = append(segs, s)
		break
	}
	return r.finish(segs)
}

// finish drops segments before a gap and syncs the directory if needed.
func (r *recovery) finish(segs []*segment) ([]*segment, error) {
	// Offsets must follow on from segment to segment. A gap among trusted
	// segments can only come from a crash while retention deleted old
	// segments (directory operations reach the disk in any order until the
	// directory is fsynced): everything before it was being deleted, so
	// finish the job.
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
	return createSegment(r.dir, base, 0, true)
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

// unfinished reports an empty data file whose journal is missing or has no
// valid header: a segment whose creation a crash cut short.
func (r *recovery) unfinished(base int64) (bool, error) {
	fi, err := os.Stat(segmentPath(r.dir, base, dataSuffix))
	if err != nil {
		return false, fmt.Errorf("open segment %d: %w", base, err)
	}
	if fi.Size() > 0 {
		return false, nil
	}
	j, err := openJournal(segmentPath(r.dir, base, journalSuffix), base)
	if err == nil {
		j.close()
		return false, nil
	}
	if errors.Is(err, errJournalInvalid) || errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return false, fmt.Errorf("open journal of segment %d: %w", base, err)
}

// openTrusted opens a durable sealed segment from the header of its offset
// index: extent and newest timestamp, without reading the data; index
// entries are loaded on first use. It returns nil when the segment has no
// valid marker (index header matching the data file's size) and must be
// scanned instead.
func (r *recovery) openTrusted(base int64) (*segment, error) {
	h, err := readIndexHeader(r.dir, offsetIndexKind, base)
	if err != nil {
		if errors.Is(err, errIndexInvalid) || errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open index of segment %d: %w", base, err)
	}
	data, err := os.Open(segmentPath(r.dir, base, dataSuffix))
	if err != nil {
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, fmt.Errorf("open segment %d: %w", base, err)
	}
	if h.sum.size != fi.Size() {
		data.Close()
		return nil, nil
	}
	s := newSegment(r.dir, base, data)
	s.publish(h.sum.size, h.sum.next)
	s.maxTs.Store(h.sum.maxTs)
	s.sealed.Store(true)
	s.durable.Store(true)
	return s, nil
}

// scan opens a segment that recovery does not trust and reads it from the
// start, verifying every batch and checking that each has an intact journal
// entry bound to it. The segment's extent and indexes cover the batches that
// passed; complete reports that nothing else is in its files.
func (r *recovery) scan(base int64, prev *segment) (s *segment, complete bool, err error) {
	data, err := os.Open(segmentPath(r.dir, base, dataSuffix))
	if err != nil {
		return nil, false, fmt.Errorf("open segment %d: %w", base, err)
	}
	fi, err := data.Stat()
	if err != nil {
		data.Close()
		return nil, false, fmt.Errorf("open segment %d: %w", base, err)
	}
	s = newSegment(r.dir, base, data)
	s.indexesReady.Store(true)
	j, err := openJournal(segmentPath(r.dir, base, journalSuffix), base)
	if err != nil {
		if !errors.Is(err, errJournalInvalid) && !errors.Is(err, fs.ErrNotExist) {
			s.release()
			return nil, false, fmt.Errorf("open journal of segment %d: %w", base, err)
		}
		// Data without a journal header: a roll never leaves that, so the
		// journal was damaged. No batch has an entry, so none survives.
		s.lastIndex.Store(r.lastIndexOf(prev))
		return s, false, nil
	}
	s.journal = j
	s.lastIndex.Store(j.prevIndex)

	sc := newBatchScanner(s.data, s.base, fi.Size(), r.cfg.MaxBatchBytes)
	jr := newJournalReader(j)
	for {
		batch, h, _, err := sc.scan()
		if errors.Is(err, io.EOF) {
			break
		}
		var stop *scanStop
		if errors.As(err, &stop) {
			return s, false, nil
		}
		if err != nil {
			s.release()
			return nil, false, fmt.Errorf("recover segment %d: %w", s.base, err)
		}
		e, ok, err := jr.next(batch)
		if err != nil {
			s.release()
			return nil, false, fmt.Errorf("recover journal of segment %d: %w", s.base, err)
		}
		if !ok || e.index < s.lastIndex.Load() {
			return s, false, nil
		}
		s.commit(h, e, int64(r.cfg.IndexIntervalBytes))
	}
	jfi, err := j.f.Stat()
	if err != nil {
		s.release()
		return nil, false, fmt.Errorf("recover journal of segment %d: %w", s.base, err)
	}
	// Entries without batches belong to appends whose data was lost.
	return s, jfi.Size() == journalSize(s.batches), nil
}

// lastIndexOf is the index of the newest batch of prev, the segment before a
// damaged one, or 0 if there is none.
func (r *recovery) lastIndexOf(prev *segment) uint64 {
	switch {
	case prev == nil:
		return 0
	case !prev.durable.Load():
		return prev.lastIndex.Load() // scanned just now
	}
	// A durable segment's journal was fsynced before it was marked.
	idx, err := lastJournalIndex(segmentPath(r.dir, prev.base, journalSuffix), prev.base)
	if err != nil {
		return 0
	}
	return idx
}

// activate turns a scanned segment into the active one: its files become
// private (not shared by hard links, since they are about to be written),
// writable, and cut after the last batch that survived. The cuts need no
// fsync of their own: until the next Sync the tail is unsynced anyway, a
// crash before it makes the next recovery cut again, and that Sync's fsyncs
// cover the new sizes.
func (r *recovery) activate(s *segment, prev *segment) error {
	dataPath := segmentPath(r.dir, s.base, dataSuffix)
	journalPath := segmentPath(r.dir, s.base, journalSuffix)
	s.data.Close()
	if s.journal != nil {
		s.journal.close()
		s.journal = nil
	}
	for _, p := range []string{dataPath, journalPath} {
		if err := replaceWithPrivateCopy(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("open segment %d: %w", s.base, err)
		}
	}
	data, err := os.OpenFile(dataPath, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open segment %d: %w", s.base, err)
	}
	s.data = data
	j, err := openJournal(journalPath, s.base)
	if err != nil {
		r.dirChanged = true
		if j, err = createJournal(journalPath, s.base, r.lastIndexOf(prev), true); err != nil {
			return fmt.Errorf("recreate journal of segment %d: %w", s.base, err)
		}
	}
	s.journal = j
	if err := data.Truncate(s.size()); err != nil {
		return fmt.Errorf("truncate segment %d to %d: %w", s.base, s.size(), err)
	}
	if err := j.truncate(s.batches); err != nil {
		return fmt.Errorf("truncate journal of segment %d: %w", s.base, err)
	}
	// The active segment's indexes live in memory (rebuilt by the scan);
	// index files from an earlier life as a sealed segment are stale.
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := r.remove(segmentPath(r.dir, s.base, suffix)); err != nil {
			return fmt.Errorf("remove stale index of segment %d: %w", s.base, err)
		}
	}
	return nil
}
