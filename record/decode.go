package record

import (
	"fmt"
)

// Decode verifies and decodes the single batch that b holds: it checks the
// CRC, decompresses the records section and decodes every record, filling
// in absolute offsets (baseOffset + offsetDelta) and timestamps (for a
// log-append-time batch every record gets maxTimestamp).
//
// It is all or nothing: any defect yields a *FormatError (ErrShortBuffer,
// ErrCorrupt, ErrCRCMismatch, ErrUnsupportedMagic or ErrUnknownCompression)
// and no records. b must hold exactly one batch: bytes after it are an
// error (use NextBatch to split a buffer of several).
//
// The Key, Value and header Value slices of the records alias b (or, for a
// compressed batch, a buffer allocated for this call); the package never
// writes to them, but the caller must not reuse b while it uses them.
//
// Decode holds every record at once: besides the data, about 90 bytes per
// record and 40 per header. Records visits them one at a time instead.
func Decode(b []byte) (BatchHeader, []Record, error) {
	h, data, err := open(b, MaxDecompressedSize)
	if err != nil {
		return BatchHeader{}, nil, err
	}
	// RecordCount is bounded by the bytes present, but those bytes are not
	// yet known to be records: 64 MiB of decompressed zeros "fits" 9
	// million of them. So the slice grows with records actually decoded,
	// from a start that covers typical batches in one allocation.
	recs := make([]Record, 0, min(h.RecordCount, 1024))
	rd := newRecordReader(h, data)
	for range h.RecordCount {
		var r Record
		if err := rd.next(&r); err != nil {
			return BatchHeader{}, nil, err
		}
		recs = append(recs, r)
	}
	if err := rd.finish(); err != nil {
		return BatchHeader{}, nil, err
	}
	return h, recs, nil
}

