package log

import "fmt"

// ApplyRetention deletes whole segments from the old end of the log while
// they are older than RetentionAge (their newest batch MaxTimestamp is before
// Now - RetentionAge) or while the log without them still holds at least
// RetentionBytes, and advances LogStartOffset past them. It never deletes the
// active segment and stops at the first segment that is to be kept, like
// Kafka, so the log stays a contiguous range of offsets.
//
// Readers of the deleted segments finish their reads; later reads below the
// new start get *OffsetOutOfRangeError. While a Checkpoint is linking files,
// ApplyRetention deletes nothing (and returns 0): call it again later.
func (l *Log) ApplyRetention() (deletedSegments int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if l.checkpoints > 0 {
		return 0, nil // next time: a checkpoint is linking these files
	}
	cfg := l.cfg.Load()
	v := l.view.Load()
	return l.dropOldest(v, max(l.retentionCut(cfg, v), l.belowStart(v)))
}

// retentionCut counts the oldest segments retention lets go.
func (l *Log) retentionCut(cfg *Config, v *view) int {
	var total int64
	for _, s := range v.segs {
		total += s.size()
	}
	nowMs := cfg.Now().UnixMilli()
	n := 0
	for ; n < len(v.segs)-1; n++ {
		s := v.segs[n]
		byAge := cfg.RetentionAge > 0 && s.maxTs.Load() < nowMs-cfg.RetentionAge.Milliseconds()
		bySize := cfg.RetentionBytes >= 0 && total-s.size() >= cfg.RetentionBytes
		if !byAge && !bySize {
			break
		}
		total -= s.size()
	}
	return n
}

// DeleteBefore deletes the oldest segments whose records all lie below
// offset (never the active one) and advances LogStartOffset past them: the
// prefix deletion of a log its owner compacts itself, such as the offsets
// log after a checkpoint. Like ApplyRetention it deletes nothing while a
// Checkpoint is linking files.
func (l *Log) DeleteBefore(offset int64) (deletedSegments int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	if l.checkpoints > 0 {
		return 0, nil
	}
	v := l.view.Load()
	n := 0
	for n < len(v.segs)-1 && v.segs[n+1].base <= offset {
		n++
	}
	return l.dropOldest(v, n)
}

// dropOldest removes the first n segments of v from the log. l.mu is held.
func (l *Log) dropOldest(v *view, n int) (deletedSegments int, err error) {
	if n == 0 {
		return 0, nil
	}
	l.view.Store(&view{segs: append([]*segment(nil), v.segs[n:]...)})
	for _, s := range v.segs[:n] {
		if rerr := s.removeFiles(); rerr != nil && err == nil {
			err = rerr
		}
		s.release()
	}
	if serr := syncDir(l.dir); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		// The segments are out of the log either way; files that could not be
		// deleted come back as the log's oldest segments at the next Open.
		return n, fmt.Errorf("apply retention: %w", err)
	}
	return n, nil
}
