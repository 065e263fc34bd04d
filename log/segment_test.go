package log

import (
	"bytes"
	"os"
	"testing"

	"github.com/skiff-mq/skiff/record"
)

// segmentFixture is a segment at base 100 holding batches of 1..4 records
// with timestamps that go up and down.
type segmentFixture struct {
	s       *segment
	cfg     Config
	batches [][]byte // as stored
	bases   []int64
}

func newSegmentFixture(t *testing.T, n int) *segmentFixture {
	t.Helper()
	cfg := smallConfig(nil)
	s, err := createSegment(t.TempDir(), 100, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.release)
	f := &segmentFixture{s: s, cfg: cfg}
	next := int64(100)
	for i := 0; i < n; i++ {
		records := 1 + i%4
		ts := int64(1000 + 10*i)
		if i%5 == 3 {
			ts -= 100 // out of order
		}
		b := stamped(testBatch(records, 20+(i*13)%90, ts-5, ts, byte(i)), next)
		h, _ := record.Verify(b)
		e := journalEntry{index: uint64(i + 1), appendTime: 1}
		if err := s.writeData(b); err != nil {
			t.Fatal(err)
		}
		if err := s.writeJournal(b, e); err != nil {
			t.Fatal(err)
		}
		s.commit(h, e, int64(cfg.IndexIntervalBytes))
		f.batches = append(f.batches, b)
		f.bases = append(f.bases, next)
		next = h.NextOffset()
	}
	return f
}

// containing returns the index of the batch holding offset.
func (f *segmentFixture) containing(offset int64) int {
	for i := len(f.bases) - 1; i >= 0; i-- {
		if f.bases[i] <= offset {
			return i
		}
	}
	return -1
}

func TestSegmentReadReturnsWholeBatchesFromTheContainingOne(t *testing.T) {
	f := newSegmentFixture(t, 40)
	_, next := f.s.extent()
	for offset := f.s.base; offset < next; offset++ {
		for _, budget := range []int64{0, 50, 200, 333, 1000, 1 << 20} {
			got, atEnd, err := f.s.read(offset, budget, true, &f.cfg)
			if err != nil {
				t.Fatalf("read(%d, %d): %v", offset, budget, err)
			}
			first := f.containing(offset)
			want := f.batches[first]
			for i := first + 1; i < len(f.batches) && int64(len(want)+len(f.batches[i])) <= budget; i++ {
				want = append(bytes.Clone(want), f.batches[i]...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read(%d, %d) = %d bytes, want %d bytes from batch %d", offset, budget, len(got), len(want), first)
			}
			if wantEnd := len(got) > 0 && bytes.HasSuffix(got, f.batches[len(f.batches)-1]); atEnd != wantEnd {
				t.Fatalf("read(%d, %d): atEnd = %v, want %v", offset, budget, atEnd, wantEnd)
			}
		}
	}
	if got, atEnd, err := f.s.read(next, 100, true, &f.cfg); got != nil || !atEnd || err != nil {
		t.Fatalf("read at next offset = %v, %v, %v", got, atEnd, err)
	}
	if got, _, _ := f.s.read(f.s.base, 10, false, &f.cfg); len(got) != 0 {
		t.Fatalf("read without mustOne returned %d bytes over budget", len(got))
	}
}

func TestSegmentFindTimestampFindsFirstBatchReachingIt(t *testing.T) {
	f := newSegmentFixture(t, 50)
	for ts := int64(800); ts < 1600; ts += 7 {
		got, found, err := f.s.findTimestamp(ts, &f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		want, wantFound := f.s.nextOffset(), false
		for i, b := range f.batches {
			if h, _ := record.ParseHeader(b); h.MaxTimestamp >= ts {
				want, wantFound = f.bases[i], true
				break
			}
		}
		if got != want || found != wantFound {
			t.Fatalf("findTimestamp(%d) = %d, %v; want %d, %v", ts, got, found, want, wantFound)
		}
	}
}

func TestSealedSegmentReopensFromItsIndexes(t *testing.T) {
	f := newSegmentFixture(t, 30)
	f.s.freeze()
	if _, err := f.s.flush(); err != nil {
		t.Fatal(err)
	}
	dir, base := f.s.dir, f.s.base
	wantSize, wantNext := f.s.extent()
	wantIdx, wantTimes := f.s.index.load(), f.s.times.load()

	reopen := func(t *testing.T) *segment {
		t.Helper()
		s, err := (&recovery{dir: dir, cfg: &f.cfg}).openTrusted(base)
		if err != nil || s == nil {
			t.Fatalf("openTrusted = %v, %v", s, err)
		}
		t.Cleanup(s.release)
		if size, next := s.extent(); size != wantSize || next != wantNext {
			t.Fatalf("extent = %d, %d; want %d, %d", size, next, wantSize, wantNext)
		}
		if got := s.maxTs.Load(); got != f.s.maxTs.Load() {
			t.Fatalf("maxTs = %d, want %d", got, f.s.maxTs.Load())
		}
		es, ts := s.indexes(&f.cfg)
		if len(es) != len(wantIdx) || len(ts) != len(wantTimes) {
			t.Fatalf("indexes: %d/%d entries, want %d/%d", len(es), len(ts), len(wantIdx), len(wantTimes))
		}
		for i := range es {
			if es[i] != wantIdx[i] {
				t.Fatalf("index entry %d = %v, want %v", i, es[i], wantIdx[i])
			}
		}
		got, _, err := s.read(base, 1<<20, true, &f.cfg)
		if err != nil || !bytes.Equal(got, bytes.Join(f.batches, nil)) {
			t.Fatalf("read after reopen: %d bytes, %v", len(got), err)
		}
		return s
	}

	t.Run("from index headers, entries loaded lazily", func(t *testing.T) {
		s, err := (&recovery{dir: dir, cfg: &f.cfg}).openTrusted(base)
		if err != nil || s == nil {
			t.Fatalf("openTrusted = %v, %v", s, err)
		}
		defer s.release()
		if s.indexesReady.Load() {
			t.Fatal("entries were loaded at open; want lazily")
		}
		reopen(t)
	})
	t.Run("damaged index entries are rebuilt on first use", func(t *testing.T) {
		path := segmentPath(dir, base, indexSuffix)
		b, _ := os.ReadFile(path)
		b[len(b)-1] ^= 0xff
		os.WriteFile(path, b, 0o644)
		reopen(t)
	})
	t.Run("without a matching index the segment is not trusted", func(t *testing.T) {
		r := &recovery{dir: dir, cfg: &f.cfg}
		writeIndexFiles(dir, base, segmentSummary{next: wantNext - 1, size: wantSize - 10}, nil, nil)
		if s, err := r.openTrusted(base); s != nil || err != nil {
			t.Fatalf("openTrusted with a stale index = %v, %v; want nil, nil", s, err)
		}
		os.Remove(segmentPath(dir, base, indexSuffix))
		if s, err := r.openTrusted(base); s != nil || err != nil {
			t.Fatalf("openTrusted without an index = %v, %v; want nil, nil", s, err)
		}
	})
}
