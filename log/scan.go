package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/skiff-mq/skiff/record"
)

// scanStop says where and why a scan of a data file stopped before its end:
// a torn or corrupt batch. Recovery truncates there.
type scanStop struct {
	pos    int64
	reason string
}

func (e *scanStop) Error() string {
	return fmt.Sprintf("batch at position %d: %s", e.pos, e.reason)
}

// batchScanner reads a segment's data file from the start, verifying every
// batch fully (record.Verify) and checking that base offsets follow on.
// It reads in large chunks, so a scan costs one pread per MiB, not per batch.
type batchScanner struct {
	f        io.ReaderAt
	base     int64 // segment base offset
	limit    int64 // bytes of the file to consider
	maxBatch int64

	pos  int64 // file position of the next batch
	next int64 // expected base offset of the next batch

	buf      []byte
	bufStart int64 // file position of buf[0]
	bufLen   int   // valid bytes in buf
}

const scanChunk = 1 << 20

func newBatchScanner(f io.ReaderAt, base, limit int64, maxBatch int) *batchScanner {
	return &batchScanner{f: f, base: base, limit: limit, maxBatch: int64(maxBatch),
		next: base, buf: make([]byte, min(int64(scanChunk), max(limit, record.HeaderSize)))}
}

// scan returns the next intact batch (the slice is valid until the next call),
// io.EOF at the end of the data, a *scanStop at the first torn or corrupt
// batch, or an I/O error.
func (sc *batchScanner) scan() (batch []byte, h record.BatchHeader, pos int64, err error) {
	pos = sc.pos
	stop := func(format string, args ...any) (_ []byte, _ record.BatchHeader, _ int64, err error) {
		return nil, record.BatchHeader{}, pos, &scanStop{pos: pos, reason: fmt.Sprintf(format, args...)}
	}
	if pos >= sc.limit {
		return nil, record.BatchHeader{}, pos, io.EOF
	}
	if sc.limit-pos < record.LogOverhead {
		return stop("torn length field")
	}
	b, err := sc.fill(record.LogOverhead)
	if err != nil {
		return nil, record.BatchHeader{}, pos, err
	}
	length := int64(int32(binary.BigEndian.Uint32(b[8:12])))
	size := length + record.LogOverhead
	switch {
	case length < record.HeaderSize-record.LogOverhead:
		return stop("batch length %d too short", length)
	case size > sc.maxBatch:
		return stop("batch size %d above MaxBatchBytes %d", size, sc.maxBatch)
	case pos+size > sc.limit:
		return stop("torn batch: %d bytes of %d", sc.limit-pos, size)
	case pos+size > math.MaxUint32:
		// Index entries store positions as uint32; a segment never grows past it.
		return stop("segment beyond 4 GiB")
	}
	if b, err = sc.fill(int(size)); err != nil {
		return nil, record.BatchHeader{}, pos, err
	}
	h, verr := record.Verify(b)
	switch {
	case verr != nil:
		return stop("%v", verr)
	case h.BaseOffset != sc.next:
		return stop("base offset %d, expected %d", h.BaseOffset, sc.next)
	case h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1:
		return stop("offsets overflow")
	case h.LastOffset()-sc.base > math.MaxUint32-1:
		return stop("relative offset beyond 32 bits")
	}
	sc.pos += size
	sc.next = h.NextOffset()
	return b, h, pos, nil
}

// fill returns the n bytes at sc.pos, reading more of the file as needed.
// The caller has checked that sc.pos+n <= sc.limit.
func (sc *batchScanner) fill(n int) ([]byte, error) {
	off := int(sc.pos - sc.bufStart)
	if off+n <= sc.bufLen {
		return sc.buf[off : off+n], nil
	}
	sc.bufLen = copy(sc.buf, sc.buf[off:sc.bufLen])
	sc.bufStart = sc.pos
	if n > len(sc.buf) {
		nb := make([]byte, n)
		copy(nb, sc.buf[:sc.bufLen])
		sc.buf = nb
	}
	want := int(min(int64(len(sc.buf)), sc.limit-sc.bufStart))
	m, err := sc.f.ReadAt(sc.buf[sc.bufLen:want], sc.bufStart+int64(sc.bufLen))
	sc.bufLen += m
	if sc.bufLen < n {
		if err == nil || errors.Is(err, io.EOF) {
			// The file is shorter than its size said a moment ago.
			return nil, &scanStop{pos: sc.pos, reason: "file shrank during scan"}
		}
		return nil, err
	}
	return sc.buf[:n], nil
}

// frame is the part of a batch header the read path needs. Reads trust the
// bytes below a segment's committed size (they were verified when appended or
// recovered), so they parse only these fields and check only that they are
// sane enough not to send a reader out of bounds.
type frame struct {
	base      int64
	size      int64
	lastDelta int64
	maxTs     int64
}

func (f frame) next() int64 { return f.base + f.lastDelta + 1 }

// peekFrame parses the frame at the start of b, which holds at least
// record.HeaderSize bytes.
func peekFrame(b []byte) (frame, bool) {
	length := int64(int32(binary.BigEndian.Uint32(b[8:12])))
	f := frame{
		base:      int64(binary.BigEndian.Uint64(b[0:8])),
		size:      length + record.LogOverhead,
		lastDelta: int64(int32(binary.BigEndian.Uint32(b[23:27]))),
		maxTs:     int64(binary.BigEndian.Uint64(b[35:43])),
	}
	return f, length >= record.HeaderSize-record.LogOverhead && f.lastDelta >= 0
}
