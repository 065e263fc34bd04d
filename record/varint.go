package record

import (
	"errors"
	"math/bits"
)

// Records use Kafka's variable-length integers: the value is zigzag-encoded
// (so small negative numbers such as the -1 of a null key stay short) and
// then written as unsigned LEB128, seven bits per byte, least significant
// group first, high bit set on every byte but the last. A "varint" holds an
// int32 (at most 5 bytes), a "varlong" an int64 (at most 10 bytes).

const (
	maxVarintLen  = 5
	maxVarlongLen = 10
)

// Reasons a varint is rejected; readers turn them into FormatErrors naming
// the field that held the varint.
var (
	errVarintTruncated = errors.New("truncated varint")
	errVarintOverlong  = errors.New("overlong varint (non-minimal encoding)")
	errVarintOverflow  = errors.New("varint overflows its type")
)

func zigzag32(v int32) uint32   { return uint32(v<<1) ^ uint32(v>>31) }
func zigzag64(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag32(u uint32) int32 { return int32(u>>1) ^ -int32(u&1) }
func unzigzag64(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// appendUvarint appends u as unsigned LEB128.
func appendUvarint(b []byte, u uint64) []byte {
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}

func appendVarint(b []byte, v int32) []byte  { return appendUvarint(b, uint64(zigzag32(v))) }
func appendVarlong(b []byte, v int64) []byte { return appendUvarint(b, zigzag64(v)) }

// uvarintSize is the number of bytes appendUvarint writes for u.
func uvarintSize(u uint64) int { return (bits.Len64(u|1) + 6) / 7 }

func varintSize(v int32) int  { return uvarintSize(uint64(zigzag32(v))) }
func varlongSize(v int64) int { return uvarintSize(zigzag64(v)) }

// readUvarint decodes an unsigned LEB128 number of at most maxLen bytes whose
// value must fit in valueBits bits. It returns the value and the number of
// bytes read.
//
// It is stricter than encoding/binary.Uvarint on purpose: a non-minimal
// encoding (a trailing 0x00 group) is rejected, so every value has exactly
// one encoding and a batch that decodes re-encodes to the same bytes.
func readUvarint(b []byte, maxLen int, valueBits uint) (uint64, int, error) {
	// Fast path: most lengths and deltas fit in one byte.
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1, nil
	}
	var u uint64
	for i := 0; i < maxLen; i++ {
		if i == len(b) {
			return 0, 0, errVarintTruncated
		}
		c := b[i]
		shift := uint(7 * i)
		group := uint64(c & 0x7f)
		// Bits that would land at or above valueBits mean the number does
		// not fit its type (for the last allowed byte this also catches a
		// continuation bit, checked below).
		if shift+7 > valueBits && group>>(valueBits-shift) != 0 {
			return 0, 0, errVarintOverflow
		}
		u |= group << shift
		if c < 0x80 {
			if c == 0 && i > 0 {
				return 0, 0, errVarintOverlong
			}
			return u, i + 1, nil
		}
	}
	// The maximum length was used and the last byte still had its
	// continuation bit set.
	return 0, 0, errVarintOverflow
}

// readVarint decodes a zigzag varint (int32).
func readVarint(b []byte) (int32, int, error) {
	u, n, err := readUvarint(b, maxVarintLen, 32)
	return unzigzag32(uint32(u)), n, err
}

// readVarlong decodes a zigzag varlong (int64).
func readVarlong(b []byte) (int64, int, error) {
	u, n, err := readUvarint(b, maxVarlongLen, 64)
	return unzigzag64(u), n, err
}
