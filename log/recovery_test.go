package log

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// crashFixture is a log whose batches were all appended and synced; tests
// damage copies of its directory and check what Open recovers.
type crashFixture struct {
	dir     string
	cfg     Config
	batches [][]byte // as stored
	indexes []uint64
}

// newCrashFixture appends n batches. With finalAlone the last batch starts a
// new segment, otherwise it shares its segment with earlier ones.
func newCrashFixture(t *testing.T, n int, finalAlone bool) *crashFixture {
	t.Helper()
	f := &crashFixture{dir: t.TempDir(), cfg: smallConfig(nil)}
	f.cfg.SegmentBytes = 500
	l := mustOpen(t, f.dir, f.cfg)
	for i := 0; i < n; i++ {
		if i == n-1 && finalAlone {
			l.mu.Lock()
			_, err := l.roll(l.view.Load())
			l.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
		b := testBatch(1+i%4, 30+(i*37)%60, int64(i), int64(i), byte(i))
		mustAppend(t, l, b, uint64(1000+i*2))
		f.batches = append(f.batches, b)
		f.indexes = append(f.indexes, uint64(1000+i*2))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	last := segs[len(segs)-1]
	if finalAlone != (last.Size == int64(len(f.batches[n-1]))) || len(segs) < 3 {
		t.Fatalf("fixture layout: final batch alone = %v, segments %+v", !finalAlone, segs)
	}
	// Crash: no Close. What write(2) returned is in the files.
	t.Cleanup(func() { l.Close() })
	return f
}

// image copies the log directory into a fresh one.
func (f *crashFixture) image(t *testing.T) string {
	dst := filepath.Join(t.TempDir(), "img")
	copyDir(t, f.dir, dst)
	return dst
}

func lastFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	if err != nil || len(names) == 0 {
		t.Fatalf("no segments in %s: %v", dir, err)
	}
	slices.Sort(names)
	return strings.TrimSuffix(names[len(names)-1], dataSuffix) + suffix
}

// checkRecovered opens dir and checks that exactly the first keep batches
// survived, byte for byte, and (with goOn) that appends and reads go on.
func (f *crashFixture) checkRecovered(t *testing.T, dir string, keep int, goOn bool) {
	t.Helper()
	l, err := Open(dir, f.cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	got := readAll(t, l)
	if len(got) != keep {
		t.Fatalf("%d batches survived, want %d", len(got), keep)
	}
	var next int64
	for i := range got {
		if !bytes.Equal(got[i], f.batches[i]) {
			t.Fatalf("batch %d differs after recovery", i)
		}
		next += int64(f.batches[i][26]) + 1 // lastOffsetDelta < 256 here
	}
	if l.NextOffset() != next {
		t.Fatalf("NextOffset = %d, want %d", l.NextOffset(), next)
	}
	if want := f.indexes[keep-1]; l.LastIndex() != want {
		t.Fatalf("LastIndex = %d, want %d", l.LastIndex(), want)
	}
	if !goOn {
		return
	}
	b := testBatch(2, 33, 0, 0, 0xAB)
	off := mustAppend(t, l, b, 5000)
	if off != next {
		t.Fatalf("append after recovery got offset %d, want %d", off, next)
	}
	rb, err := l.Read(off, 1)
	if err != nil || !bytes.Equal(rb, b) {
		t.Fatalf("read back after recovery: %v", err)
	}
	if l.LastIndex() != 5000 {
		t.Fatalf("LastIndex after append = %d", l.LastIndex())
	}
}

func TestRecoveryCutsTornFinalBatchAtEveryByte(t *testing.T) {
	for _, alone := range []bool{false, true} {
		t.Run(fmt.Sprintf("final batch alone in its segment=%v", alone), func(t *testing.T) {
			f := newCrashFixture(t, 13, alone)
			final := int64(len(f.batches[len(f.batches)-1]))
			for cut := int64(0); cut < final; cut++ {
				img := f.image(t)
				data := lastFile(t, img, dataSuffix)
				fi, _ := os.Stat(data)
				if err := os.Truncate(data, fi.Size()-final+cut); err != nil {
					t.Fatal(err)
				}
				// Appending after recovery costs fsyncs at Close; a sample of
				// positions covers it.
				f.checkRecovered(t, img, len(f.batches)-1, cut%16 == 0 || cut == final-1)
			}
			f.checkRecovered(t, f.image(t), len(f.batches), true) // uncut: all survive
		})
	}
}

func TestRecoveryDropsFinalBatchWithAnyFlippedByte(t *testing.T) {
	for _, alone := range []bool{false, true} {
		t.Run(fmt.Sprintf("final batch alone in its segment=%v", alone), func(t *testing.T) {
			f := newCrashFixture(t, 13, alone)
			final := int64(len(f.batches[len(f.batches)-1]))
			for i := int64(0); i < final; i++ {
				img := f.image(t)
				data := lastFile(t, img, dataSuffix)
				b, _ := os.ReadFile(data)
				b[int64(len(b))-final+i] ^= 0xff
				os.WriteFile(data, b, 0o644)
				f.checkRecovered(t, img, len(f.batches)-1, i%16 == 0)
			}
		})
	}
}

func TestRecoveryDropsBatchWhoseJournalEntryIsTornOrDamaged(t *testing.T) {
	f := newCrashFixture(t, 13, false)
	for i := 0; i < journalEntrySize; i++ {
		img := f.image(t)
		j := lastFile(t, img, journalSuffix)
		fi, _ := os.Stat(j)
		os.Truncate(j, fi.Size()-journalEntrySize+int64(i))
		f.checkRecovered(t, img, len(f.batches)-1, i == 0)

		img = f.image(t)
		j = lastFile(t, img, journalSuffix)
		b, _ := os.ReadFile(j)
		b[len(b)-journalEntrySize+i] ^= 0x01
		os.WriteFile(j, b, 0o644)
		f.checkRecovered(t, img, len(f.batches)-1, i == 0)
	}
}

func TestRecoveryAfterKillWithoutCloseOrSync(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(nil)
	l := mustOpen(t, dir, cfg)
	defer l.Close()
	var want [][]byte
	for i := 0; i < 30; i++ {
		b := testBatch(3, 100, 0, 0, byte(i))
		mustAppend(t, l, b, uint64(i+1))
		want = append(want, b)
	}
	// The process dies here: the page cache keeps what write(2) accepted.
	img := filepath.Join(t.TempDir(), "img")
	copyDir(t, dir, img)
	r := mustOpen(t, img, cfg)
	defer r.Close()
	got := readAll(t, r)
	if len(got) != len(want) || r.LastIndex() != 30 || r.NextOffset() != 90 {
		t.Fatalf("recovered %d batches, last index %d, next %d", len(got), r.LastIndex(), r.NextOffset())
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}

// TestRecoveryFromCrashDuringRoll builds the directory states a crash can
// leave at each step of a roll (see Log.roll).
func TestRecoveryFromCrashDuringRoll(t *testing.T) {
	type state struct {
		name string
		// damage turns the image of a log just before a roll (pre) or just
		// after a completed roll with nothing appended yet (post) into the
		// crash state.
		fromPost bool
		damage   func(t *testing.T, img string, next int64, prevBase int64)
	}
	states := []state{
		{"new journal written, no data file yet", false, func(t *testing.T, img string, next, _ int64) {
			j, err := createJournal(segmentPath(img, next, journalSuffix), next, 1, true)
			if err != nil {
				t.Fatal(err)
			}
			j.close()
		}},
		{"new data file without journal", false, func(t *testing.T, img string, next, _ int64) {
			os.WriteFile(segmentPath(img, next, dataSuffix), nil, 0o644)
		}},
		{"new data file with a torn journal header", false, func(t *testing.T, img string, next, _ int64) {
			os.WriteFile(segmentPath(img, next, dataSuffix), nil, 0o644)
			os.WriteFile(segmentPath(img, next, journalSuffix), encodeJournalHeader(next, 7)[:13], 0o644)
		}},
		{"roll complete, nothing appended", true, func(*testing.T, string, int64, int64) {}},
		{"roll complete, sealed segment's index files lost", true, func(t *testing.T, img string, _, prev int64) {
			os.Remove(segmentPath(img, prev, indexSuffix))
			os.Remove(segmentPath(img, prev, timeIndexSuffix))
		}},
		{"roll complete, sealed segment's index garbage", true, func(t *testing.T, img string, _, prev int64) {
			os.WriteFile(segmentPath(img, prev, indexSuffix), []byte("garbage"), 0o644)
		}},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			f := &crashFixture{dir: t.TempDir(), cfg: smallConfig(nil)}
			l := mustOpen(t, f.dir, f.cfg)
			defer l.Close()
			for i := 0; i < 15; i++ {
				b := testBatch(2, 120, 0, 0, byte(i))
				mustAppend(t, l, b, uint64(i+1))
				f.batches = append(f.batches, b)
				f.indexes = append(f.indexes, uint64(i+1))
			}
			v := l.view.Load()
			prev, next := v.active().base, l.NextOffset()
			img := filepath.Join(t.TempDir(), "img")
			if st.fromPost {
				l.mu.Lock()
				_, err := l.roll(v)
				l.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			}
			copyDir(t, f.dir, img)
			st.damage(t, img, next, prev)
			f.checkRecovered(t, img, len(f.batches), true)
			if _, err := os.Stat(segmentPath(img, prev, indexSuffix)); st.fromPost && err != nil {
				t.Fatalf("index of the sealed segment not rebuilt: %v", err)
			}
		})
	}
}

func TestEmptyActiveSegmentKeepsLastIndexWhenOlderSegmentsAreGone(t *testing.T) {
	cfg := smallConfig(nil)
	cfg.RetentionBytes = 0
	dir := t.TempDir()
	l := mustOpen(t, dir, cfg)
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(70+i))
	}
	l.mu.Lock()
	_, err := l.roll(l.view.Load())
	l.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 || l.Size() != 0 {
		t.Fatalf("%d segments, %d bytes left; want only the empty active one", n, l.Size())
	}
	l.Close()
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	if l.LastIndex() != 79 || l.NextOffset() != 10 || l.LogStartOffset() != 10 {
		t.Fatalf("last index %d next %d start %d; want 79, 10, 10", l.LastIndex(), l.NextOffset(), l.LogStartOffset())
	}
}

func TestOpenRemovesLeftoversAndKeepsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(i))
	}
	l.Close()
	leftovers := []string{
		"00000000000000000000.index.tmp",
		"00000000000000000003.log.tmp",
		"reset.pending.tmp",
		"00000000000000099999.journal",   // orphan: no data file
		"00000000000000099999.timeindex", // orphan
	}
	for _, name := range leftovers {
		os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "NOTES.txt"), []byte("mine"), 0o644)
	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	for _, name := range leftovers {
		if fileExists(filepath.Join(dir, name)) {
			t.Errorf("%s not removed", name)
		}
	}
	if !fileExists(filepath.Join(dir, "NOTES.txt")) {
		t.Error("a file the log does not own was removed")
	}
	if len(readAll(t, l)) != 10 {
		t.Fatal("data lost")
	}
}

func TestOpenDropsSegmentsBeforeAGap(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	for i := 0; i < 20; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(i))
	}
	segs := l.Segments()
	l.Close()
	if len(segs) < 4 {
		t.Fatalf("only %d segments", len(segs))
	}
	// A crash while retention deleted segments 0 and 1 persisted only the
	// unlink of segment 1.
	os.Remove(segs[1].DataPath)
	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	if l.LogStartOffset() != segs[2].BaseOffset || l.NextOffset() != 20 || l.LastIndex() != 19 {
		t.Fatalf("start %d next %d last index %d; want %d, 20, 19", l.LogStartOffset(), l.NextOffset(), l.LastIndex(), segs[2].BaseOffset)
	}
	if fileExists(segs[0].DataPath) {
		t.Fatal("segment before the gap not deleted")
	}
}

