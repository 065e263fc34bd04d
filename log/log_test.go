package log

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

func TestNewLogIsEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p0")
	l := mustOpen(t, dir, DefaultConfig())
	defer l.Close()
	if l.NextOffset() != 0 || l.LogStartOffset() != 0 || l.LastIndex() != 0 || l.Size() != 0 {
		t.Fatalf("new log: next %d start %d last index %d size %d", l.NextOffset(), l.LogStartOffset(), l.LastIndex(), l.Size())
	}
	if b, err := l.Read(0, 100); b != nil || err != nil {
		t.Fatalf("Read(0) on empty log = %v, %v; want nil, nil", b, err)
	}
	if off, err := l.FindOffsetByTimestamp(0); off != 0 || err != nil {
		t.Fatalf("FindOffsetByTimestamp on empty log = %d, %v", off, err)
	}
	if _, err := os.Stat(segmentPath(dir, 0, dataSuffix)); err != nil {
		t.Fatalf("first segment not created: %v", err)
	}
}

func TestAppendAssignsOffsetsAndStampsTheBatch(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	for i, records := range []int{1, 5, 3} {
		b := testBatch(records, 10, 0, 0, byte(i))
		want := l.NextOffset()
		got := mustAppend(t, l, b, uint64(i+1))
		if got != want {
			t.Fatalf("Append = %d, want %d", got, want)
		}
		if h, _ := record.ParseHeader(b); h.BaseOffset != want {
			t.Fatalf("caller's batch stamped with %d, want %d", h.BaseOffset, want)
		}
	}
	if l.NextOffset() != 9 || l.LastIndex() != 3 {
		t.Fatalf("next %d last index %d; want 9, 3", l.NextOffset(), l.LastIndex())
	}
}

func TestAppendRejectsBadInputWithoutWriting(t *testing.T) {
	cfg := smallConfig(nil)
	cfg.MaxBatchBytes = 500
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 5)

	badCRC := testBatch(1, 10, 0, 0, 0)
	badCRC[70] ^= 1
	tests := []struct {
		name  string
		batch []byte
		index uint64
		want  error
	}{
		{"too large", testBatch(1, 500, 0, 0, 0), 6, ErrBatchTooLarge},
		{"crc mismatch", badCRC, 6, ErrInvalidBatch},
		{"truncated", testBatch(1, 10, 0, 0, 0)[:40], 6, ErrInvalidBatch},
		{"trailing bytes", append(testBatch(1, 10, 0, 0, 0), 0), 6, ErrInvalidBatch},
		{"empty", nil, 6, ErrInvalidBatch},
		{"index decreased", testBatch(1, 10, 0, 0, 0), 4, ErrIndexDecreased},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Append(tt.batch, tt.index)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if l.NextOffset() != 1 || l.LastIndex() != 5 {
				t.Fatalf("log changed: next %d last index %d", l.NextOffset(), l.LastIndex())
			}
		})
	}
	var tooLarge *BatchTooLargeError
	_, err := l.Append(testBatch(1, 500, 0, 0, 0), 6)
	if !errors.As(err, &tooLarge) || tooLarge.Max != 500 || tooLarge.Size != 561 {
		t.Fatalf("err = %#v", err)
	}
	if _, err := l.Append(testBatch(1, 10, 0, 0, 0), 5); err != nil {
		t.Fatalf("same index again (several batches per Raft entry): %v", err)
	}
}

