package log

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/skiff-mq/skiff/record"
)

// startLog is retentionLog's layout: segments of three 300-byte batches of
// 2 records each: [0-5] [6-11] [12-17] [18-19] for 10 batches.

func TestAdvanceStartHidesRecordsBelowIt(t *testing.T) {
	l, _ := retentionLog(t, newFakeClock(), 10)
	if err := l.AdvanceStart(7); err != nil { // inside batch [6,7]
		t.Fatal(err)
	}
	if got := l.LogStartOffset(); got != 7 {
		t.Fatalf("start %d, want 7", got)
	}
	_, err := l.Read(6, 4096)
	wantOutOfRange(t, err, 6, 7, 20)
	b, err := l.Read(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The batch holding offset 7 comes whole; the reader skips offset 6.
	if h, _ := record.ParseHeader(b); h.BaseOffset != 6 {
		t.Fatalf("read at the start returned batch %d, want 6", h.BaseOffset)
	}
	// Never backwards, never past the end.
	if err := l.AdvanceStart(3); err != nil || l.LogStartOffset() != 7 {
		t.Fatalf("start %d (%v) after moving back, want 7", l.LogStartOffset(), err)
	}
	if err := l.AdvanceStart(99); err != nil || l.LogStartOffset() != 20 {
		t.Fatalf("start %d (%v) after moving past the end, want 20", l.LogStartOffset(), err)
	}
}

func TestAdvancedStartSurvivesSyncAndReopen(t *testing.T) {
	clock := newFakeClock()
	l, dir := retentionLog(t, clock, 10)
	if err := l.AdvanceStart(13); err != nil {
		t.Fatal(err)
	}
	// Segments wholly below the start go with DeleteBefore (or retention).
	if n, err := l.DeleteBefore(l.LogStartOffset()); err != nil || n != 2 {
		t.Fatalf("DeleteBefore deleted %d (%v), want 2", n, err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	crash := filepath.Join(t.TempDir(), "crash")
	copyDir(t, dir, crash) // a crash right after the sync
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, crash} {
		r := mustOpen(t, d, smallConfig(clock))
		if r.LogStartOffset() != 13 || r.NextOffset() != 20 {
			t.Fatalf("%s: reopened at [%d, %d), want [13, 20)", d, r.LogStartOffset(), r.NextOffset())
		}
		r.Close()
	}
}

func TestResetForgetsTheAdvancedStart(t *testing.T) {
	clock := newFakeClock()
	l, dir := retentionLog(t, clock, 4)
	l.AdvanceStart(5)
	l.Sync()
	if err := l.Reset(2, 7); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 2 || l.NextOffset() != 2 {
		t.Fatalf("after reset [%d, %d), want [2, 2)", l.LogStartOffset(), l.NextOffset())
	}
	if _, err := os.Stat(filepath.Join(dir, startFileName)); !os.IsNotExist(err) {
		t.Fatalf("start.offset survived a reset: %v", err)
	}
	mustAppend(t, l, testBatch(2, 100, 0, 0, 1), 8)
	l.Close()
	r := mustOpen(t, dir, smallConfig(clock))
	defer r.Close()
	if r.LogStartOffset() != 2 || r.NextOffset() != 4 {
		t.Fatalf("reopened at [%d, %d), want [2, 4)", r.LogStartOffset(), r.NextOffset())
	}
}

func TestCheckpointCarriesTheAdvancedStart(t *testing.T) {
	clock := newFakeClock()
	l, _ := retentionLog(t, clock, 10)
	l.AdvanceStart(9)
	dst := filepath.Join(t.TempDir(), "cp")
	info, err := l.Checkpoint(dst)
	if err != nil || info.StartOffset != 9 {
		t.Fatalf("checkpoint start %d (%v), want 9", info.StartOffset, err)
	}
	c := mustOpen(t, dst, smallConfig(clock))
	defer c.Close()
	if c.LogStartOffset() != 9 || c.NextOffset() != 20 {
		t.Fatalf("checkpoint opens at [%d, %d), want [9, 20)", c.LogStartOffset(), c.NextOffset())
	}
}

func TestDamagedStartFileFallsBackToTheFirstSegment(t *testing.T) {
	clock := newFakeClock()
	l, dir := retentionLog(t, clock, 4)
	l.AdvanceStart(3)
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, startFileName))
	if err != nil {
		t.Fatal(err)
	}
	b[6] ^= 0xff
	os.WriteFile(filepath.Join(dir, startFileName), b, 0o644)
	r := mustOpen(t, dir, smallConfig(clock))
	defer r.Close()
	if r.LogStartOffset() != 0 {
		t.Fatalf("start %d from a damaged file, want 0", r.LogStartOffset())
	}
}

func TestHeldBytesAndStartKeepingBytes(t *testing.T) {
	l, _ := retentionLog(t, newFakeClock(), 10) // 10 batches of 300 bytes, 2 records each
	held := func() int64 {
		t.Helper()
		n, err := l.HeldBytes()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if held() != 3000 {
		t.Fatalf("held %d, want 3000", held())
	}
	for _, tc := range []struct {
		max, want int64
	}{
		{3000, 0}, {2999, 2}, {2400, 4}, {2399, 6}, {900, 14}, {300, 18}, {299, 20}, {1 << 40, 0},
	} {
		got, err := l.StartKeepingBytes(tc.max)
		if err != nil || got != tc.want {
			t.Fatalf("StartKeepingBytes(%d) = %d (%v), want %d", tc.max, got, err, tc.want)
		}
	}
	l.AdvanceStart(7) // inside batch 3 (offsets 6, 7)
	if held() != 3000-3*300 {
		t.Fatalf("held %d from start 7, want 2100", held())
	}
	// Never below the start, even when more would fit.
	if got, _ := l.StartKeepingBytes(1 << 40); got != 7 {
		t.Fatalf("StartKeepingBytes(large) = %d, want the start 7", got)
	}
}
