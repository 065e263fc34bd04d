// Package record encodes and decodes record batches in the Kafka RecordBatch
// v2 layout (magic 2). It is shared by the server's storage engine and the
// client library, so it depends on nothing else in this repository and on no
// Raft, gRPC or storage code.
//
// A batch on the wire and on disk:
//
//	offset  size  field
//	0       8     baseOffset            (stamped by the broker, outside the CRC)
//	8       4     batchLength           (bytes after this field)
//	12      4     partitionLeaderEpoch  (stamped by the broker, outside the CRC)
//	16      1     magic (2)
//	17      4     crc  (CRC-32C of bytes 21..end)
//	21      2     attributes
//	23      4     lastOffsetDelta
//	27      8     baseTimestamp
//	35      8     maxTimestamp
//	43      8     producerId
//	51      2     producerEpoch
//	53      4     baseSequence
//	57      4     recordCount
//	61      ...   records (possibly compressed)
//
// All integers are big-endian.
//
// Producers fill a Builder (or call Encode) and send the bytes it builds.
// The broker checks a batch with Verify, stamps it in place with
// SetBaseOffset and SetPartitionLeaderEpoch (fields outside the CRC), and
// stores and serves the bytes unchanged. Consumers split a fetched buffer
// with NextBatch or Batches and read each batch with Decode, or Records to
// walk it without building a slice. Decoding errors are *FormatError,
// naming the field at fault; test the cause with errors.Is.
package record

import (
	"encoding/binary"
	"hash/crc32"
)

// Layout constants of a v2 batch header.
const (
	// HeaderSize is the size of the fixed batch header that precedes the records.
	HeaderSize = 61
	// LogOverhead is the part of the header not counted in batchLength
	// (baseOffset and batchLength themselves).
	LogOverhead = 12
	// Magic is the only batch format version this package reads and writes.
	Magic = 2

	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57
)

// Attribute bits (Kafka's RecordBatch attributes).
const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

// NoProducerID marks a batch from a producer without idempotence.
const NoProducerID = -1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded fixed part of a batch.
type BatchHeader struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the total encoded size of the batch, header included.
func (h BatchHeader) Size() int { return int(h.BatchLength) + LogOverhead }

// LastOffset is the offset of the batch's last record.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset that follows the batch.
func (h BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression is the codec the records section is compressed with.
func (h BatchHeader) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// LogAppendTime reports whether timestamps were set by the broker.
func (h BatchHeader) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports the transactional attribute bit.
func (h BatchHeader) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether this is a control batch (for example a transaction marker).
func (h BatchHeader) Control() bool { return h.Attributes&attrControl != 0 }

// LastSequence is the sequence number of the batch's last record, or
// BaseSequence when the producer is not idempotent.
func (h BatchHeader) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return h.BaseSequence
	}
	// Sequences wrap at MaxInt32 like Kafka's.
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (1 << 31))
}

// ParseHeader decodes the fixed header at the start of b. It checks that b
// holds the whole batch and that the length, magic and counts are sane, but
// not the CRC: use Verify for that.
func ParseHeader(b []byte) (BatchHeader, error) {
	if len(b) < LogOverhead {
		return BatchHeader{}, &FormatError{Field: "batchLength", Err: ErrShortBuffer, Detail: "fewer than 12 bytes"}
	}
	var h BatchHeader
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.BatchLength = int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	if h.BatchLength < HeaderSize-LogOverhead {
		return BatchHeader{}, &FormatError{Field: "batchLength", Err: ErrCorrupt, Detail: "shorter than a batch header"}
	}
	if len(b) < HeaderSize {
		return BatchHeader{}, &FormatError{Field: "header", Err: ErrShortBuffer, Detail: "fewer than 61 bytes"}
	}
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	if h.Magic != Magic {
		return BatchHeader{}, &FormatError{Field: "magic", Err: ErrUnsupportedMagic}
	}
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	if h.LastOffsetDelta < 0 {
		return BatchHeader{}, &FormatError{Field: "lastOffsetDelta", Err: ErrCorrupt, Detail: "negative"}
	}
	if h.RecordCount < 0 {
		return BatchHeader{}, &FormatError{Field: "recordCount", Err: ErrCorrupt, Detail: "negative"}
	}
	// Compare in int64: on a 32-bit platform Size() of a batchLength near
	// MaxInt32 overflows int, and the batch would pass as present.
	if int64(len(b)) < int64(h.BatchLength)+LogOverhead {
		return BatchHeader{}, &FormatError{Field: "batchLength", Err: ErrShortBuffer, Detail: "batch extends past the buffer"}
	}
	return h, nil
}

// Verify parses the header of the batch at the start of b and checks its CRC.
// It returns the header of a batch whose bytes are intact.
func Verify(b []byte) (BatchHeader, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return BatchHeader{}, err
	}
	if got := crc32.Checksum(b[offAttributes:h.Size()], castagnoli); got != h.CRC {
		return BatchHeader{}, &FormatError{Field: "crc", Err: ErrCRCMismatch}
	}
	return h, nil
}

// SetBaseOffset stamps the batch's base offset in place. The field lies
// outside the CRC, so the batch stays valid.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(offset))
}

// SetPartitionLeaderEpoch stamps the leader epoch in place (outside the CRC).
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime stamps the batch in place with the broker's append time
// t (milliseconds), as a broker does for a topic whose timestamps are
// log-append time: it sets the timestamp-type attribute and maxTimestamp,
// which every record then reports, and recomputes the CRC. Both fields lie
// inside the CRC, so the batch is verified first: restamping must never
// give corrupt bytes a fresh, valid checksum.
func SetLogAppendTime(b []byte, t int64) error {
	h, err := Verify(b)
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(h.Attributes|attrLogAppendTime))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(t))
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b[:h.Size()]))
	return nil
}

// Checksum computes the CRC-32C a batch's header must carry: over everything
// from the attributes field to the end of the batch.
func Checksum(b []byte) uint32 {
	return crc32.Checksum(b[offAttributes:], castagnoli)
}

// Compression identifies a batch compression codec (attribute bits 0-2).
type Compression int8

// Codecs, numbered as in Kafka.
const (
	CompressionNone Compression = iota
	CompressionGzip
	CompressionSnappy
	CompressionLZ4
	CompressionZstd
)

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return "unknown"
}
