package log

import (
	"math"
	"testing"

	"github.com/skiff-mq/skiff/record"
)

func TestFloorIndexFindsLastEntryAtOrBelow(t *testing.T) {
	es := []indexEntry{{0, 0}, {10, 500}, {25, 1200}}
	tests := []struct {
		rel  uint32
		want indexEntry
	}{
		{0, indexEntry{0, 0}},
		{9, indexEntry{0, 0}},
		{10, indexEntry{10, 500}},
		{24, indexEntry{10, 500}},
		{25, indexEntry{25, 1200}},
		{math.MaxUint32, indexEntry{25, 1200}},
	}
	for _, tt := range tests {
		if got := floorIndex(es, tt.rel); got != tt.want {
			t.Errorf("floorIndex(%d) = %v, want %v", tt.rel, got, tt.want)
		}
	}
	if got := floorIndex(nil, 7); got != (indexEntry{}) {
		t.Errorf("floorIndex on empty index = %v, want position 0", got)
	}
}

func TestIndexEntriesRoundTripAndRejectDisorder(t *testing.T) {
	es := []indexEntry{{0, 0}, {3, 4096}, {9, 8200}}
	got, ok := decodeIndexEntries(encodeIndexEntries(es))
	if !ok || len(got) != len(es) {
		t.Fatalf("decode = %v, %v", got, ok)
	}
	for i := range es {
		if got[i] != es[i] {
			t.Fatalf("entry %d = %v, want %v", i, got[i], es[i])
		}
	}
	for name, bad := range map[string][]indexEntry{
		"rel goes back": {{0, 0}, {5, 100}, {4, 200}},
		"pos goes back": {{0, 0}, {5, 100}, {6, 50}},
		"duplicate rel": {{0, 0}, {0, 100}},
	} {
		if _, ok := decodeIndexEntries(encodeIndexEntries(bad)); ok {
			t.Errorf("%s: decode accepted %v", name, bad)
		}
	}
	if _, ok := decodeIndexEntries(make([]byte, 7)); ok {
		t.Error("decode accepted a partial entry")
	}
}

func TestLastBeforeFindsWhereTimestampIsReached(t *testing.T) {
	es := []timeEntry{{100, 0}, {200, 5}, {300, 9}}
	tests := []struct {
		ts   int64
		want int
	}{
		{50, -1}, {100, -1}, {101, 0}, {200, 0}, {250, 1}, {300, 1}, {301, 2}, {math.MaxInt64, 2},
	}
	for _, tt := range tests {
		if got := lastBefore(es, tt.ts); got != tt.want {
			t.Errorf("lastBefore(%d) = %d, want %d", tt.ts, got, tt.want)
		}
	}
}

func TestTimeEntriesRoundTripAndRejectDisorder(t *testing.T) {
	es := []timeEntry{{-5, 0}, {1000, 3}, {math.MaxInt64, 3}}
	got, ok := decodeTimeEntries(encodeTimeEntries(es))
	if !ok || len(got) != 3 || got[0] != es[0] || got[2] != es[2] {
		t.Fatalf("decode = %v, %v", got, ok)
	}
	if _, ok := decodeTimeEntries(encodeTimeEntries([]timeEntry{{5, 0}, {5, 1}})); ok {
		t.Error("decode accepted a timestamp that does not increase")
	}
}

func TestIndexerPlacesEntriesEveryIntervalAndTracksMaxTimestamp(t *testing.T) {
	var idx offsetIndex
	var times timeIndex
	ix := newIndexer(100, &idx, &times)
	// (position, base offset, batch size, max timestamp)
	batches := []struct {
		pos, base, size, maxTs int64
	}{
		{0, 100, 90, 10},   // first batch: always indexed
		{90, 101, 90, 30},  // 90 < 200 since last entry
		{180, 102, 90, 20}, // 180 < 200
		{270, 103, 90, 25}, // 270 >= 200: indexed; max so far 30 (at 101)
		{360, 104, 90, 5},
		{450, 105, 90, 40}, // 180 since 270: not indexed
		{540, 106, 90, 1},  // 270 since 270: indexed; max 40 at 105
	}
	for _, b := range batches {
		ix.track(b.pos, record.BatchHeader{BaseOffset: b.base, MaxTimestamp: b.maxTs,
			BatchLength: int32(b.size - record.LogOverhead)}, 200)
	}
	wantIdx := []indexEntry{{0, 0}, {3, 270}, {6, 540}}
	gotIdx := idx.load()
	if len(gotIdx) != len(wantIdx) {
		t.Fatalf("index = %v, want %v", gotIdx, wantIdx)
	}
	for i := range wantIdx {
		if gotIdx[i] != wantIdx[i] {
			t.Fatalf("index = %v, want %v", gotIdx, wantIdx)
		}
	}
	wantTimes := []timeEntry{{10, 0}, {30, 1}, {40, 5}}
	gotTimes := times.load()
	if len(gotTimes) != len(wantTimes) {
		t.Fatalf("time index = %v, want %v", gotTimes, wantTimes)
	}
	for i := range wantTimes {
		if gotTimes[i] != wantTimes[i] {
			t.Fatalf("time index = %v, want %v", gotTimes, wantTimes)
		}
	}
	ix.track(630, record.BatchHeader{BaseOffset: 107, MaxTimestamp: 99, BatchLength: 78}, 200)
	ix.finish()
	if last := times.load()[len(times.load())-1]; last != (timeEntry{99, 7}) {
		t.Fatalf("after finish the last time entry = %v, want the segment maximum {99 7}", last)
	}
}

func TestIndexFileRoundTripAndDamage(t *testing.T) {
	dir := t.TempDir()
	sum := segmentSummary{next: 150, size: 4000, maxTs: 77}
	es := []indexEntry{{0, 0}, {20, 2000}}
	ts := []timeEntry{{50, 0}, {77, 30}}
	if err := writeIndexFiles(dir, 100, sum, es, ts); err != nil {
		t.Fatal(err)
	}
	h, err := readIndexHeader(dir, offsetIndexKind, 100)
	if err != nil || h.sum != sum || h.count != 2 {
		t.Fatalf("readIndexHeader = %+v, %v", h, err)
	}
	if _, b, err := readIndexFile(dir, timeIndexKind, 100); err != nil || len(b) != 2*timeEntrySize {
		t.Fatalf("readIndexFile(time) = %d bytes, %v", len(b), err)
	}
	if _, err := readIndexHeader(dir, offsetIndexKind, 101); err == nil {
		t.Error("header accepted for the wrong base offset")
	}
	if _, err := readIndexHeader(dir, timeIndexKind, 100); err != nil {
		t.Errorf("time index header: %v", err)
	}

	good := encodeIndexFile(offsetIndexKind, 100, sum, encodeIndexEntries(es))
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x40
		h, err := decodeIndexFileHeader(bad, offsetIndexKind, 100)
		if i < indexFileHeaderSize {
			if err == nil {
				t.Fatalf("flipped header byte %d accepted: %+v", i, h)
			}
			continue
		}
		if err != nil {
			t.Fatalf("flipped entry byte %d rejected by the header check: %v", i, err)
		}
	}
}
