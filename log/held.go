package log

import "sort"

// Bytes and boundaries counted from the log start, for bounded topics
// (max.bytes). They are sums of batch sizes, so two replicas holding the
// same batches get the same answers whatever their segment boundaries
// (which depend on local roll times).

// HeldBytes is the number of data bytes from the batch that holds the log
// start offset to the end: what a reader starting at the log start can
// still get.
func (l *Log) HeldBytes() (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	v := l.view.Load()
	start := l.startOf(v)
	i := v.find(start)
	s := v.segs[i]
	pos, err := s.batchPosOf(start, l.cfg.Load())
	if err != nil {
		return 0, err
	}
	n := s.size() - pos
	for _, s := range v.segs[i+1:] {
		n += s.size()
	}
	return n, nil
}

// StartKeepingBytes returns the lowest batch base offset, at or above the
// log start, from which the batches up to the end take at most maxBytes
// (the end itself when not even the newest batch fits). Passing it to
// AdvanceStart makes the log hold at most maxBytes.
func (l *Log) StartKeepingBytes(maxBytes int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return 0, ErrClosed
	}
	v := l.view.Load()
	start := l.startOf(v)
	// tail[i] = bytes of segments after i.
	var tail int64
	i := len(v.segs) - 1
	for ; i > 0 && tail+v.segs[i].size() <= maxBytes; i-- {
		tail += v.segs[i].size()
	}
	s := v.segs[i]
	if s.nextOffset() <= start {
		return start, nil // everything from the start already fits
	}
	target := max(s.size()-(maxBytes-tail), 0)
	off, err := s.firstBatchFrom(target, l.cfg.Load())
	if err != nil {
		return 0, err
	}
	return max(off, start), nil
}

// batchPosOf returns the position of the batch of s that holds offset
// (the segment's size when offset is at or past its end).
func (s *segment) batchPosOf(offset int64, cfg *Config) (int64, error) {
	es, _ := s.indexes(cfg)
	size, next := s.extent()
	if offset >= next {
		return size, nil
	}
	e := floorIndex(es, uint32(max(offset-s.base, 0)))
	pos, expect := int64(e.pos), s.base+int64(e.rel)
	if pos >= size {
		pos, expect = 0, s.base
	}
	r := headerReader{f: s.data, base: s.base, limit: size}
	for pos < size {
		b, err := r.at(pos)
		if err != nil {
			return 0, err
		}
		f, ok := peekFrame(b)
		if !ok || f.base != expect || pos+f.size > size {
			return 0, corruptf("segment %d: bad batch at position %d", s.base, pos)
		}
		if offset < f.next() {
			return pos, nil
		}
		pos, expect = pos+f.size, f.next()
	}
	return size, nil
}

// firstBatchFrom returns the base offset of the first batch of s that
// starts at or after position target (the segment's next offset when none
// does).
func (s *segment) firstBatchFrom(target int64, cfg *Config) (int64, error) {
	es, _ := s.indexes(cfg)
	size, next := s.extent()
	k := sort.Search(len(es), func(i int) bool { return int64(es[i].pos) > target })
	pos, expect := int64(0), s.base
	if k > 0 && int64(es[k-1].pos) < size {
		pos, expect = int64(es[k-1].pos), s.base+int64(es[k-1].rel)
	}
	r := headerReader{f: s.data, base: s.base, limit: size}
	for pos < size {
		if pos >= target {
			return expect, nil
		}
		b, err := r.at(pos)
		if err != nil {
			return 0, err
		}
		f, ok := peekFrame(b)
		if !ok || f.base != expect || pos+f.size > size {
			return 0, corruptf("segment %d: bad batch at position %d", s.base, pos)
		}
		pos, expect = pos+f.size, f.next()
	}
	return next, nil
}
