package log

// Read returns whole batches, concatenated, starting with the batch that
// contains offset, adding batches while the total stays within maxBytes, but
// always at least one whole batch even if it is larger (Kafka KIP-74), so a
// consumer can never get stuck behind a large batch. It continues into the
// following segments while budget remains.
//
// Reading at NextOffset returns (nil, nil): nothing yet; wait on Changed.
// An offset below LogStartOffset or above NextOffset gets an
// *OffsetOutOfRangeError carrying the valid range. The returned slice is the
// caller's; batches are returned exactly as appended (base offset stamped).
func (l *Log) Read(offset int64, maxBytes int) ([]byte, error) {
	for {
		if l.closed.Load() {
			return nil, ErrClosed
		}
		v := l.view.Load()
		start, end := l.startOf(v), v.active().nextOffset()
		if offset == end {
			return nil, nil
		}
		if offset < start || offset > end {
			if l.view.Load() != v {
				continue // a roll or reset raced with us: judge by the new view
			}
			return nil, &OffsetOutOfRangeError{Offset: offset, Start: start, End: end}
		}
		out, ok, err := l.readView(v, offset, int64(max(maxBytes, 0)))
		if !ok {
			continue
		}
		return out, err
	}
}

// readView reads from the segments of v; ok is false when the first segment
// was released meanwhile (retention, reset or close) and the caller must look
// again.
func (l *Log) readView(v *view, offset, budget int64) (out []byte, ok bool, err error) {
	cfg := l.cfg.Load()
	i := v.find(offset)
	s := v.segs[i]
	if !s.acquire() {
		return nil, false, nil
	}
	out, atEnd, err := s.read(offset, budget, true, cfg)
	s.release()
	if err != nil {
		return nil, true, err
	}
	for i++; atEnd && i < len(v.segs) && int64(len(out)) < budget; i++ {
		s := v.segs[i]
		if !s.acquire() {
			break
		}
		more, end, err := s.read(s.base, budget-int64(len(out)), false, cfg)
		s.release()
		if err != nil || len(more) == 0 {
			// Return what we have; a read from here will report the error.
			break
		}
		out = append(out, more...)
		atEnd = end
	}
	return out, true, nil
}

// FindOffsetByTimestamp returns the base offset of the first batch whose
// MaxTimestamp is >= ts (Kafka ListOffsets semantics at batch granularity:
// the consumer skips records of that batch older than ts), or NextOffset if
// there is none. math.MinInt64 finds the first batch.
func (l *Log) FindOffsetByTimestamp(ts int64) (int64, error) {
	for {
		if l.closed.Load() {
			return 0, ErrClosed
		}
		v := l.view.Load()
		off, ok, err := l.findInView(v, ts)
		if !ok {
			continue
		}
		if err == nil && off == v.active().nextOffset() && l.view.Load() != v {
			continue // nothing found, but the log rolled meanwhile: look again
		}
		return off, err
	}
}

func (l *Log) findInView(v *view, ts int64) (off int64, ok bool, err error) {
	cfg := l.cfg.Load()
	for i, s := range v.segs {
		last := i == len(v.segs)-1
		// A sealed segment's newest timestamp is known: skip it cheaply.
		if !last && s.maxTs.Load() < ts {
			continue
		}
		if !s.acquire() {
			return 0, false, nil
		}
		off, found, err := s.findTimestamp(ts, cfg)
		s.release()
		if err != nil {
			return 0, true, err
		}
		if found || last {
			return off, true, nil
		}
	}
	return v.active().nextOffset(), true, nil
}
