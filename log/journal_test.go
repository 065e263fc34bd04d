package log

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestJournalHeaderRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := createJournal(path, 42, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	j.close()
	j, err = openJournal(path, 42)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	if j.prevIndex != 7 {
		t.Fatalf("prevIndex = %d, want 7", j.prevIndex)
	}
	if _, err := openJournal(path, 43); !errors.Is(err, errJournalInvalid) {
		t.Fatalf("open with the wrong base: %v, want errJournalInvalid", err)
	}
	if _, err := openJournal(filepath.Join(t.TempDir(), "missing"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open missing journal: %v", err)
	}
}

func TestJournalHeaderDamageIsDetected(t *testing.T) {
	good := encodeJournalHeader(5, 9)
	for i := range good {
		bad := append([]byte(nil), good...)
		bad[i] ^= 1
		if _, err := decodeJournalHeader(bad, 5); err == nil {
			t.Errorf("flipped header byte %d accepted", i)
		}
	}
	if _, err := decodeJournalHeader(good[:20], 5); err == nil {
		t.Error("short header accepted")
	}
}

func TestJournalEntryIsBoundToItsBatch(t *testing.T) {
	batch := stamped(testBatch(3, 10, 1, 2, 0), 100)
	other := stamped(batch, 101)
	var b [journalEntrySize]byte
	encodeJournalEntry(b[:], journalEntry{index: 12, appendTime: 34}, batch)

	if e, ok := decodeJournalEntry(b[:], batch); !ok || e != (journalEntry{12, 34}) {
		t.Fatalf("decode = %v, %v", e, ok)
	}
	if _, ok := decodeJournalEntry(b[:], other); ok {
		t.Error("entry accepted for a batch with another base offset")
	}
	if _, ok := decodeJournalEntry(b[:], nil); !ok {
		t.Error("entry rejected when checked on its own")
	}
	for i := range b {
		bad := b
		bad[i] ^= 0x10
		if _, ok := decodeJournalEntry(bad[:], batch); ok {
			t.Errorf("flipped entry byte %d accepted", i)
		}
	}
}

func TestJournalWriteReadTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j")
	j, err := createJournal(path, 0, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	batches := [][]byte{stamped(testBatch(1, 0, 0, 0, 1), 0), stamped(testBatch(1, 0, 0, 0, 2), 1), stamped(testBatch(1, 0, 0, 0, 3), 2)}
	for i, b := range batches {
		if err := j.write(int64(i), journalEntry{index: uint64(10 + i)}, b); err != nil {
			t.Fatal(err)
		}
	}
	jr := newJournalReader(j)
	for i, b := range batches {
		e, ok, err := jr.next(b)
		if err != nil || !ok || e.index != uint64(10+i) {
			t.Fatalf("entry %d = %v, %v, %v", i, e, ok, err)
		}
	}
	if _, ok, err := jr.next(batches[0]); ok || err != nil {
		t.Fatalf("read past the end: %v, %v", ok, err)
	}
	if got, err := lastJournalIndex(path, 0); err != nil || got != 12 {
		t.Fatalf("lastJournalIndex = %d, %v, want 12", got, err)
	}
	if err := j.truncate(1); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Size() != journalSize(1) {
		t.Fatalf("size after truncate = %d, want %d", fi.Size(), journalSize(1))
	}
	if got, _ := lastJournalIndex(path, 0); got != 10 {
		t.Fatalf("lastJournalIndex after truncate = %d, want 10", got)
	}
	j.truncate(0)
	if got, _ := lastJournalIndex(path, 0); got != 3 {
		t.Fatalf("lastJournalIndex of an empty journal = %d, want prevIndex 3", got)
	}
}
