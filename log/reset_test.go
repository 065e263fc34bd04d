package log

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestResetStartsEmptyAtTheGivenOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(nil)
	l := mustOpen(t, dir, cfg)
	for i := 0; i < 20; i++ {
		mustAppend(t, l, testBatch(2, 200, 0, 0, 0), uint64(i+1))
	}
	for _, tt := range []struct {
		start int64
		index uint64
	}{{1000, 77}, {0, 3}, {1000, 90}} { // also back onto an existing segment name
		if err := l.Reset(tt.start, tt.index); err != nil {
			t.Fatal(err)
		}
		if l.NextOffset() != tt.start || l.LogStartOffset() != tt.start || l.LastIndex() != tt.index || l.Size() != 0 {
			t.Fatalf("after Reset(%d, %d): next %d start %d last index %d size %d",
				tt.start, tt.index, l.NextOffset(), l.LogStartOffset(), l.LastIndex(), l.Size())
		}
		if len(l.Segments()) != 1 {
			t.Fatalf("%d segments after Reset", len(l.Segments()))
		}
		if b, err := l.Read(tt.start, 10); b != nil || err != nil {
			t.Fatalf("Read(start) = %v, %v", b, err)
		}
		_, err := l.Read(tt.start-1, 10)
		if tt.start > 0 {
			wantOutOfRange(t, err, tt.start-1, tt.start, tt.start)
		}
		b := testBatch(3, 10, 0, 0, 1)
		if off := mustAppend(t, l, b, tt.index+1); off != tt.start {
			t.Fatalf("first append after Reset got %d", off)
		}
	}
	l.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 { // one data file and its journal
		t.Fatalf("files left after resets: %v", ents)
	}
	l = mustOpen(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != 1000 || l.NextOffset() != 1003 || l.LastIndex() != 91 {
		t.Fatalf("after reopen: start %d next %d last index %d", l.LogStartOffset(), l.NextOffset(), l.LastIndex())
	}
}

func TestInterruptedResetIsFinishedByOpen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 200, 0, 0, 0), uint64(i))
	}
	l.Close()
	// The crash came right after the marker became durable.
	if err := writeResetMarker(dir, 500, 42); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	if l.LogStartOffset() != 500 || l.NextOffset() != 500 || l.LastIndex() != 42 {
		t.Fatalf("start %d next %d last index %d; want 500, 500, 42", l.LogStartOffset(), l.NextOffset(), l.LastIndex())
	}
	if fileExists(filepath.Join(dir, resetMarkerName)) {
		t.Fatal("marker left behind")
	}
}

func TestDamagedResetMarkerIsIgnored(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, smallConfig(nil))
	want := testBatch(1, 20, 0, 0, 0)
	mustAppend(t, l, want, 4)
	l.Close()
	os.WriteFile(filepath.Join(dir, resetMarkerName), []byte("SKRS-half-written"), 0o644)
	l = mustOpen(t, dir, smallConfig(nil))
	defer l.Close()
	if got := readAll(t, l); len(got) != 1 || !bytes.Equal(got[0], want) || l.LastIndex() != 4 {
		t.Fatalf("log changed by a damaged marker: %d batches, last index %d", len(got), l.LastIndex())
	}
}