func TestDamagedJournalHeaderOfNonEmptyLastSegment(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	for i := 0; i < 12; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(100+i))
	}
	segs := l.Segments()
	l.Close()
	last := segs[len(segs)-1]
	b, _ := os.ReadFile(last.JournalPath)
	b[3] ^= 1
	os.WriteFile(last.JournalPath, b, 0o644)

	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	// No batch of the last segment has a trustworthy entry: they go, and
	// LastIndex comes from the previous segment's journal.
	prev := segs[len(segs)-2]
	if l.NextOffset() != prev.NextOffset || l.LastIndex() != uint64(100+prev.NextOffset-1) {
		t.Fatalf("next %d last index %d; want %d, %d", l.NextOffset(), l.LastIndex(), prev.NextOffset, 100+prev.NextOffset-1)
	}
}

func TestOpenNeverWritesThroughHardLinks(t *testing.T) {
	src := t.TempDir()
	l := mustOpen(t, src, smallConfig(nil))
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, byte(i)), uint64(i))
	}
	l.Close()
	before := snapshotFiles(t, src)

	dst := t.TempDir()
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			t.Skipf("hard links unsupported: %v", err)
		}
	}
	l2 := mustOpen(t, dst, smallConfig(nil))
	for i := 0; i < 10; i++ {
		mustAppend(t, l2, testBatch(1, 200, 0, 0, 0xEE), uint64(100+i))
	}
	l2.Close()
	after := snapshotFiles(t, src)
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Fatalf("%s of the source log changed through a hard link", name)
		}
	}
}

func snapshotFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func TestRecoveryEndsTheLogAtDamageInAnUnflushedSegment(t *testing.T) {
	f := &crashFixture{dir: t.TempDir(), cfg: smallConfig(nil)}
	l := mustOpen(t, f.dir, f.cfg)
	defer l.Close()
	for i := 0; i < 30; i++ {
		b := testBatch(1, 150, 0, 0, byte(i))
		mustAppend(t, l, b, uint64(i+1))
		f.batches = append(f.batches, b)
		f.indexes = append(f.indexes, uint64(i+1))
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	segs := l.Segments()
	if len(segs) < 5 {
		t.Fatalf("%d segments", len(segs))
	}
	// Segment 2 was not flushed yet when the machine died (no index files),
	// and its last batch never fully reached the disk, while later segments'
	// data did.
	img := filepath.Join(t.TempDir(), "img")
	copyDir(t, f.dir, img)
	damaged := segs[2]
	for _, p := range []string{damaged.IndexPath, damaged.TimeIndexPath} {
		os.Remove(filepath.Join(img, filepath.Base(p)))
	}
	os.Truncate(filepath.Join(img, filepath.Base(damaged.DataPath)), damaged.Size-10)

	keep := int(damaged.NextOffset) - 1 // one record per batch
	f.checkRecovered(t, img, keep, true)
	for _, s := range segs[3:] {
		if fileExists(filepath.Join(img, filepath.Base(s.DataPath))) {
			t.Fatalf("segment %d after the damage still on disk", s.BaseOffset)
		}
	}
	// Segment 1 was trusted, segment 2 is active again with no stale index.
	if fileExists(filepath.Join(img, filepath.Base(damaged.IndexPath))) {
		t.Fatal("stale index of the new active segment")
	}
}

func TestRecoveryMarksScannedSealedSegments(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	for i := 0; i < 20; i++ {
		mustAppend(t, l, testBatch(1, 150, 0, 0, byte(i)), uint64(i+1))
	}
	l.Sync()
	segs := l.Segments()
	img := filepath.Join(t.TempDir(), "img")
	copyDir(t, dir, img)
	for _, s := range segs[:len(segs)-1] {
		os.Remove(filepath.Join(img, filepath.Base(s.IndexPath)))
		os.Remove(filepath.Join(img, filepath.Base(s.TimeIndexPath)))
	}
	r := mustOpen(t, img, smallConfig(nil))
	if got := len(readAll(t, r)); got != 20 || r.LastIndex() != 20 {
		t.Fatalf("%d batches, last index %d", got, r.LastIndex())
	}
	r.Close()
	// Scanned once, then marked: the next Open trusts them.
	for _, s := range segs[:len(segs)-1] {
		if !fileExists(filepath.Join(img, filepath.Base(s.IndexPath))) {
			t.Fatalf("segment %d not marked durable after recovery", s.BaseOffset)
		}
	}
}