func TestReadFollowsKIP74AndSpansSegments(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	var stored [][]byte
	var bases []int64
	for i := 0; i < 60; i++ {
		b := testBatch(1+i%3, 40+(i*31)%200, 0, 0, byte(i))
		bases = append(bases, mustAppend(t, l, b, uint64(i)))
		stored = append(stored, b)
	}
	if n := len(l.Segments()); n < 5 {
		t.Fatalf("only %d segments; the test wants many rolls", n)
	}
	containing := func(off int64) int {
		for i := len(bases) - 1; i >= 0; i-- {
			if bases[i] <= off {
				return i
			}
		}
		return -1
	}
	for off := int64(0); off < l.NextOffset(); off++ {
		for _, max := range []int{-1, 0, 1, 100, 700, 2500, 1 << 30} {
			got, err := l.Read(off, max)
			if err != nil {
				t.Fatalf("Read(%d, %d): %v", off, max, err)
			}
			i := containing(off)
			want := bytes.Clone(stored[i])
			for j := i + 1; j < len(stored) && len(want)+len(stored[j]) <= max; j++ {
				want = append(want, stored[j]...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Read(%d, %d) = %d bytes, want %d", off, max, len(got), len(want))
			}
		}
	}
}

func TestReadOutsideTheLogReportsTheRange(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	mustAppend(t, l, testBatch(10, 10, 0, 0, 0), 1)
	if b, err := l.Read(10, 100); b != nil || err != nil {
		t.Fatalf("Read(NextOffset) = %v, %v; want nil, nil", b, err)
	}
	for _, off := range []int64{11, 1000, -1, math.MinInt64, math.MaxInt64} {
		_, err := l.Read(off, 100)
		wantOutOfRange(t, err, off, 0, 10)
	}
}

func TestRollsBySizeAndAge(t *testing.T) {
	clock := newFakeClock()
	cfg := smallConfig(clock)
	cfg.SegmentBytes = 1000
	cfg.SegmentMaxAge = time.Hour
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	batch := func() []byte { return testBatch(1, 300-61, 0, 0, 0) } // 300 bytes

	for i := 0; i < 3; i++ {
		mustAppend(t, l, batch(), 0)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments after 900 bytes, want 1", n)
	}
	mustAppend(t, l, batch(), 0) // 1200 > 1000: rolls first
	segs := l.Segments()
	if len(segs) != 2 || segs[0].Size != 900 || !segs[0].Sealed || segs[1].BaseOffset != 3 || segs[1].Sealed {
		t.Fatalf("after size roll: %+v", segs)
	}
	clock.Advance(59 * time.Minute)
	mustAppend(t, l, batch(), 0)
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("rolled before the segment's first batch was an hour old: %d segments", n)
	}
	clock.Advance(time.Minute)
	mustAppend(t, l, batch(), 0)
	if segs := l.Segments(); len(segs) != 3 || segs[2].BaseOffset != 5 {
		t.Fatalf("after age roll: %+v", segs)
	}

	// A batch larger than SegmentBytes gets a segment of its own.
	big := testBatch(1, 2000, 0, 0, 0)
	mustAppend(t, l, big, 0)
	mustAppend(t, l, batch(), 0)
	segs = l.Segments()
	if len(segs) != 5 || segs[3].Size != int64(len(big)) {
		t.Fatalf("after a big batch: %+v", segs)
	}
}

func TestRollAgeSurvivesReopen(t *testing.T) {
	clock := newFakeClock()
	cfg := smallConfig(clock)
	cfg.SegmentMaxAge = time.Hour
	dir := t.TempDir()
	l := mustOpen(t, dir, cfg)
	mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 1)
	l.Close()
	clock.Advance(2 * time.Hour)
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 2)
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments: the first append time was not recovered from the journal", n)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	var want [][]byte
	for i := 0; i < 40; i++ {
		b := testBatch(2, 50+i, int64(i), int64(i), byte(i))
		mustAppend(t, l, b, uint64(10+i))
		want = append(want, b)
	}
	next, size, segs := l.NextOffset(), l.Size(), len(l.Segments())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	if l.NextOffset() != next || l.Size() != size || len(l.Segments()) != segs || l.LastIndex() != 49 {
		t.Fatalf("after reopen: next %d size %d segments %d last index %d", l.NextOffset(), l.Size(), len(l.Segments()), l.LastIndex())
	}
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("%d batches after reopen, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs after reopen", i)
		}
	}
	if off, _ := l.FindOffsetByTimestamp(20); off != 40 {
		t.Fatalf("FindOffsetByTimestamp(20) after reopen = %d, want 40", off)
	}
}