// Records verifies the single batch in b and calls fn with each record in
// order, without building a slice of them: the cheap way for a consumer to
// walk a batch. Records carry the same aliasing as Decode's.
//
// The CRC and the decompression are checked before the first call to fn;
// the records themselves are validated as they are reached, so fn may have
// seen some records before Records reports a defect in a later one (with a
// valid CRC that means the producer's encoder was broken, not the bytes).
// An error returned by fn stops the walk and is returned as is.
func Records(b []byte, fn func(Record) error) error {
	h, data, err := open(b, MaxDecompressedSize)
	if err != nil {
		return err
	}
	rd := newRecordReader(h, data)
	for range h.RecordCount {
		var r Record
		if err := rd.next(&r); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rd.finish()
}

// open verifies the batch that b holds exactly and returns its header and
// its records section, decompressed (with at most limit bytes). It also
// rejects a recordCount that the section could not possibly hold, so that
// callers may size allocations by it.
func open(b []byte, limit int) (BatchHeader, []byte, error) {
	h, err := Verify(b)
	if err != nil {
		return BatchHeader{}, nil, err
	}
	if extra := len(b) - h.Size(); extra != 0 {
		return BatchHeader{}, nil, &FormatError{Field: "batchLength", Err: ErrCorrupt,
			Detail: fmt.Sprintf("%d bytes follow the batch", extra)}
	}
	data := b[HeaderSize:]
	switch codec := h.Compression(); codec {
	case CompressionNone:
	case CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
		if data, err = decompress(codec, data, limit); err != nil {
			return BatchHeader{}, nil, &FormatError{Field: "records", Err: ErrCorrupt, Detail: err.Error()}
		}
	default:
		return BatchHeader{}, nil, &FormatError{Field: "attributes", Err: ErrUnknownCompression,
			Detail: fmt.Sprintf("codec %d", codec)}
	}
	if int64(h.RecordCount) > int64(len(data)/minRecordSize) {
		return BatchHeader{}, nil, &FormatError{Field: "recordCount", Err: ErrCorrupt,
			Detail: fmt.Sprintf("%d records cannot fit in %d bytes", h.RecordCount, len(data))}
	}
	return h, data, nil
}

// recordReader decodes the records of one (decompressed) records section.
type recordReader struct {
	h          BatchHeader // a copy: a pointer would move the caller's header to the heap
	data       []byte
	pos        int   // start of the next record in data
	i          int   // index of the next record
	prevOffset int32 // offsetDelta of the previous record, -1 before the first
}

func newRecordReader(h BatchHeader, data []byte) recordReader {
	return recordReader{h: h, data: data, prevOffset: -1}
}

// next decodes the next record into r.
func (rd *recordReader) next(r *Record) error {
	i := rd.i
	rest := rd.data[rd.pos:]
	if len(rest) == 0 {
		return &FormatError{Field: "recordCount", Err: ErrCorrupt,
			Detail: fmt.Sprintf("batch claims %d records but holds %d", rd.h.RecordCount, i)}
	}
	length, n, err := readVarint(rest)
	if err != nil {
		return recordErr(i, "length", err.Error())
	}
	if length < 0 || int(length) > len(rest)-n {
		return recordErr(i, "length", fmt.Sprintf("length %d with %d bytes left", length, len(rest)-n))
	}
	body := rest[n : n+int(length)]
	if err := rd.decodeBody(body, r); err != nil {
		return err
	}
	rd.pos += n + int(length)
	rd.i++
	return nil
}

// decodeBody decodes the record body (everything after the length prefix).
// It fills r only on success.
func (rd *recordReader) decodeBody(body []byte, r *Record) error {
	i := rd.i
	// attributes: unused by v2, accepted whatever they hold.
	if len(body) < 1 {
		return recordErr(i, "attributes", "record is empty")
	}
	p := 1

	tsDelta, n, err := readVarlong(body[p:])
	if err != nil {
		return recordErr(i, "timestampDelta", err.Error())
	}
	p += n

	offDelta, n, err := readVarint(body[p:])
	if err != nil {
		return recordErr(i, "offsetDelta", err.Error())
	}
	p += n
	// Offsets increase strictly within a batch and never pass
	// lastOffsetDelta. They may skip (compaction removes records but keeps
	// the batch's offset range).
	if offDelta <= rd.prevOffset || offDelta > rd.h.LastOffsetDelta {
		return recordErr(i, "offsetDelta", fmt.Sprintf("%d after %d, lastOffsetDelta %d",
			offDelta, rd.prevOffset, rd.h.LastOffsetDelta))
	}

	key, p, err := readNullableBytes(body, p)
	if err != nil {
		return recordErr(i, "key", err.Error())
	}
	value, p, err := readNullableBytes(body, p)
	if err != nil {
		return recordErr(i, "value", err.Error())
	}

	count, n, err := readVarint(body[p:])
	if err != nil {
		return recordErr(i, "headers", err.Error())
	}
	p += n
	if count < 0 || int(count) > (len(body)-p)/minHeaderSize {
		return recordErr(i, "headers", fmt.Sprintf("count %d with %d bytes left", count, len(body)-p))
	}
	var headers []Header
	if count > 0 {
		// As with records: grow with headers actually decoded rather than
		// trust the count (each header is only two bytes, a Header 40).
		headers = make([]Header, 0, min(count, 16))
		for j := range int(count) {
			var (
				hd   Header
				herr *headerErr
			)
			if p, herr = readHeader(body, p, &hd); herr != nil {
				return &FormatError{Field: fmt.Sprintf("records[%d].headers[%d].%s", i, j, herr.part),
					Err: ErrCorrupt, Detail: herr.detail}
			}
			headers = append(headers, hd)
		}
	}
	if p != len(body) {
		return recordErr(i, "length", fmt.Sprintf("%d bytes left after the headers", len(body)-p))
	}

	ts := rd.h.BaseTimestamp + tsDelta // wraps like the encoder's subtraction
	if rd.h.LogAppendTime() {
		ts = rd.h.MaxTimestamp
	}
	*r = Record{
		Offset:    rd.h.BaseOffset + int64(offDelta),
		Timestamp: ts,
		Key:       key,
		Value:     value,
		Headers:   headers,
	}
	rd.prevOffset = offDelta
	return nil
}

// finish checks that nothing follows the last record.
func (rd *recordReader) finish() error {
	if extra := len(rd.data) - rd.pos; extra != 0 {
		return &FormatError{Field: "records", Err: ErrCorrupt,
			Detail: fmt.Sprintf("%d bytes after record %d of %d", extra, rd.i, rd.h.RecordCount)}
	}
	return nil
}

// headerErr locates a defect inside one record header.
type headerErr struct{ part, detail string }

// readHeader decodes the record header at b[p:] into h.
func readHeader(b []byte, p int, h *Header) (int, *headerErr) {
	klen, n, err := readVarint(b[p:])
	if err != nil {
		return p, &headerErr{"key", err.Error()}
	}
	p += n
	// Header keys are strings and may not be null.
	if klen < 0 || int(klen) > len(b)-p {
		return p, &headerErr{"key", fmt.Sprintf("length %d with %d bytes left", klen, len(b)-p)}
	}
	key := string(b[p : p+int(klen)])
	p += int(klen)
	value, p, verr := readNullableBytes(b, p)
	if verr != nil {
		return p, &headerErr{"value", verr.Error()}
	}
	*h = Header{Key: key, Value: value}
	return p, nil
}

// readNullableBytes decodes a length-prefixed byte string at b[p:], nil for
// length -1. The result's capacity ends with it, so a caller appending to a
// decoded key cannot overwrite the bytes that follow it in the batch.
func readNullableBytes(b []byte, p int) ([]byte, int, error) {
	l, n, err := readVarint(b[p:])
	if err != nil {
		return nil, p, err
	}
	p += n
	switch {
	case l == -1:
		return nil, p, nil
	case l < -1:
		return nil, p, fmt.Errorf("negative length %d", l)
	case int(l) > len(b)-p:
		return nil, p, fmt.Errorf("length %d with %d bytes left", l, len(b)-p)
	}
	end := p + int(l)
	return b[p:end:end], end, nil
}

func recordErr(i int, part, detail string) error {
	return &FormatError{Field: fmt.Sprintf("records[%d].%s", i, part), Err: ErrCorrupt, Detail: detail}
}
