package record

import (
	"encoding/binary"
	"fmt"
)

// Rewrite returns batch holding only the records keep selects: what log
// compaction does to a batch. Everything that places the records stays as
// it was (base offset, lastOffsetDelta, baseTimestamp, maxTimestamp,
// attributes, producer fields, leader epoch) and each kept record is
// copied byte for byte, its offset and timestamp deltas included, so no
// offset ever changes; recordCount, batchLength and the CRC are
// recomputed, and the records section is compressed again with the
// batch's codec.
//
// It returns batch itself when every record is kept and nil when none is.
// keep sees decoded records (offsets absolute) whose slices alias batch or
// a decompression buffer.
func Rewrite(batch []byte, keep func(Record) bool) ([]byte, error) {
	h, data, err := open(batch, MaxDecompressedSize)
	if err != nil {
		return nil, err
	}
	rd := newRecordReader(h, data)
	var kept []byte
	n := 0
	for range h.RecordCount {
		from := rd.pos
		var r Record
		if err := rd.next(&r); err != nil {
			return nil, err
		}
		if keep(r) {
			kept = append(kept, data[from:rd.pos]...)
			n++
		}
	}
	if err := rd.finish(); err != nil {
		return nil, err
	}
	switch n {
	case int(h.RecordCount):
		return batch, nil
	case 0:
		return nil, nil
	}
	section := kept
	if codec := h.Compression(); codec != CompressionNone {
		var c compressor
		if section, err = c.compress(codec, kept); err != nil {
			return nil, fmt.Errorf("record: rewrite: %w", err)
		}
	}
	out := make([]byte, HeaderSize+len(section))
	copy(out, batch[:HeaderSize])
	copy(out[HeaderSize:], section)
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-LogOverhead))
	binary.BigEndian.PutUint32(out[offRecordCount:], uint32(n))
	binary.BigEndian.PutUint32(out[offCRC:], Checksum(out))
	return out, nil
}

// EmptyBatch returns a batch with no records that spans the offsets
// baseOffset to baseOffset+lastOffsetDelta: what compaction leaves where
// every record of one or more batches was removed, so the log's offsets
// stay contiguous batch to batch (readers advance past it like past a
// control batch). The timestamps are those of the batches it replaces.
func EmptyBatch(baseOffset int64, lastOffsetDelta int32, baseTimestamp, maxTimestamp int64) []byte {
	b := make([]byte, HeaderSize)
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(baseOffset))
	be.PutUint32(b[offBatchLength:], uint32(HeaderSize-LogOverhead))
	b[offMagic] = Magic
	be.PutUint32(b[offLastOffsetDelta:], uint32(lastOffsetDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(baseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(maxTimestamp))
	pid, epoch, seq := BatchOptions{}.producerFields() // none: -1s
	be.PutUint64(b[offProducerID:], uint64(pid))
	be.PutUint16(b[offProducerEpoch:], uint16(epoch))
	be.PutUint32(b[offBaseSequence:], uint32(seq))
	be.PutUint32(b[offCRC:], Checksum(b))
	return b
}