func TestFindOffsetByTimestampAcrossSegments(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	// Timestamps rise with a dip, as with producers whose clocks disagree.
	ts := []int64{10, 20, 30, 25, 40, 50, 45, 60, 70, 80, 75, 90, 100, 110, 95, 120}
	for i, t0 := range ts {
		mustAppend(t, l, testBatch(2, 150, t0-1, t0, byte(i)), 0)
	}
	tests := []struct{ ts, want int64 }{
		{math.MinInt64, 0}, {0, 0}, {10, 0}, {11, 2}, {25, 4}, {26, 4}, {41, 10}, {45, 10},
		{76, 18}, {96, 24}, {111, 30}, {120, 30}, {121, 32}, {math.MaxInt64, 32},
	}
	for _, tt := range tests {
		if got, err := l.FindOffsetByTimestamp(tt.ts); got != tt.want || err != nil {
			t.Errorf("FindOffsetByTimestamp(%d) = %d, %v; want %d", tt.ts, got, err, tt.want)
		}
	}
}

func TestChangedIsClosedByTheNextAppend(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("closed before any append")
	default:
	}
	mustAppend(t, l, testBatch(1, 1, 0, 0, 0), 0)
	select {
	case <-ch:
	default:
		t.Fatal("not closed by Append")
	}
	ch = l.Changed()
	if err := l.Reset(50, 9); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("not closed by Reset")
	}
	ch = l.Changed()
	l.Close()
	select {
	case <-ch:
	default:
		t.Fatal("not closed by Close")
	}
	select {
	case <-l.Changed():
	default:
		t.Fatal("Changed after Close is not closed")
	}
}

func TestClosedLogRefusesWork(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	mustAppend(t, l, testBatch(3, 1, 0, 0, 0), 7)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	if _, err := l.Append(testBatch(1, 1, 0, 0, 0), 8); !errors.Is(err, ErrClosed) {
		t.Errorf("Append = %v", err)
	}
	if _, err := l.Read(0, 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Read = %v", err)
	}
	if _, err := l.FindOffsetByTimestamp(0); !errors.Is(err, ErrClosed) {
		t.Errorf("FindOffsetByTimestamp = %v", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync = %v", err)
	}
	if _, err := l.ApplyRetention(); !errors.Is(err, ErrClosed) {
		t.Errorf("ApplyRetention = %v", err)
	}
	if err := l.Reset(0, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Reset = %v", err)
	}
	if err := l.SetConfig(DefaultConfig()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetConfig = %v", err)
	}
	if l.NextOffset() != 3 || l.LastIndex() != 7 || l.Segments() != nil {
		t.Errorf("after Close: next %d last index %d segments %v", l.NextOffset(), l.LastIndex(), l.Segments())
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still there after Delete: %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"zero segment bytes", func(c *Config) { c.SegmentBytes = 0 }, "SegmentBytes"},
		{"segment bytes above int32", func(c *Config) { c.SegmentBytes = 1 << 31 }, "SegmentBytes"},
		{"negative age", func(c *Config) { c.SegmentMaxAge = -1 }, "SegmentMaxAge"},
		{"zero index interval", func(c *Config) { c.IndexIntervalBytes = 0 }, "IndexIntervalBytes"},
		{"batch smaller than a header", func(c *Config) { c.MaxBatchBytes = 60 }, "MaxBatchBytes"},
		{"batch above the limit", func(c *Config) { c.MaxBatchBytes = MaxMaxBatchBytes + 1 }, "MaxBatchBytes"},
		{"unknown sync policy", func(c *Config) { c.Sync = 7 }, "Sync"},
		{"interval sync without interval", func(c *Config) { c.Sync, c.SyncInterval = SyncInterval, 0 }, "SyncInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tt.field || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want a ConfigError on %s", err, tt.field)
			}
			if _, err := Open(t.TempDir(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Open accepted an invalid config: %v", err)
			}
		})
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	cfg := DefaultConfig()
	cfg.Now = nil
	l := mustOpen(t, t.TempDir(), cfg) // nil clock means time.Now
	defer l.Close()
	bad := DefaultConfig()
	bad.SegmentBytes = -5
	if err := l.SetConfig(bad); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("SetConfig accepted an invalid config: %v", err)
	}
}

