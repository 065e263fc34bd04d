package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Compaction (Kafka's log cleaner, one pass): every sealed segment that is
// old enough is rewritten keeping, of each key, only its latest record in
// the log, and dropping tombstones (null values) older than
// DeleteRetention. Keyless records are kept. Offsets never change: a batch
// that loses some records keeps its base offset and lastOffsetDelta, and a
// run of batches that lose all of them becomes one empty batch spanning
// their offsets, so batches stay contiguous and every reader, index and
// recovery rule of the log holds unchanged. The active segment is never
// compacted.
//
// The result depends only on the batches and the options (no clock is read
// and no map order leaks out), so two logs holding the same batches in the
// same segments, compacted with the same options, hold the same bytes
// afterwards.
//
// # Swapping cleaned segments in, crash-safely
//
// A cleaned segment is a new pair of files under the old names, so a hard
// link to the old files (a snapshot, a checkpoint) keeps the old content:
//
//  1. write <base>.log.cleaned and <base>.journal.cleaned for every segment
//     of the pass, fsync them and the directory;
//  2. write compact.pending, listing the bases (the commit point);
//  3. per base: remove the index files, rename the journal, then the data
//     over the old names;
//  4. fsync the directory, remove compact.pending, fsync again;
//  5. open the new segments (scan, then index files written as for any
//     sealed segment) and swap them into the log's view.
//
// Open finishes steps 3-4 when it finds compact.pending, and otherwise
// deletes *.cleaned files: a crash leaves either the old segments or the
// cleaned ones, never a mix of a segment's data and journal.

// CompactOptions decide what a compaction keeps. Nothing in a compaction
// reads a clock: the caller passes Now.
type CompactOptions struct {
	// Now is the time the rules are evaluated at, in Unix milliseconds.
	Now int64
	// DeleteRetention: a tombstone that is the latest record of its key is
	// removed once its timestamp is older than Now - DeleteRetention
	// (Kafka's delete.retention.ms). Zero removes them at once.
	DeleteRetention time.Duration
	// MinLag: a segment whose newest batch is younger than Now - MinLag is
	// not compacted yet (Kafka's min.compaction.lag.ms).
	MinLag time.Duration
	// UpTo, when positive, limits the pass to segments whose records all
	// lie below it.
	UpTo int64
	// Throttle, when set, is called with the bytes of each segment read
	// or written, and may sleep: the caller's I/O budget.
	Throttle func(bytes int64)
}

// CompactStats describes one compaction pass.
type CompactStats struct {
	Segments       int   // segments rewritten
	BytesBefore    int64 // their size before
	BytesAfter     int64 // and after
	RecordsRemoved int64
}

// DirtyStats describes how much of a log a compaction could shrink.
type DirtyStats struct {
	// CleanableBytes is the size of the sealed segments (all but the
	// active one).
	CleanableBytes int64
	// ObsoleteRecords counts the records of sealed segments that are not
	// the latest of their key; Records counts all records of the log.
	ObsoleteRecords, Records int64
}

// Ratio is the share of the log's records that compaction would remove:
// the dirty ratio Kafka compares with min.cleanable.dirty.ratio.
func (d DirtyStats) Ratio() float64 {
	if d.Records == 0 {
		return 0
	}
	return float64(d.ObsoleteRecords) / float64(d.Records)
}

const (
	compactMarkerName = "compact.pending"
	cleanedSuffix     = ".cleaned"
)

// errCompactAborted is returned by a test hook to stop a pass at a step.
var errCompactAborted = errors.New("log: compaction stopped by test hook")

// Compact runs one compaction pass. While a Checkpoint is linking files it
// does nothing (like retention); a caller that links segment files by other
// means (the partition layer's snapshots) must keep Compact from running
// meanwhile, as it does for ApplyRetention.
func (l *Log) Compact(opts CompactOptions) (CompactStats, error) {
	// Only durable sealed segments are rewritten (their files are final);
	// make the ones the background flusher has not reached durable now, so
	// what a pass cleans does not depend on the flusher's timing.
	if err := l.Sync(); err != nil {
		return CompactStats{}, err
	}
	v, release, err := l.pinView()
	if err != nil || v == nil {
		return CompactStats{}, err
	}
	defer release()
	if opts.Throttle != nil {
		for _, s := range v.segs {
			opts.Throttle(s.size()) // the read that builds the key map
		}
	}
	latest, _, err := l.latestOffsets(v)
	if err != nil {
		return CompactStats{}, err
	}
	var cleaned []*cleanedSegment
	defer func() {
		for _, c := range cleaned {
			c.discard(l.dir)
		}
	}()
	var st CompactStats
	cfg := l.cfg.Load()
	for _, s := range v.segs[:len(v.segs)-1] {
		if !s.durable.Load() || (opts.UpTo > 0 && s.nextOffset() > opts.UpTo) ||
			s.maxTs.Load() > opts.Now-opts.MinLag.Milliseconds() {
			continue
		}
		if opts.Throttle != nil {
			opts.Throttle(s.size())
		}
		c, err := cleanSegment(l.dir, s, cfg, latest, opts)
		if err != nil {
			return CompactStats{}, err
		}
		if c != nil && opts.Throttle != nil {
			opts.Throttle(c.size)
		}
		if c == nil {
			continue // nothing to remove
		}
		cleaned = append(cleaned, c)
		st.Segments++
		st.BytesBefore += s.size()
		st.BytesAfter += c.size
		st.RecordsRemoved += c.removed
	}
	if len(cleaned) == 0 {
		return CompactStats{}, nil
	}
	if err := syncDir(l.dir); err != nil {
		return CompactStats{}, err
	}
	if err := l.hook("cleaned-written"); err != nil {
		return CompactStats{}, err
	}
	swapped, err := l.swapCleaned(v, cleaned)
	if swapped {
		cleaned = nil // the files are the log's now
	}
	if err != nil {
		return CompactStats{}, err
	}
	return st, nil
}

// Dirty measures how much compaction would remove now.
func (l *Log) Dirty() (DirtyStats, error) {
	v, release, err := l.pinView()
	if err != nil || v == nil {
		return DirtyStats{}, err
	}
	defer release()
	latest, records, err := l.latestOffsets(v)
	if err != nil {
		return DirtyStats{}, err
	}
	d := DirtyStats{Records: records}
	cfg := l.cfg.Load()
	for _, s := range v.segs[:len(v.segs)-1] {
		d.CleanableBytes += s.size()
		err := eachRecord(s, cfg, func(_ []byte, r record.Record) {
			if r.Key != nil && latest[string(r.Key)] != r.Offset {
				d.ObsoleteRecords++
			}
		})
		if err != nil {
			return DirtyStats{}, err
		}
	}
	return d, nil
}

// hook lets tests stop a pass at a named step, leaving the files as a
// crash there would.
func (l *Log) hook(step string) error {
	if l.compactHook != nil {
		return l.compactHook(step)
	}
	return nil
}

// pinView takes a reference on every segment of the current view; v is nil
// (and nothing pinned) while a Checkpoint is linking files.
func (l *Log) pinView() (v *view, release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return nil, nil, ErrClosed
	}
	if l.checkpoints > 0 {
		return nil, nil, nil
	}
	v = l.view.Load()
	for _, s := range v.segs {
		s.acquire() // cannot fail: the view holds a reference and we hold mu
	}
	return v, func() {
		for _, s := range v.segs {
			s.release()
		}
	}, nil
}

