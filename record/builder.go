package record

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
)

// Builder accumulates records into one batch, the way a producer fills a
// partition's batch until it is big or old enough to send.
//
// Records are encoded as they are added, into a buffer the Builder keeps
// across Reset, so a producer that reuses one Builder per partition
// allocates nothing per record once the buffer has grown; compression
// buffers and encoders are reused the same way. A Builder is not safe for
// concurrent use.
type Builder struct {
	opts          BatchOptions
	recs          []byte // encoded records, uncompressed
	count         int
	baseTimestamp int64
	maxTimestamp  int64
	err           error // first error from Add; Build reports it
	comp          compressor
}

// NewBuilder returns a Builder for a batch with the given options.
func NewBuilder(opts BatchOptions) *Builder {
	b := new(Builder)
	b.Reset(opts)
	return b
}

// Reset empties the Builder for a new batch with the given options,
// keeping its buffers.
func (b *Builder) Reset(opts BatchOptions) {
	b.opts = opts
	b.recs = b.recs[:0]
	b.count = 0
	b.baseTimestamp, b.maxTimestamp = 0, 0
	b.err = opts.Validate()
}

// Add appends r to the batch. Its offset delta is its position in the
// batch (r.Offset is ignored); the first record's timestamp becomes the
// batch's baseTimestamp.
//
// Add does not fail: a record the format cannot carry (a key or value over
// 2 GiB, a batch past the int32 batchLength) is remembered and reported by
// Build, and later records are ignored, like bufio.Writer's sticky errors.
func (b *Builder) Add(r Record) {
	if b.err != nil {
		return
	}
	if b.count == math.MaxInt32 {
		b.err = fmt.Errorf("record: more than %d records: %w", math.MaxInt32, ErrTooLarge)
		return
	}
	if b.count == 0 {
		b.baseTimestamp, b.maxTimestamp = r.Timestamp, r.Timestamp
	}
	tsDelta := r.Timestamp - b.baseTimestamp // may wrap; the decoder's addition wraps back
	body := recordBodySize(&r, tsDelta, int32(b.count))
	// The body is at least as long as each of its byte strings, so this one
	// check also keeps every length prefix within int32.
	if body > math.MaxInt32 || HeaderSize+len(b.recs)+varintSize(int32(body))+body > math.MaxInt32 {
		b.err = fmt.Errorf("record: record %d does not fit in a batch: %w", b.count, ErrTooLarge)
		return
	}
	b.recs = appendRecord(b.recs, &r, tsDelta, int32(b.count), body)
	b.maxTimestamp = max(b.maxTimestamp, r.Timestamp)
	b.count++
}

// Len is the number of records added since the last Reset.
func (b *Builder) Len() int { return b.count }

// EstimatedSize is the size of the batch built now, before compression:
// an upper bound a producer compares with its maximum batch size (with
// compression the batch usually comes out smaller).
func (b *Builder) EstimatedSize() int { return HeaderSize + len(b.recs) }

// EstimatedSizeWith is what EstimatedSize would be after Add(r), so a
// producer can decide to send the batch before r makes it too big.
func (b *Builder) EstimatedSizeWith(r Record) int {
	base := r.Timestamp
	if b.count > 0 {
		base = b.baseTimestamp
	}
	body := recordBodySize(&r, r.Timestamp-base, int32(b.count))
	return b.EstimatedSize() + varintSize(int32(body)) + body
}

// Build returns the encoded batch: baseOffset 0 (the broker stamps the
// real one), batchLength, CRC and attributes filled in and the records
// section compressed with the configured codec. The slice is newly
// allocated and owned by the caller; the Builder may be Reset and reused at
// once. Build fails with ErrEmptyBatch when no record was added, and with
// the first error met by Reset or Add.
func (b *Builder) Build() ([]byte, error) {
	section, err := b.section()
	if err != nil {
		return nil, err
	}
	return b.appendBatch(make([]byte, 0, HeaderSize+len(section)), section), nil
}

// AppendTo appends the encoded batch to dst, like Build but into a buffer
// the caller recycles.
func (b *Builder) AppendTo(dst []byte) ([]byte, error) {
	section, err := b.section()
	if err != nil {
		return dst, err
	}
	return b.appendBatch(slices.Grow(dst, HeaderSize+len(section)), section), nil
}

// section returns the records section as it goes into the batch.
func (b *Builder) section() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.count == 0 {
		return nil, fmt.Errorf("record: build: %w", ErrEmptyBatch)
	}
	if b.opts.Compression == CompressionNone {
		return b.recs, nil
	}
	// Decoders refuse a larger records section; better to fail here than
	// to hand the broker a batch no consumer can read.
	if len(b.recs) > MaxDecompressedSize {
		return nil, fmt.Errorf("record: %d bytes of records exceed MaxDecompressedSize: %w", len(b.recs), ErrTooLarge)
	}
	section, err := b.comp.compress(b.opts.Compression, b.recs)
	if err != nil {
		return nil, err
	}
	if HeaderSize-LogOverhead+len(section) > math.MaxInt32 {
		return nil, fmt.Errorf("record: compressed batch too large: %w", ErrTooLarge)
	}
	return section, nil
}

// appendBatch appends header and section to dst, which has room for them.
func (b *Builder) appendBatch(dst, section []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	h := dst[start:]
	producerID, producerEpoch, baseSequence := b.opts.producerFields()
	be := binary.BigEndian
	be.PutUint64(h[offBaseOffset:], 0)
	be.PutUint32(h[offBatchLength:], uint32(HeaderSize-LogOverhead+len(section)))
	be.PutUint32(h[offLeaderEpoch:], uint32(b.opts.leaderEpoch()))
	h[offMagic] = Magic
	be.PutUint16(h[offAttributes:], uint16(b.opts.attributes()))
	be.PutUint32(h[offLastOffsetDelta:], uint32(b.count-1))
	be.PutUint64(h[offBaseTimestamp:], uint64(b.baseTimestamp))
	be.PutUint64(h[offMaxTimestamp:], uint64(b.maxTimestamp))
	be.PutUint64(h[offProducerID:], uint64(producerID))
	be.PutUint16(h[offProducerEpoch:], uint16(producerEpoch))
	be.PutUint32(h[offBaseSequence:], uint32(baseSequence))
	be.PutUint32(h[offRecordCount:], uint32(b.count))
	dst = append(dst, section...)
	be.PutUint32(dst[start+offCRC:], Checksum(dst[start:]))
	return dst
}

// builders recycles Builders for Encode, whose compression state (a gzip
// or lz4 writer) is much bigger than a typical batch.
var builders = sync.Pool{New: func() any { return new(Builder) }}

// maxPooledBuffer keeps one huge batch from pinning its buffers in the
// pool for ever.
const maxPooledBuffer = 4 << 20

// Encode builds one batch of records with the given options; see Builder.
func Encode(opts BatchOptions, records []Record) ([]byte, error) {
	b := builders.Get().(*Builder)
	defer func() {
		if cap(b.recs) <= maxPooledBuffer && cap(b.comp.out.b) <= maxPooledBuffer {
			builders.Put(b)
		}
	}()
	b.Reset(opts)
	for i := range records {
		b.Add(records[i])
	}
	return b.Build()
}
