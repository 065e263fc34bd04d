package record

// Header is a record header: an application-defined key/value pair carried
// next to the record's key and value (Kafka record headers). Keys need not be
// unique; order is preserved.
type Header struct {
	Key   string
	Value []byte // nil encodes a null value, distinct from an empty one
}

// Record is one decoded record of a batch.
//
// Key and Value distinguish nil (null, encoded with length -1) from empty
// (length 0), as Kafka does: a nil Value is a tombstone on a compacted topic.
type Record struct {
	// Offset is the record's absolute offset: the batch's base offset plus
	// the record's offset delta. The Builder ignores it and numbers records
	// by their position instead.
	Offset int64
	// Timestamp is in milliseconds since the Unix epoch. For a batch with
	// log-append time, every decoded record carries the batch's
	// maxTimestamp (the broker's append time).
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Encoded record layout (all integers zigzag varints, "varlong" for 64-bit):
//
//	length          varint   bytes of the record after this field
//	attributes      int8     unused, written as 0
//	timestampDelta  varlong  timestamp - batch baseTimestamp
//	offsetDelta     varint   offset - batch baseOffset
//	keyLength       varint   -1 for a null key
//	key             bytes
//	valueLength     varint   -1 for a null value
//	value           bytes
//	headerCount     varint
//	headers         headerKeyLength varint, headerKey, headerValueLength
//	                varint (-1 for null), headerValue
//
// The smallest record body is six one-byte fields (attributes, both deltas,
// both lengths, header count), seven bytes with its length prefix; the
// decoder uses that bound to reject counts no buffer could hold before it
// allocates anything.
const (
	minRecordBodySize = 6
	minRecordSize     = 1 + minRecordBodySize
	minHeaderSize     = 2 // key length 0 and value length -1, one byte each
)

// bytesSize is the encoded size of a length-prefixed nullable byte string.
func bytesSize(b []byte) int {
	if b == nil {
		return varintSize(-1)
	}
	return varintSize(int32(len(b))) + len(b)
}

// appendBytes appends a length-prefixed nullable byte string. The caller has
// checked that len(b) fits in an int32.
func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return appendVarint(dst, -1)
	}
	dst = appendVarint(dst, int32(len(b)))
	return append(dst, b...)
}

// recordBodySize is the encoded size of r without its length prefix.
func recordBodySize(r *Record, timestampDelta int64, offsetDelta int32) int {
	n := 1 + varlongSize(timestampDelta) + varintSize(offsetDelta) +
		bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintSize(int32(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

// appendRecord appends r, length prefix included. bodySize must come from
// recordBodySize with the same arguments.
func appendRecord(dst []byte, r *Record, timestampDelta int64, offsetDelta int32, bodySize int) []byte {
	dst = appendVarint(dst, int32(bodySize))
	dst = append(dst, 0) // attributes: unused in v2
	dst = appendVarlong(dst, timestampDelta)
	dst = appendVarint(dst, offsetDelta)
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = appendVarint(dst, int32(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		dst = appendVarint(dst, int32(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}
