package log

import (
	"errors"
	"io"
)

// indexes returns the segment's offset and time index entries, loading them
// from disk on first use for sealed segments found at Open (Open reads only
// their headers, so opening a log costs time proportional to its last
// segment, not to its length). Callers load the indexes before the extent:
// entries are added after a batch is published, so every entry seen points
// at committed data.
func (s *segment) indexes(cfg *Config) ([]indexEntry, []timeEntry) {
	if !s.indexesReady.Load() {
		s.loadIndexes(cfg)
	}
	return s.index.load(), s.times.load()
}

// loadIndexes reads the index files of a sealed segment, or rebuilds the
// entries from the data when the files are missing, damaged or describe a
// different extent. It cannot fail: without entries a lookup just scans from
// the start of the segment.
func (s *segment) loadIndexes(cfg *Config) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.indexesReady.Load() {
		return
	}
	size, next := s.extent()
	want := segmentSummary{next: next, size: size, maxTs: s.maxTs.Load()}
	if es, ts, ok := s.readIndexFiles(want); ok {
		s.index.set(es)
		s.times.set(ts)
		s.indexesReady.Store(true)
		return
	}
	got, _ := s.rebuildIndexes(size, cfg)
	if got == want {
		// Best effort: a failed write only means rebuilding again next time.
		_ = writeIndexFiles(s.dir, s.base, got, s.index.load(), s.times.load())
	}
	s.indexesReady.Store(true)
}

func (s *segment) readIndexFiles(want segmentSummary) ([]indexEntry, []timeEntry, bool) {
	ih, ib, err := readIndexFile(s.dir, offsetIndexKind, s.base)
	if err != nil || ih.sum != want {
		return nil, nil, false
	}
	th, tb, err := readIndexFile(s.dir, timeIndexKind, s.base)
	if err != nil || th.sum != want {
		return nil, nil, false
	}
	es, ok1 := decodeIndexEntries(ib)
	ts, ok2 := decodeTimeEntries(tb)
	if !ok1 || !ok2 || (len(es) > 0 && (es[0].pos != 0 || int64(es[len(es)-1].pos) >= want.size)) {
		return nil, nil, false
	}
	return es, ts, true
}

// rebuildIndexes scans the first limit bytes of the data, verifying every
// batch, and replaces the in-memory indexes with entries for the intact
// prefix, whose summary it returns. Only a sealed segment is rebuilt this
// way; the data file is never modified.
func (s *segment) rebuildIndexes(limit int64, cfg *Config) (segmentSummary, error) {
	s.index.set(nil)
	s.times.set(nil)
	ix := newIndexer(s.base, &s.index, &s.times)
	sum := segmentSummary{next: s.base}
	sc := newBatchScanner(s.data, s.base, limit, cfg.MaxBatchBytes)
	var err error
	for {
		_, h, pos, serr := sc.scan()
		if serr != nil {
			var stop *scanStop
			if !errors.Is(serr, io.EOF) && !errors.As(serr, &stop) {
				err = serr
			}
			break
		}
		ix.track(pos, h, int64(cfg.IndexIntervalBytes))
		sum.size, sum.next = pos+int64(h.Size()), h.NextOffset()
	}
	ix.finish()
	sum.maxTs = ix.maxTs
	return sum, err
}
