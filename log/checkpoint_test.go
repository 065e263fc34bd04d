package log

import (
	"bytes"
	"path/filepath"
	"testing"
)

func TestCheckpointIsAConsistentIndependentCopy(t *testing.T) {
	cfg := smallConfig(nil)
	cfg.RetentionBytes = 0
	src := t.TempDir()
	l := mustOpen(t, src, cfg)
	defer l.Close()
	for i := 0; i < 25; i++ {
		mustAppend(t, l, testBatch(2, 150, int64(i), int64(i), byte(i)), uint64(i+1))
	}
	want := readAll(t, l)

	dst := filepath.Join(t.TempDir(), "snap")
	info, err := l.Checkpoint(dst)
	if err != nil {
		t.Fatal(err)
	}
	if info.NextOffset != 50 || info.LastIndex != 25 || info.StartOffset != 0 || len(info.Segments) != len(l.Segments()) {
		t.Fatalf("checkpoint info %+v", info)
	}

	// The source moves on: appends, and retention deletes everything sealed.
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 150, 0, 0, 0xF0), uint64(100+i))
	}
	if _, err := l.ApplyRetention(); err != nil {
		t.Fatal(err)
	}

	c := mustOpen(t, dst, cfg)
	defer c.Close()
	got := readAll(t, c)
	if len(got) != len(want) || c.NextOffset() != 50 || c.LastIndex() != 25 {
		t.Fatalf("checkpoint opened with %d batches, next %d, last index %d", len(got), c.NextOffset(), c.LastIndex())
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs in the checkpoint", i)
		}
	}
	if off, _ := c.FindOffsetByTimestamp(7); off != 14 {
		t.Fatalf("FindOffsetByTimestamp in the checkpoint = %d, want 14", off)
	}

	// And the checkpoint's log can be written without touching the source.
	srcNext, srcIndex, srcBatches := l.NextOffset(), l.LastIndex(), readAll(t, l)
	for i := 0; i < 10; i++ {
		mustAppend(t, c, testBatch(1, 150, 0, 0, 0x0F), uint64(30+i))
	}
	if l.NextOffset() != srcNext || l.LastIndex() != srcIndex {
		t.Fatal("writing the checkpoint changed the source")
	}
	after := readAll(t, l)
	if len(after) != len(srcBatches) {
		t.Fatal("writing the checkpoint changed the source's batches")
	}
	for i := range after {
		if !bytes.Equal(after[i], srcBatches[i]) {
			t.Fatalf("source batch %d changed", i)
		}
	}
}

func TestCheckpointNeedsAnEmptyDirectory(t *testing.T) {
	l := mustOpen(t, t.TempDir(), smallConfig(nil))
	defer l.Close()
	mustAppend(t, l, testBatch(1, 10, 0, 0, 0), 1)
	dst := t.TempDir()
	if _, err := l.Checkpoint(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Checkpoint(dst); err == nil {
		t.Fatal("checkpoint into a non-empty directory succeeded")
	}
}

func TestRetentionWaitsForACheckpointInProgress(t *testing.T) {
	cfg := smallConfig(nil)
	cfg.RetentionBytes = 0
	l := mustOpen(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 10; i++ {
		mustAppend(t, l, testBatch(1, 300, 0, 0, 0), uint64(i))
	}
	l.mu.Lock()
	l.checkpoints++ // as Checkpoint does while it links files
	l.mu.Unlock()
	if n, err := l.ApplyRetention(); n != 0 || err != nil {
		t.Fatalf("ApplyRetention during a checkpoint = %d, %v", n, err)
	}
	l.mu.Lock()
	l.checkpoints--
	l.mu.Unlock()
	if n, err := l.ApplyRetention(); n == 0 || err != nil {
		t.Fatalf("ApplyRetention after the checkpoint = %d, %v", n, err)
	}
}
