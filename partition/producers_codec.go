package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// The producer state's snapshot encoding, version 1. All integers are
// varints (encoding/binary), zigzag where marked "varint":
//
//	version      1 byte (1)
//	count        uvarint
//	count times, least recently appended producer first:
//	  producerId   uvarint
//	  epoch        varint
//	  lastAppend   varint Unix ns for the first producer; for the others
//	               uvarint ns after the previous producer's (never negative:
//	               the table's clock is monotonic)
//	  batches      uvarint, 1..5
//	  batches times, oldest first:
//	    firstSeq         uvarint (uint32 bits)
//	    lastSeq-firstSeq uvarint (uint32 bits, wrapping)
//	    baseOffset       varint, minus the previous batch's lastOffset
//	                     (0 for the first batch; int64 wrapping)
//	    lastOffset-base  varint (int64 wrapping)
//	crc          4 bytes big-endian, CRC-32C of everything before it
//
// Producers are written in recency order rather than sorted by ID because the
// order is part of the state (it decides which producer the cap evicts
// next): writing it costs nothing, where a sorted encoding would need a rank
// per producer. The output is still canonical: equal tables encode to equal
// bytes. The wrapping differences encode any value record can store, so
// every table's encoding decodes.
const (
	producerStateVersion = 1
	producerStateCRCSize = 4
	// producerStateMinEntry is the fewest bytes a producer takes: four
	// 1-byte varints and one batch of four. It bounds the count field
	// before anything is allocated for it.
	producerStateMinEntry = 8
)

// Errors of decoding a producer-state snapshot, carried by
// *ProducerStateError.
var (
	// ErrCorruptProducerState means the bytes are not a valid encoding: a
	// checksum mismatch, truncation, or a field out of range.
	ErrCorruptProducerState = errors.New("corrupt producer state")
	// ErrUnsupportedProducerStateVersion means the bytes were written by a
	// newer (or unknown) version of Skiff.
	ErrUnsupportedProducerStateVersion = errors.New("unsupported producer state version")
)

// ProducerStateError describes what is wrong with an encoded producer state
// and where.
type ProducerStateError struct {
	Offset int    // byte offset of the bad field in the encoding
	Field  string // e.g. "crc", "producer[3].epoch"
	Err    error  // ErrCorruptProducerState or ErrUnsupportedProducerStateVersion
	Detail string // optional human detail
}

