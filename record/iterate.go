package record

import (
	"io"
	"iter"
)

// NextBatch splits the first batch off b, a buffer of concatenated batches
// such as a fetch response or a segment file. It checks only the framing
// (ParseHeader: length, magic, counts); Decode, Records or Verify check the
// CRC of the batch it returns.
//
// batch is capped at its end, so appending to it cannot clobber rest.
// With an empty b it returns io.EOF. A final batch that b holds only part
// of — a fetch response may end with one — fails with an error matching
// ErrShortBuffer, which a consumer may ignore: it fetches that batch again
// from its offset. Any other error means the bytes are not batches.
func NextBatch(b []byte) (batch, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, io.EOF
	}
	h, err := ParseHeader(b)
	if err != nil {
		return nil, b, err
	}
	n := h.Size()
	return b[:n:n], b[n:], nil
}

// Batches iterates over the concatenated batches in b, as NextBatch
// splits them. On error it yields (nil, err) once and stops; a trailing
// partial batch yields an error matching ErrShortBuffer.
//
//	for batch, err := range record.Batches(resp) {
//		if errors.Is(err, record.ErrShortBuffer) {
//			break // partial last batch: fetch it again later
//		} else if err != nil {
//			return err
//		}
//		...
//	}
func Batches(b []byte) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		rest := b
		for len(rest) > 0 {
			batch, next, err := NextBatch(rest)
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(batch, nil) {
				return
			}
			rest = next
		}
	}
}
