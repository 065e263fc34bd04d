package log

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// CheckpointInfo describes a checkpoint written by Log.Checkpoint.
type CheckpointInfo struct {
	StartOffset int64
	NextOffset  int64
	LastIndex   uint64
	Segments    []SegmentInfo // as found in the checkpoint directory
}

// Checkpoint writes a consistent, durable copy of the log as it is now into
// dst (created; must be empty), cheaply: sealed segments are hard-linked
// (copied only where linking fails, e.g. across file systems) and the active
// segment's committed prefix is copied. Open(dst) then yields a log with the
// same batches, NextOffset and LastIndex. This is the building block for
// snapshots: a checkpoint directory can be streamed to another replica, which
// opens it as its log.
//
// Appends may continue meanwhile; they are not part of the checkpoint. The
// source log is made durable up to the checkpoint first (see Sync), so a
// snapshot that covers index LastIndex never depends on unsynced data, and
// the checkpoint's sealed segments carry their index files.
func (l *Log) Checkpoint(dst string) (CheckpointInfo, error) {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return CheckpointInfo{}, ErrClosed
	}
	v := l.view.Load()
	infos := make([]SegmentInfo, len(v.segs))
	for i, s := range v.segs {
		s.acquire() // cannot fail: the view holds a reference and we hold mu
		infos[i] = s.info()
	}
	active := v.active()
	size, next := active.extent()
	batches := active.batches
	floor := l.floor.Load()
	info := CheckpointInfo{StartOffset: l.startOf(v), NextOffset: next, LastIndex: active.lastIndex.Load()}
	// Retention waits until the files are linked: a sealed segment deleted
	// halfway would leave the checkpoint with a data file but no journal.
	l.checkpoints++
	resets := l.resets
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.checkpoints--
		l.mu.Unlock()
		for _, s := range v.segs {
			s.release()
		}
	}()

	if err := l.syncView(v); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: %w", err)
	}
	ents, err := os.ReadDir(dst)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: %w", err)
	}
	if len(ents) > 0 {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: %s is not empty", dst)
	}
	for _, s := range v.segs[:len(v.segs)-1] {
		if err := linkSealed(s, dst); err != nil {
			return CheckpointInfo{}, fmt.Errorf("checkpoint segment %d: %w", s.base, err)
		}
	}
	if err := copyActive(active, dst, size, batches); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint segment %d: %w", active.base, err)
	}
	if floor > v.start() {
		if err := writeStartFile(dst, floor); err != nil {
			return CheckpointInfo{}, fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := syncDir(dst); err != nil {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: %w", err)
	}
	l.mu.Lock()
	reset := l.resets != resets
	l.mu.Unlock()
	if reset {
		return CheckpointInfo{}, fmt.Errorf("checkpoint: the log was reset meanwhile")
	}
	for i, s := range v.segs {
		si := infos[i]
		si.DataPath = segmentPath(dst, s.base, dataSuffix)
		si.JournalPath = segmentPath(dst, s.base, journalSuffix)
		if s != active {
			si.IndexPath = segmentPath(dst, s.base, indexSuffix)
			si.TimeIndexPath = segmentPath(dst, s.base, timeIndexSuffix)
		}
		info.Segments = append(info.Segments, si)
	}
	return info, nil
}

// linkSealed hard-links (or copies) the files of a sealed segment into dst.
// Sealed files never change in place, so a link is a consistent copy.
func linkSealed(s *segment, dst string) error {
	for _, suffix := range segmentSuffixes {
		src, to := segmentPath(s.dir, s.base, suffix), segmentPath(dst, s.base, suffix)
		err := os.Link(src, to)
		if err == nil {
			continue
		}
		if suffix == dataSuffix {
			// Not linkable (another file system): copy through the open
			// descriptor.
			if err := copyFilePrefix(to, s.data, s.size()); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // derived or optional: Open rebuilds what it needs
		}
		f, oerr := os.Open(src)
		if oerr != nil {
			continue
		}
		fi, serr := f.Stat()
		if serr == nil {
			serr = copyFilePrefix(to, f, fi.Size())
		}
		f.Close()
		if serr != nil {
			return serr
		}
	}
	return nil
}

// copyActive copies the committed prefix of the active segment's data and
// journal; both only grow past it.
func copyActive(s *segment, dst string, size, batches int64) error {
	if err := copyFilePrefix(segmentPath(dst, s.base, dataSuffix), s.data, size); err != nil {
		return err
	}
	jf, err := os.Open(segmentPath(s.dir, s.base, journalSuffix))
	if err != nil {
		return err
	}
	defer jf.Close()
	return copyFilePrefix(segmentPath(dst, s.base, journalSuffix), jf, journalSize(batches))
}