func (e *ProducerStateError) Error() string {
	msg := fmt.Sprintf("producer state %s at byte %d: %v", e.Field, e.Offset, e.Err)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

func (e *ProducerStateError) Unwrap() error { return e.Err }

// marshalBinary encodes the whole table for a snapshot. It reads the table
// without modifying it, so the FSM must call it where it owns the table
// (in FSM.Snapshot, not in the FSMSnapshot's Persist, which runs
// concurrently with Apply).
func (t *producerTable) marshalBinary() []byte {
	b := make([]byte, 0, 16+len(t.byID)*(producerStateMinEntry+8*producerBatchesRetained))
	b = append(b, producerStateVersion)
	b = binary.AppendUvarint(b, uint64(len(t.byID)))
	for p := t.oldest; p != nil; p = p.next {
		b = binary.AppendUvarint(b, uint64(p.id))
		b = binary.AppendVarint(b, int64(p.epoch))
		if p.prev == nil {
			b = binary.AppendVarint(b, p.lastAppend)
		} else {
			b = binary.AppendUvarint(b, uint64(p.lastAppend)-uint64(p.prev.lastAppend))
		}
		b = binary.AppendUvarint(b, uint64(p.n))
		var prevLast int64
		for i := 0; i < int(p.n); i++ {
			ab := p.batch(i)
			b = binary.AppendUvarint(b, uint64(uint32(ab.firstSeq)))
			b = binary.AppendUvarint(b, uint64(uint32(ab.lastSeq)-uint32(ab.firstSeq)))
			b = binary.AppendVarint(b, ab.baseOffset-prevLast)
			b = binary.AppendVarint(b, ab.lastOffset-ab.baseOffset)
			prevLast = ab.lastOffset
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// unmarshalProducerTable decodes a table encoded by marshalBinary. It
// returns a *ProducerStateError on any malformed input and never panics.
// If the encoding holds more producers than cfg allows (the limit was
// lowered), the least recently appended are dropped, as the cap would have.
// Expired producers are dropped lazily by the next record, as always.
func unmarshalProducerTable(b []byte, cfg producerConfig) (*producerTable, error) {
	if len(b) < 1+1+producerStateCRCSize {
		return nil, &ProducerStateError{Offset: 0, Field: "length", Err: ErrCorruptProducerState,
			Detail: fmt.Sprintf("%d bytes is shorter than an empty table", len(b))}
	}
	body := b[:len(b)-producerStateCRCSize]
	want := binary.BigEndian.Uint32(b[len(body):])
	if got := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)); got != want {
		return nil, &ProducerStateError{Offset: len(body), Field: "crc", Err: ErrCorruptProducerState,
			Detail: fmt.Sprintf("computed %#08x, stored %#08x", got, want)}
	}
	if body[0] != producerStateVersion {
		return nil, &ProducerStateError{Offset: 0, Field: "version", Err: ErrUnsupportedProducerStateVersion,
			Detail: fmt.Sprintf("version %d, this build reads %d", body[0], producerStateVersion)}
	}
	d := producerStateDecoder{b: body, off: 1, producer: -1, batch: -1}
	count := int(d.uvarint("count", uint64((len(body)-d.off)/producerStateMinEntry)))
	t := newProducerTable(cfg)
	t.byID = make(map[int64]*producerState, count)
	for i := 0; i < count && d.err == nil; i++ {
		d.producer = i
		p := d.readProducer(t.newest)
		if d.err != nil {
			break
		}
		if t.byID[p.id] != nil {
			d.fail("producerId", fmt.Sprintf("producer %d appears twice", p.id))
			break
		}
		t.byID[p.id] = p
		t.pushNewest(p)
	}
	d.producer = -1
	if d.err == nil && d.off != len(body) {
		d.fail("end", fmt.Sprintf("%d unexpected bytes after the last producer", len(body)-d.off))
	}
	if d.err != nil {
		return nil, d.err
	}
	for len(t.byID) > t.cfg.MaxProducers {
		t.remove(t.oldest)
	}
	return t, nil
}

// producerStateDecoder reads fields of an encoded table. After the first
// error every read returns zero, so callers check err once per producer.
// The position (producer, batch; -1 when outside one) names the field in
// errors; it is formatted only on failure, which keeps decoding a large
// table fast.
type producerStateDecoder struct {
	b               []byte
	off             int
	producer, batch int
	err             *ProducerStateError
}

func (d *producerStateDecoder) fail(field, detail string) {
	if d.err != nil {
		return
	}
	switch {
	case d.batch >= 0:
		field = fmt.Sprintf("producer[%d].batch[%d].%s", d.producer, d.batch, field)
	case d.producer >= 0:
		field = fmt.Sprintf("producer[%d].%s", d.producer, field)
	}
	d.err = &ProducerStateError{Offset: d.off, Field: field, Err: ErrCorruptProducerState, Detail: detail}
}

// uvarint reads an unsigned varint no greater than limit.
func (d *producerStateDecoder) uvarint(field string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	if v > limit {
		d.fail(field, fmt.Sprintf("%d exceeds %d", v, limit))
		return 0
	}
	d.off += n
	return v
}

// varint reads a zigzag varint within [lo, hi].
func (d *producerStateDecoder) varint(field string, lo, hi int64) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(field, "truncated or overlong varint")
		return 0
	}
	if v < lo || v > hi {
		d.fail(field, fmt.Sprintf("%d outside [%d, %d]", v, lo, hi))
		return 0
	}
	d.off += n
	return v
}

// readProducer reads one producer; prev is the one read before it.
func (d *producerStateDecoder) readProducer(prev *producerState) *producerState {
	p := &producerState{}
	p.id = int64(d.uvarint("producerId", math.MaxInt64))
	p.epoch = int16(d.varint("epoch", math.MinInt16, math.MaxInt16))
	if prev == nil {
		p.lastAppend = d.varint("lastAppend", math.MinInt64, math.MaxInt64)
	} else {
		// The clock is monotonic: the gap must not carry past MaxInt64.
		// The unsigned difference is exact even when lastAppend < 0, and
		// the wrapping sum is then exact too.
		gap := d.uvarint("lastAppend", uint64(math.MaxInt64)-uint64(prev.lastAppend))
		p.lastAppend = prev.lastAppend + int64(gap)
	}
	n := int(d.uvarint("batches", producerBatchesRetained))
	if d.err == nil && n == 0 {
		d.fail("batches", "a tracked producer has at least one batch")
	}
	var prevLast int64
	for j := 0; j < n && d.err == nil; j++ {
		d.batch = j
		var ab appendedBatch
		ab.firstSeq = int32(uint32(d.uvarint("firstSeq", math.MaxUint32)))
		ab.lastSeq = int32(uint32(ab.firstSeq) + uint32(d.uvarint("lastSeq", math.MaxUint32)))
		ab.baseOffset = prevLast + d.varint("baseOffset", math.MinInt64, math.MaxInt64)
		ab.lastOffset = ab.baseOffset + d.varint("lastOffset", math.MinInt64, math.MaxInt64)
		prevLast = ab.lastOffset
		p.push(ab)
	}
	d.batch = -1
	return p
}
