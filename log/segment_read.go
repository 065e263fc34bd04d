package log

import (
	"errors"
	"fmt"
	"io"

	"github.com/skiff-mq/skiff/record"
)

// readWindow is a window of a segment's data file starting at start that
// grows on demand, never past limit (the committed size). It exists so that
// a read costs one pread in the common case: the first growth reads the
// whole expected range at once.
type readWindow struct {
	f     io.ReaderAt
	base  int64 // segment base offset, for error messages
	start int64
	limit int64
	hint  int64 // size of the first read
	buf   []byte
}

// ensure makes the window hold at least n bytes; n <= limit-start.
func (w *readWindow) ensure(n int64) error {
	have := int64(len(w.buf))
	if n <= have {
		return nil
	}
	want := min(max(n, w.hint, 2*have), w.limit-w.start)
	if int64(cap(w.buf)) >= want {
		w.buf = w.buf[:want]
	} else {
		nb := make([]byte, want)
		copy(nb, w.buf)
		w.buf = nb
	}
	if _, err := w.f.ReadAt(w.buf[have:want], w.start+have); err != nil {
		w.buf = w.buf[:have]
		if errors.Is(err, io.EOF) {
			return corruptf("segment %d shorter than its committed size %d", w.base, w.limit)
		}
		return fmt.Errorf("read segment %d at position %d: %w", w.base, w.start+have, err)
	}
	return nil
}

// frameAt parses the batch frame at window position p and checks that it
// continues the offsets (expect) and ends inside the committed data.
func (w *readWindow) frameAt(p, expect int64) (frame, error) {
	if w.start+p+record.HeaderSize > w.limit {
		return frame{}, corruptf("segment %d: truncated batch header at position %d", w.base, w.start+p)
	}
	if err := w.ensure(p + record.HeaderSize); err != nil {
		return frame{}, err
	}
	f, ok := peekFrame(w.buf[p:])
	if !ok || f.base != expect || w.start+p+f.size > w.limit {
		return frame{}, corruptf("segment %d: bad batch at position %d (base offset %d, expected %d)",
			w.base, w.start+p, f.base, expect)
	}
	return f, nil
}

// read returns whole batches of s, concatenated, starting with the batch that
// contains offset, while their total stays within budget; when mustOne, the
// first batch is returned even if it alone is larger (KIP-74). atEnd reports
// that the batches reach the segment's committed end, so a caller with budget
// left may continue in the next segment.
//
// The sparse index gives the position of a batch at most about one index
// interval before the target; one pread covers that interval plus the budget,
// and the headers in between are parsed from memory.
func (s *segment) read(offset, budget int64, mustOne bool, cfg *Config) (out []byte, atEnd bool, err error) {
	es, _ := s.indexes(cfg)
	size, next := s.extent()
	if offset >= next {
		return nil, true, nil
	}
	e := floorIndex(es, uint32(offset-s.base))
	start, expect := int64(e.pos), s.base+int64(e.rel)
	if start >= size {
		start, expect = 0, s.base
	}
	budget = min(budget, size)
	w := readWindow{f: s.data, base: s.base, start: start, limit: size,
		hint: int64(cfg.IndexIntervalBytes) + max(budget, record.HeaderSize)}

	var p int64
	for {
		f, err := w.frameAt(p, expect)
		if err != nil {
			return nil, false, err
		}
		if offset < f.next() {
			break
		}
		p, expect = p+f.size, f.next()
	}
	q := p
	for start+q < size {
		f, err := w.frameAt(q, expect)
		if err != nil {
			return nil, false, err
		}
		if q+f.size-p > budget && !(mustOne && q == p) {
			break
		}
		if err := w.ensure(q + f.size); err != nil {
			return nil, false, err
		}
		q, expect = q+f.size, f.next()
	}
	return w.buf[p:q:q], start+q == size, nil
}

// headerReader reads batch headers at arbitrary positions through a small
// cache, so walking many small batches costs few syscalls and walking large
// ones reads only their headers.
type headerReader struct {
	f        io.ReaderAt
	base     int64
	limit    int64
	buf      []byte
	bufStart int64
	bufLen   int
}

const headerReaderChunk = 16 << 10

func (r *headerReader) at(pos int64) ([]byte, error) {
	if pos+record.HeaderSize > r.limit {
		return nil, corruptf("segment %d: truncated batch header at position %d", r.base, pos)
	}
	if pos >= r.bufStart && pos+record.HeaderSize <= r.bufStart+int64(r.bufLen) {
		return r.buf[pos-r.bufStart:], nil
	}
	if r.buf == nil {
		r.buf = make([]byte, headerReaderChunk)
	}
	n := int(min(int64(len(r.buf)), r.limit-pos))
	if _, err := r.f.ReadAt(r.buf[:n], pos); err != nil {
		r.bufLen = 0
		return nil, fmt.Errorf("read segment %d at position %d: %w", r.base, pos, err)
	}
	r.bufStart, r.bufLen = pos, n
	return r.buf, nil
}

// findTimestamp returns the base offset of the first committed batch of s
// whose MaxTimestamp >= ts. When there is none it returns the segment's next
// offset as of the same committed extent, and found is false.
func (s *segment) findTimestamp(ts int64, cfg *Config) (off int64, found bool, err error) {
	es, tes := s.indexes(cfg)
	size, next := s.extent()
	start, expect := int64(0), s.base
	if k := lastBefore(tes, ts); k >= 0 {
		// Every batch up to tes[k]'s has MaxTimestamp < ts: start near it.
		e := floorIndex(es, tes[k].rel)
		start, expect = int64(e.pos), s.base+int64(e.rel)
		if start >= size {
			start, expect = 0, s.base
		}
	}
	r := headerReader{f: s.data, base: s.base, limit: size}
	for pos := start; pos < size; {
		b, err := r.at(pos)
		if err != nil {
			return 0, false, err
		}
		f, ok := peekFrame(b)
		if !ok || f.base != expect || pos+f.size > size {
			return 0, false, corruptf("segment %d: bad batch at position %d", s.base, pos)
		}
		if f.maxTs >= ts {
			return f.base, true, nil
		}
		pos, expect = pos+f.size, f.next()
	}
	return next, false, nil
}