// latestOffsets maps every key in the segments of v to the offset of its
// newest record, and counts the records.
func (l *Log) latestOffsets(v *view) (map[string]int64, int64, error) {
	latest := make(map[string]int64)
	var n int64
	cfg := l.cfg.Load()
	for _, s := range v.segs {
		err := eachRecord(s, cfg, func(_ []byte, r record.Record) {
			n++
			if r.Key != nil {
				latest[string(r.Key)] = r.Offset
			}
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return latest, n, nil
}

// eachRecord calls fn with every record of s's committed batches, in
// order, with the batch that holds it.
func eachRecord(s *segment, cfg *Config, fn func(batch []byte, r record.Record)) error {
	size, _ := s.extent()
	sc := newBatchScanner(s.data, s.base, size, cfg.MaxBatchBytes)
	for {
		batch, _, _, err := sc.scan()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("compact: read segment %d: %w", s.base, err)
		}
		err = record.Records(batch, func(r record.Record) error { fn(batch, r); return nil })
		if err != nil {
			return fmt.Errorf("compact: segment %d: %w", s.base, err)
		}
	}
}

// cleanedSegment is a segment rewritten into .cleaned files, not yet
// swapped in.
type cleanedSegment struct {
	old     *segment
	size    int64
	removed int64
}

func (c *cleanedSegment) discard(dir string) {
	for _, suffix := range []string{dataSuffix, journalSuffix} {
		_ = removeIfExists(segmentPath(dir, c.old.base, suffix+cleanedSuffix))
	}
}

// cleanSegment writes the compacted copy of s; nil when it would remove
// nothing.
func cleanSegment(dir string, s *segment, cfg *Config, latest map[string]int64, opts CompactOptions) (*cleanedSegment, error) {
	jpath := segmentPath(dir, s.base, journalSuffix)
	j, err := openJournal(jpath, s.base)
	if err != nil {
		return nil, fmt.Errorf("compact: journal of segment %d: %w", s.base, err)
	}
	defer j.close()
	jr := newJournalReader(j)
	tombstoneBefore := opts.Now - opts.DeleteRetention.Milliseconds()
	keep := func(r record.Record) bool {
		if r.Key == nil {
			return true
		}
		if latest[string(r.Key)] != r.Offset {
			return false
		}
		return r.Value != nil || r.Timestamp >= tombstoneBefore
	}

	var data, journal bytes.Buffer
	journal.Write(encodeJournalHeader(s.base, j.prevIndex))
	var entry [journalEntrySize]byte
	emit := func(batch []byte, e journalEntry) {
		encodeJournalEntry(entry[:], e, batch)
		data.Write(batch)
		journal.Write(entry[:])
	}
	// A run of batches that lost every record, pending as one empty batch.
	var (
		runBase, runNext, runBaseTs, runMaxTs int64
		runEntry                              journalEntry
		inRun                                 bool
	)
	flushRun := func() {
		if inRun {
			emit(record.EmptyBatch(runBase, int32(runNext-runBase-1), runBaseTs, runMaxTs), runEntry)
			inRun = false
		}
	}
	size, _ := s.extent()
	sc := newBatchScanner(s.data, s.base, size, cfg.MaxBatchBytes)
	var removed int64
	for {
		batch, h, _, err := sc.scan()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("compact: read segment %d: %w", s.base, err)
		}
		e, ok, err := jr.next(batch)
		if err != nil || !ok {
			return nil, fmt.Errorf("compact: journal of segment %d does not match batch at %d (%v)", s.base, h.BaseOffset, err)
		}
		var out []byte
		if h.RecordCount > 0 { // an empty batch (from an earlier pass) joins a run
			if out, err = record.Rewrite(batch, keep); err != nil {
				return nil, fmt.Errorf("compact: segment %d batch at %d: %w", s.base, h.BaseOffset, err)
			}
		}
		if out == nil {
			removed += int64(h.RecordCount)
			if !inRun {
				runBase, runBaseTs, runMaxTs, inRun = h.BaseOffset, h.BaseTimestamp, h.MaxTimestamp, true
			}
			runNext, runEntry = h.NextOffset(), e
			runMaxTs = max(runMaxTs, h.MaxTimestamp)
			continue
		}
		if len(out) != len(batch) {
			oh, _ := record.ParseHeader(out)
			removed += int64(h.RecordCount - oh.RecordCount)
		}
		flushRun()
		emit(out, e)
	}
	flushRun()
	if removed == 0 {
		return nil, nil // already clean
	}
	c := &cleanedSegment{old: s, size: int64(data.Len()), removed: removed}
	for _, f := range []struct {
		suffix string
		b      []byte
	}{{dataSuffix, data.Bytes()}, {journalSuffix, journal.Bytes()}} {
		if err := writeFileSynced(segmentPath(dir, s.base, f.suffix+cleanedSuffix), f.b); err != nil {
			c.discard(dir)
			return nil, fmt.Errorf("compact: segment %d: %w", s.base, err)
		}
	}
	return c, nil
}

// writeFileSynced creates path with data and fsyncs it; the caller syncs
// the directory.
func writeFileSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// swapCleaned replaces the segments of cleaned in the directory and in the
// log's view (steps 2-5 of the swap). swapped reports that the files were
// committed (the marker written): from then on an error leaves the log
// failed, and the next Open finishes the swap.
func (l *Log) swapCleaned(v *view, cleaned []*cleanedSegment) (swapped bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false, ErrClosed
	}
	cur := l.view.Load()
	if l.checkpoints > 0 || !sameSegments(cur, cleaned) {
		return false, nil // a checkpoint, retention or reset got in: next pass
	}
	bases := make([]string, len(cleaned))
	for i, c := range cleaned {
		bases[i] = strconv.FormatInt(c.old.base, 10)
	}
	if err := writeFileAtomic(filepath.Join(l.dir, compactMarkerName), []byte(strings.Join(bases, "\n"))); err != nil {
		return false, fmt.Errorf("compact: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return false, fmt.Errorf("compact: %w", err)
	}
	fail := func(err error) (bool, error) {
		err = fmt.Errorf("compact: swap: %w", err)
		l.fail(err)
		return true, err
	}
	if err := l.hook("marker-written"); err != nil {
		return fail(err)
	}
	for _, c := range cleaned {
		c.old.markDeleted() // a late flush must not write index files for it
		if err := swapSegmentFiles(l.dir, c.old.base, l.hook); err != nil {
			return fail(err)
		}
	}
	if err := finishCompactMarker(l.dir); err != nil {
		return fail(err)
	}
	if err := l.hook("marker-removed"); err != nil {
		return fail(err)
	}
	segs := append([]*segment(nil), cur.segs...)
	r := &recovery{dir: l.dir, cfg: l.cfg.Load()}
	for _, c := range cleaned {
		i := cur.find(c.old.base)
		var prev *segment
		if i > 0 {
			prev = segs[i-1]
		}
		ns, complete, err := r.scan(c.old.base, prev)
		if err != nil {
			return fail(err)
		}
		if !complete || ns.nextOffset() != c.old.nextOffset() {
			ns.release()
			return fail(corruptf("cleaned segment %d ends at %d, want %d", c.old.base, ns.nextOffset(), c.old.nextOffset()))
		}
		ns.freeze()
		if _, err := ns.flush(); err != nil {
			ns.release()
			return fail(err)
		}
		segs[i] = ns
	}
	if err := syncDir(l.dir); err != nil {
		return fail(err)
	}
	l.view.Store(&view{segs: segs})
	l.compactions.Add(1)
	for _, c := range cleaned {
		c.old.release() // its files are open; their names hold the new data
	}
	return true, nil
}

// Compactions counts the passes that swapped segments in since Open. A
// caller that captured file names and sizes (a snapshot) checks it did not
// change before linking them: a swap puts new content under the old names.
func (l *Log) Compactions() uint64 { return l.compactions.Load() }

func sameSegments(v *view, cleaned []*cleanedSegment) bool {
	for _, c := range cleaned {
		i := v.find(c.old.base)
		if i < 0 || v.segs[i] != c.old {
			return false
		}
	}
	return true
}

// swapSegmentFiles puts a segment's cleaned files in place of its own
// (step 3). Idempotent: Open runs it again after a crash.
func swapSegmentFiles(dir string, base int64, hook func(string) error) error {
	for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
		if err := removeIfExists(segmentPath(dir, base, suffix)); err != nil {
			return err
		}
	}
	for _, suffix := range []string{journalSuffix, dataSuffix} {
		from := segmentPath(dir, base, suffix+cleanedSuffix)
		if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
			continue // renamed before a crash
		}
		if err := os.Rename(from, segmentPath(dir, base, suffix)); err != nil {
			return err
		}
		if hook != nil {
			if err := hook(fmt.Sprintf("renamed-%d%s", base, suffix)); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishCompactMarker makes the renames durable and removes the marker
// (step 4).
func finishCompactMarker(dir string) error {
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, compactMarkerName)); err != nil {
		return err
	}
	return syncDir(dir)
}

// finishPendingCompaction runs at Open: it completes a swap whose marker
// was written and deletes the files of a pass that never got that far.
func finishPendingCompaction(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, compactMarkerName))
	switch {
	case err == nil:
		for _, line := range strings.Split(string(b), "\n") {
			base, perr := strconv.ParseInt(line, 10, 64)
			if perr != nil || base < 0 {
				return fmt.Errorf("%w: %s holds %q", ErrCorrupt, compactMarkerName, line)
			}
			if err := swapSegmentFiles(dir, base, nil); err != nil {
				return fmt.Errorf("finish compaction of segment %d: %w", base, err)
			}
		}
		if err := finishCompactMarker(dir); err != nil {
			return fmt.Errorf("finish compaction: %w", err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("finish compaction: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), cleanedSuffix) && e.Type().IsRegular() {
			if err := removeIfExists(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}
