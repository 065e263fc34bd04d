package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

// The log start offset can lie inside a segment, even inside a batch: a
// bounded topic that drops its oldest records (a ring buffer) moves it one
// batch at a time, far more finely than whole-segment retention. Kafka keeps
// the same value (its logStartOffset, moved by DeleteRecords) in a
// checkpoint file; so do we, in start.offset:
//
//	magic "SKST", start offset int64, CRC-32C of the first 12 bytes
//
// The file is written (atomically, by rename) when the log is synced, not on
// every AdvanceStart: a caller that needs the start to be exact after a
// crash replays its own operations after the last sync (the partition layer
// replays its Raft tail, which recomputes the start), so only a synced log,
// which is what snapshots are taken of, needs the file current.
//
// Reads below the start fail with *OffsetOutOfRangeError; a read at the
// start returns the whole batch that holds it, and the reader skips the
// records below the offset it asked for, as Kafka consumers do.

const (
	startFileName = "start.offset"
	startFileSize = 16
)

var startFileMagic = [4]byte{'S', 'K', 'S', 'T'}

// startOf is the log start offset of view v: its first segment's base or
// the advanced start, whichever is higher.
func (l *Log) startOf(v *view) int64 {
	return max(v.start(), l.floor.Load())
}

// AdvanceStart moves the log start offset up to offset (never down; at most
// NextOffset). Records below the new start are gone for readers at once;
// the files of segments wholly below it are deleted by DeleteBefore (with
// LogStartOffset) or the next ApplyRetention, whichever the caller runs
// when no snapshot is linking files. The new start is durable after the
// next Sync or Close.
func (l *Log) AdvanceStart(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	v := l.view.Load()
	offset = min(offset, v.active().nextOffset())
	if offset > l.floor.Load() && offset > v.start() {
		l.floor.Store(offset)
		l.changed.notify() // long-polling readers re-check their offset
	}
	return nil
}

// belowStart counts the oldest sealed segments of v that hold no record at
// or above the start.
func (l *Log) belowStart(v *view) int {
	floor := l.floor.Load()
	n := 0
	for n < len(v.segs)-1 && v.segs[n].nextOffset() <= floor {
		n++
	}
	return n
}

// persistStart writes start.offset if the start moved since it was last
// written. It runs inside syncView, so under whatever serializes syncs of
// the same log; startMu makes two concurrent syncs write in order.
func (l *Log) persistStart() error {
	l.startMu.Lock()
	defer l.startMu.Unlock()
	floor := l.floor.Load()
	if floor == l.savedFloor {
		return nil
	}
	if err := writeStartFile(l.dir, floor); err != nil {
		return err
	}
	l.savedFloor = floor
	return nil
}

// writeStartFile durably records start in dir's start.offset.
func writeStartFile(dir string, start int64) error {
	b := make([]byte, startFileSize)
	copy(b, startFileMagic[:])
	binary.BigEndian.PutUint64(b[4:], uint64(start))
	binary.BigEndian.PutUint32(b[12:], crc32.Checksum(b[:12], castagnoli))
	if err := writeFileAtomic(filepath.Join(dir, startFileName), b); err != nil {
		return fmt.Errorf("write log start offset: %w", err)
	}
	return syncDir(dir)
}

// readStartFile returns the start offset saved in dir, 0 when there is
// none. A damaged file is ignored (the start falls back to the first
// segment's base, and the caller's replay moves it up again): it is a
// checkpoint, not the only copy of anything.
func readStartFile(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, startFileName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read log start offset: %w", err)
	}
	if len(b) != startFileSize || [4]byte(b[:4]) != startFileMagic ||
		binary.BigEndian.Uint32(b[12:]) != crc32.Checksum(b[:12], castagnoli) {
		return 0, nil
	}
	return max(int64(binary.BigEndian.Uint64(b[4:])), 0), nil
}