func TestSetConfigAppliesToTheNextAppend(t *testing.T) {
	l := mustOpen(t, t.TempDir(), DefaultConfig())
	defer l.Close()
	for i := 0; i < 5; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), 0)
	}
	cfg := l.Config()
	cfg.SegmentBytes = 300
	cfg.MaxBatchBytes = 100
	if err := l.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(testBatch(1, 200, 0, 0, 0), 0); !errors.Is(err, ErrBatchTooLarge) {
		t.Fatalf("Append after lowering MaxBatchBytes = %v", err)
	}
	mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 0)
	if n := len(l.Segments()); n != 2 {
		t.Fatalf("%d segments after lowering SegmentBytes, want a roll", n)
	}
}

func TestSyncPolicies(t *testing.T) {
	t.Run("every append", func(t *testing.T) {
		cfg := smallConfig(nil)
		cfg.Sync = SyncEveryAppend
		l := mustOpen(t, t.TempDir(), cfg)
		defer l.Close()
		for i := 0; i < 20; i++ {
			mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(i))
			v := l.view.Load()
			if v.active().dirty.Load() || l.dirDirty.Load() {
				t.Fatal("data not synced when Append returned")
			}
			for _, s := range v.segs[:len(v.segs)-1] {
				if !s.durable.Load() {
					t.Fatalf("after append %d, sealed segment %d is not durable yet", i, s.base)
				}
			}
		}
	})
	t.Run("interval runs in the background until Close", func(t *testing.T) {
		cfg := smallConfig(nil)
		cfg.Sync = SyncInterval
		cfg.SyncInterval = time.Millisecond
		l := mustOpen(t, t.TempDir(), cfg)
		mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 1)
		deadline := time.Now().Add(10 * time.Second)
		for l.view.Load().active().dirty.Load() {
			if time.Now().After(deadline) {
				t.Fatal("background sync did not run")
			}
			time.Sleep(time.Millisecond)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		n := l.syncs.Load()
		if n == 0 {
			t.Fatal("no background sync counted")
		}
		// Close waited for the goroutine: no more syncs happen.
		time.Sleep(5 * time.Millisecond)
		if l.syncs.Load() != n {
			t.Fatal("background sync ran after Close")
		}
	})
	t.Run("switching policy at runtime", func(t *testing.T) {
		l := mustOpen(t, t.TempDir(), smallConfig(nil))
		defer l.Close()
		cfg := l.Config()
		cfg.Sync, cfg.SyncInterval = SyncInterval, time.Millisecond
		if err := l.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 1)
		deadline := time.Now().Add(10 * time.Second)
		for l.view.Load().active().dirty.Load() {
			if time.Now().After(deadline) {
				t.Fatal("background sync did not start after SetConfig")
			}
			time.Sleep(time.Millisecond)
		}
		cfg.Sync = SyncNever
		if err := l.SetConfig(cfg); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSegmentsDescribeFiles(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	for i := 0; i < 20; i++ {
		mustAppend(t, l, testBatch(2, 100, int64(i), int64(i), 0), uint64(i))
	}
	if err := l.Sync(); err != nil { // also finishes background flushes
		t.Fatal(err)
	}
	segs := l.Segments()
	var total int64
	for i, s := range segs {
		total += s.Size
		fi, err := os.Stat(s.DataPath)
		if err != nil || fi.Size() != s.Size {
			t.Fatalf("segment %d: data file %v, size %v want %d", i, err, fi, s.Size)
		}
		jfi, err := os.Stat(s.JournalPath)
		if err != nil || jfi.Size() != s.JournalSize {
			t.Fatalf("segment %d: journal %v, size %d want %d", i, err, jfi.Size(), s.JournalSize)
		}
		if i > 0 && s.BaseOffset != segs[i-1].NextOffset {
			t.Fatalf("segment %d starts at %d, previous ends at %d", i, s.BaseOffset, segs[i-1].NextOffset)
		}
		if s.Sealed != (i < len(segs)-1) {
			t.Fatalf("segment %d sealed = %v", i, s.Sealed)
		}
		if s.Sealed {
			if _, err := os.Stat(s.IndexPath); err != nil {
				t.Fatalf("segment %d index: %v", i, err)
			}
		}
	}
	if total != l.Size() || segs[len(segs)-1].NextOffset != l.NextOffset() {
		t.Fatalf("segments add up to %d bytes ending at %d; log says %d, %d", total, segs[len(segs)-1].NextOffset, l.Size(), l.NextOffset())
	}
}

func TestRecordEncoderBatchesRoundTrip(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	recs := []record.Record{
		{Timestamp: 1000, Key: []byte("k1"), Value: []byte("v1")},
		{Timestamp: 1005, Key: nil, Value: bytes.Repeat([]byte("x"), 300)},
	}
	for i := 0; i < 5; i++ {
		b, err := record.Encode(record.BatchOptions{}, recs)
		if err != nil {
			t.Fatal(err)
		}
		mustAppend(t, l, b, uint64(i))
	}
	for i, b := range readAll(t, l) {
		h, got, err := record.Decode(b)
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if h.BaseOffset != int64(2*i) || len(got) != 2 || got[1].Offset != int64(2*i+1) || !bytes.Equal(got[0].Value, []byte("v1")) {
			t.Fatalf("batch %d decoded as %+v %+v", i, h, got)
		}
	}
	if off, _ := l.FindOffsetByTimestamp(1003); off != 0 {
		t.Fatalf("FindOffsetByTimestamp(1003) = %d, want 0", off)
	}
}

func TestLargeBatchWithBadCRCIsRejectedAfterItsBytesWereWritten(t *testing.T) {
	// Large batches have their CRC checked while their bytes are written.
	dir := t.TempDir()
	l := mustOpen(t, dir, DefaultConfig())
	small := testBatch(2, 100, 0, 0, 1)
	mustAppend(t, l, small, 1)
	bad := testBatch(5, parallelVerifyBytes+1000, 0, 0, 2)
	bad[len(bad)-1] ^= 1
	if _, err := l.Append(bad, 2); !errors.Is(err, ErrInvalidBatch) || !errors.Is(err, record.ErrCRCMismatch) {
		t.Fatalf("Append of a corrupt large batch = %v", err)
	}
	if l.NextOffset() != 2 || l.LastIndex() != 1 || l.Size() != int64(len(small)) {
		t.Fatalf("log changed: next %d last index %d size %d", l.NextOffset(), l.LastIndex(), l.Size())
	}
	// A crash now finds the rejected bytes past the committed end and cuts them.
	img := filepath.Join(t.TempDir(), "img")
	copyDir(t, dir, img)
	r := mustOpen(t, img, DefaultConfig())
	if r.NextOffset() != 2 || r.Size() != int64(len(small)) {
		t.Fatalf("after a crash: next %d size %d", r.NextOffset(), r.Size())
	}
	r.Close()
	// The next append takes the same place.
	good := testBatch(5, parallelVerifyBytes+1000, 0, 0, 3)
	if off := mustAppend(t, l, good, 2); off != 2 {
		t.Fatalf("next append at %d", off)
	}
	if got := readAll(t, l); len(got) != 2 || !bytes.Equal(got[1], good) {
		t.Fatalf("read back %d batches", len(got))
	}
	l.Close()
}
