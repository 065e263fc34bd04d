package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Reset drops every batch and restarts the log empty at startOffset with
// LastIndex index: what a replica does before installing a snapshot whose
// data starts there. Readers of dropped offsets get *OffsetOutOfRangeError;
// Changed waiters are woken.
//
// Reset is atomic across crashes: it first writes a small marker file
// (reset.pending); from then on Open finishes an interrupted reset, so a
// crash leaves either the old log or the new empty one, never a mix.
func (l *Log) Reset(startOffset int64, index uint64) error {
	if startOffset < 0 {
		return fmt.Errorf("log: reset to negative offset %d", startOffset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return ErrClosed
	}
	old := l.view.Load()
	for _, s := range old.segs {
		s.markDeleted() // a pending flush must not recreate index files
	}
	if err := writeResetMarker(l.dir, startOffset, index); err != nil {
		return fmt.Errorf("reset log: %w", err)
	}
	l.resets++ // files start to go: a checkpoint in progress is void
	s, err := applyReset(l.dir, startOffset, index)
	if err != nil {
		// The marker is durable: the next Open completes the reset.
		err = fmt.Errorf("reset log: %w", err)
		l.fail(err)
		return err
	}
	l.view.Store(&view{segs: []*segment{s}})
	// applyReset removed start.offset: the new log starts at its segment.
	l.floor.Store(0)
	l.startMu.Lock()
	l.savedFloor = 0
	l.startMu.Unlock()
	// The old files are gone; a fresh log has no unknown page-cache state.
	l.failed.Store(nil)
	for _, old := range old.segs {
		old.release()
	}
	l.changed.notify()
	return nil
}

const (
	resetMarkerName = "reset.pending"
	resetMarkerSize = 24
)

var resetMarkerMagic = [4]byte{'S', 'K', 'R', 'S'}

// writeResetMarker durably records a reset that is about to happen:
// magic, startOffset int64, index uint64, CRC-32C of the first 20 bytes.
func writeResetMarker(dir string, startOffset int64, index uint64) error {
	b := make([]byte, resetMarkerSize)
	copy(b, resetMarkerMagic[:])
	binary.BigEndian.PutUint64(b[4:], uint64(startOffset))
	binary.BigEndian.PutUint64(b[12:], index)
	binary.BigEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	if err := writeFileAtomic(filepath.Join(dir, resetMarkerName), b); err != nil {
		return err
	}
	return syncDir(dir)
}

// finishPendingReset completes a reset interrupted by a crash. A marker that
// does not check out was never renamed into place whole, so the reset it
// describes never started: it is removed.
func finishPendingReset(dir string) error {
	path := filepath.Join(dir, resetMarkerName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read reset marker: %w", err)
	}
	if len(b) != resetMarkerSize || [4]byte(b[:4]) != resetMarkerMagic ||
		crc32.Checksum(b[:20], castagnoli) != binary.BigEndian.Uint32(b[20:]) ||
		int64(binary.BigEndian.Uint64(b[4:])) < 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove damaged reset marker: %w", err)
		}
		return syncDir(dir)
	}
	s, err := applyReset(dir, int64(binary.BigEndian.Uint64(b[4:])), binary.BigEndian.Uint64(b[12:]))
	if err != nil {
		return fmt.Errorf("finish reset: %w", err)
	}
	s.release()
	return nil
}

// applyReset deletes every segment file in dir, creates the new empty
// segment and then removes the marker. It is idempotent.
func applyReset(dir string, startOffset int64, index uint64) (*segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		_, _, isSegment := parseSegmentFile(name)
		if isSegment || name == startFileName || (strings.HasSuffix(name, tmpSuffix) && e.Type().IsRegular()) {
			if err := removeIfExists(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
		}
	}
	s, err := createSegment(dir, startOffset, index, true)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		s.release()
		return nil, err
	}
	if err := os.Remove(filepath.Join(dir, resetMarkerName)); err != nil {
		s.release()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}
