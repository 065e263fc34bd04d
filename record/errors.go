package record

import (
	"errors"
	"fmt"
)

// Sentinel causes carried by FormatError; callers branch with errors.Is.
var (
	// ErrShortBuffer means the bytes end before the batch or field does
	// (a torn write, or a buffer cut short).
	ErrShortBuffer = errors.New("short buffer")
	// ErrCorrupt means a field holds a value no valid batch can have.
	ErrCorrupt = errors.New("corrupt batch")
	// ErrCRCMismatch means the batch's CRC-32C does not match its bytes.
	ErrCRCMismatch = errors.New("crc mismatch")
	// ErrUnsupportedMagic means the batch is not in the v2 format.
	ErrUnsupportedMagic = errors.New("unsupported magic byte (only record batch v2 is supported)")
	// ErrUnknownCompression means attribute bits name a codec we do not know.
	ErrUnknownCompression = errors.New("unknown compression codec")
)

// Causes of Builder errors; callers branch with errors.Is.
var (
	// ErrEmptyBatch means Build was called before any record was added:
	// a producer never sends an empty batch.
	ErrEmptyBatch = errors.New("empty batch")
	// ErrTooLarge means a record or the batch exceeds what the format can
	// carry (int32 lengths) or what a decoder accepts (MaxDecompressedSize
	// for a compressed records section).
	ErrTooLarge = errors.New("batch too large")
)

// FormatError describes what is wrong with an encoded batch and where.
type FormatError struct {
	Field  string // the header field or record part at fault, e.g. "crc", "records[3].key"
	Err    error  // one of the sentinel errors above
	Detail string // optional human detail
}

func (e *FormatError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("record batch %s: %v: %s", e.Field, e.Err, e.Detail)
	}
	return fmt.Sprintf("record batch %s: %v", e.Field, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }
