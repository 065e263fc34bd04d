package log

import (
	"os"
	"testing"
	"time"
)

// retentionLog fills a log with segments of exactly three 300-byte batches;
// batch i has MaxTimestamp clock start + i minutes.
func retentionLog(t *testing.T, clock *fakeClock, batches int) (*Log, string) {
	t.Helper()
	cfg := smallConfig(clock)
	cfg.SegmentBytes = 900
	dir := t.TempDir()
	l := mustOpen(t, dir, cfg)
	t.Cleanup(func() { l.Close() })
	start := clock.Now().UnixMilli()
	for i := 0; i < batches; i++ {
		ts := start + int64(i)*time.Minute.Milliseconds()
		mustAppend(t, l, testBatch(2, 300-61, ts, ts, byte(i)), uint64(100+i))
	}
	return l, dir
}

func TestRetentionByAgeDeletesOldSegmentsOnly(t *testing.T) {
	clock := newFakeClock()
	l, _ := retentionLog(t, clock, 10) // segments: [0-2] [3-5] [6-8] [9], offsets 2 per batch
	cfg := l.Config()
	cfg.RetentionAge = time.Hour
	l.SetConfig(cfg)

	steps := []struct {
		advance     time.Duration
		wantDeleted int
		wantStart   int64
	}{
		{time.Hour + 2*time.Minute, 0, 0}, // segment 0's newest batch (minute 2) is exactly 1h old: kept
		{time.Millisecond, 1, 6},          // now older than 1h
		{3 * time.Minute, 1, 12},          // segment 1's newest (minute 5)
		{24 * time.Hour, 1, 18},           // every sealed segment; the active one stays
		{24 * time.Hour, 0, 18},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		n, err := l.ApplyRetention()
		if err != nil || n != st.wantDeleted || l.LogStartOffset() != st.wantStart {
			t.Fatalf("step %d: deleted %d (%v), start %d; want %d, %d", i, n, err, l.LogStartOffset(), st.wantDeleted, st.wantStart)
		}
	}
	if l.NextOffset() != 20 || l.LastIndex() != 109 || len(l.Segments()) != 1 {
		t.Fatalf("next %d last index %d segments %d", l.NextOffset(), l.LastIndex(), len(l.Segments()))
	}
}

func TestRetentionBySizeKeepsAtLeastTheLimit(t *testing.T) {
	clock := newFakeClock()
	l, _ := retentionLog(t, clock, 10) // 3000 bytes in segments of 900, 900, 900, 300
	tests := []struct {
		limit       int64
		wantDeleted int
		wantSize    int64
	}{
		{-1, 0, 3000},
		{2200, 0, 3000}, // without segment 0: 2100 < 2200
		{2100, 1, 2100},
		{1, 2, 300}, // never the active segment
		{0, 0, 300},
	}
	for _, tt := range tests {
		cfg := l.Config()
		cfg.RetentionBytes = tt.limit
		l.SetConfig(cfg)
		n, err := l.ApplyRetention()
		if err != nil || n != tt.wantDeleted || l.Size() != tt.wantSize {
			t.Fatalf("limit %d: deleted %d (%v), size %d; want %d, %d", tt.limit, n, err, l.Size(), tt.wantDeleted, tt.wantSize)
		}
	}
}

func TestReadBelowStartAfterRetentionGetsTheRange(t *testing.T) {
	clock := newFakeClock()
	l, dir := retentionLog(t, clock, 10)
	cfg := l.Config()
	cfg.RetentionBytes = 1000
	l.SetConfig(cfg)
	if n, err := l.ApplyRetention(); n != 2 || err != nil {
		t.Fatalf("ApplyRetention = %d, %v", n, err)
	}
	for _, off := range []int64{0, 5, 11} {
		_, err := l.Read(off, 100)
		wantOutOfRange(t, err, off, 12, 20)
	}
	if b, err := l.Read(12, 1); err != nil || len(splitBatches(t, b)) != 1 {
		t.Fatalf("Read(start) = %d bytes, %v", len(b), err)
	}
	if off, _ := l.FindOffsetByTimestamp(0); off != 12 {
		t.Fatalf("FindOffsetByTimestamp(0) = %d, want the start 12", off)
	}
	// The files are gone and the state survives reopening.
	for _, base := range []int64{0, 6} {
		for _, suffix := range segmentSuffixes {
			if fileExists(segmentPath(dir, base, suffix)) {
				t.Fatalf("%s of segment %d still on disk", suffix, base)
			}
		}
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != 12 || l.NextOffset() != 20 || l.LastIndex() != 109 {
		t.Fatalf("after reopen: start %d next %d last index %d", l.LogStartOffset(), l.NextOffset(), l.LastIndex())
	}
}

func TestLastIndexSurvivesRetentionOfAllDataAndReopen(t *testing.T) {
	clock := newFakeClock()
	cfg := smallConfig(clock)
	cfg.SegmentBytes = 300
	cfg.RetentionBytes = 0
	dir := t.TempDir()
	l := mustOpen(t, dir, cfg)
	for i := 0; i < 4; i++ {
		mustAppend(t, l, testBatch(1, 300-61, 0, 0, 0), uint64(40+i))
	}
	// Each batch fills a segment: retention leaves only the active one, and
	// LastIndex must not depend on the deleted journals.
	if n, err := l.ApplyRetention(); n != 3 || err != nil {
		t.Fatalf("ApplyRetention = %d, %v", n, err)
	}
	if l.LastIndex() != 43 {
		t.Fatalf("LastIndex = %d, want 43", l.LastIndex())
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	if l.LastIndex() != 43 || l.LogStartOffset() != 3 || l.NextOffset() != 4 {
		t.Fatalf("after reopen: last index %d start %d next %d", l.LastIndex(), l.LogStartOffset(), l.NextOffset())
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestDeleteBeforeDropsOnlyWholeSegmentsBelowTheOffset(t *testing.T) {
	clock := newFakeClock()
	l, _ := retentionLog(t, clock, 10) // segments start at offsets 0, 6, 12, 18
	steps := []struct {
		offset      int64
		wantDeleted int
		wantStart   int64
	}{
		{5, 0, 0},   // segment [0,6) still holds offset 5
		{6, 1, 6},   // segment [0,6) lies wholly below 6
		{17, 1, 12}, // [6,12) goes, [12,18) holds 17
		{1 << 40, 1, 18},
		{1 << 40, 0, 18}, // the active segment always stays
	}
	for i, st := range steps {
		n, err := l.DeleteBefore(st.offset)
		if err != nil || n != st.wantDeleted || l.LogStartOffset() != st.wantStart {
			t.Fatalf("step %d: DeleteBefore(%d) deleted %d (%v), start %d; want %d, %d", i, st.offset, n, err, l.LogStartOffset(), st.wantDeleted, st.wantStart)
		}
	}
	if _, err := l.Read(10, 1<<20); err == nil {
		t.Fatal("read below the new start succeeded")
	}
	if got, err := l.Read(18, 1<<20); err != nil || len(got) == 0 {
		t.Fatalf("read at the start: %d bytes, %v", len(got), err)
	}
}
