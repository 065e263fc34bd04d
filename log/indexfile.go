package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
)

// The .index and .timeindex files of a sealed segment share one header. Both
// are derived data, written once when the segment is sealed (atomically, by
// rename) and rebuilt from the data file whenever they are missing, damaged
// or disagree with it. The header also carries the segment's summary, so Open
// learns a sealed segment's extent and newest timestamp from 56 bytes
// without reading its data.
//
//	offset size field
//	0      4    magic ("SKOI" offset index, "SKTI" time index)
//	4      2    version (1)
//	6      2    entry size (8 or 12)
//	8      8    base offset of the segment
//	16     8    next offset (after the segment's last batch)
//	24     8    data file size in bytes
//	32     8    largest MaxTimestamp in the segment
//	40     4    entry count
//	44     4    CRC-32C of the entries
//	48     4    reserved (0)
//	52     4    CRC-32C of bytes 0..52
//
// Entries follow, big-endian.
const (
	indexFileHeaderSize = 56
	indexFileVersion    = 1
)

var (
	offsetIndexMagic = [4]byte{'S', 'K', 'O', 'I'}
	timeIndexMagic   = [4]byte{'S', 'K', 'T', 'I'}
)

// errIndexInvalid marks an index file that must be rebuilt; it never leaves
// the package.
var errIndexInvalid = errors.New("index file invalid")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentSummary is what a sealed segment's index headers say about it.
type segmentSummary struct {
	next  int64 // offset after the last batch
	size  int64 // bytes of data
	maxTs int64 // largest batch MaxTimestamp
}

// indexKind tells the two index files apart.
type indexKind struct {
	magic     [4]byte
	entrySize int
	suffix    string
}

var (
	offsetIndexKind = indexKind{offsetIndexMagic, indexEntrySize, indexSuffix}
	timeIndexKind   = indexKind{timeIndexMagic, timeEntrySize, timeIndexSuffix}
)

func encodeIndexFile(k indexKind, base int64, sum segmentSummary, entries []byte) []byte {
	b := make([]byte, indexFileHeaderSize+len(entries))
	copy(b[0:4], k.magic[:])
	binary.BigEndian.PutUint16(b[4:], indexFileVersion)
	binary.BigEndian.PutUint16(b[6:], uint16(k.entrySize))
	binary.BigEndian.PutUint64(b[8:], uint64(base))
	binary.BigEndian.PutUint64(b[16:], uint64(sum.next))
	binary.BigEndian.PutUint64(b[24:], uint64(sum.size))
	binary.BigEndian.PutUint64(b[32:], uint64(sum.maxTs))
	binary.BigEndian.PutUint32(b[40:], uint32(len(entries)/k.entrySize))
	binary.BigEndian.PutUint32(b[44:], crc32.Checksum(entries, castagnoli))
	binary.BigEndian.PutUint32(b[52:], crc32.Checksum(b[:52], castagnoli))
	copy(b[indexFileHeaderSize:], entries)
	return b
}

// indexFileHeader is a decoded, checked header.
type indexFileHeader struct {
	sum        segmentSummary
	count      int
	entriesCRC uint32
}

func decodeIndexFileHeader(b []byte, k indexKind, base int64) (indexFileHeader, error) {
	if len(b) < indexFileHeaderSize {
		return indexFileHeader{}, fmt.Errorf("%w: short header", errIndexInvalid)
	}
	if crc32.Checksum(b[:52], castagnoli) != binary.BigEndian.Uint32(b[52:]) {
		return indexFileHeader{}, fmt.Errorf("%w: header crc", errIndexInvalid)
	}
	if [4]byte(b[0:4]) != k.magic || binary.BigEndian.Uint16(b[4:]) != indexFileVersion ||
		int(binary.BigEndian.Uint16(b[6:])) != k.entrySize {
		return indexFileHeader{}, fmt.Errorf("%w: magic or version", errIndexInvalid)
	}
	if int64(binary.BigEndian.Uint64(b[8:])) != base {
		return indexFileHeader{}, fmt.Errorf("%w: base offset", errIndexInvalid)
	}
	h := indexFileHeader{
		sum: segmentSummary{
			next:  int64(binary.BigEndian.Uint64(b[16:])),
			size:  int64(binary.BigEndian.Uint64(b[24:])),
			maxTs: int64(binary.BigEndian.Uint64(b[32:])),
		},
		count:      int(binary.BigEndian.Uint32(b[40:])),
		entriesCRC: binary.BigEndian.Uint32(b[44:]),
	}
	// A sealed segment holds at least one batch and stays inside 32-bit
	// positions and relative offsets.
	if h.sum.next <= base || h.sum.next-base > math.MaxUint32 || h.sum.size <= 0 || h.sum.size > math.MaxUint32 {
		return indexFileHeader{}, fmt.Errorf("%w: summary out of range", errIndexInvalid)
	}
	return h, nil
}

// readIndexHeader reads only the header of an index file.
func readIndexHeader(dir string, k indexKind, base int64) (indexFileHeader, error) {
	f, err := os.Open(segmentPath(dir, base, k.suffix))
	if err != nil {
		return indexFileHeader{}, err
	}
	defer f.Close()
	var b [indexFileHeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return indexFileHeader{}, fmt.Errorf("%w: %v", errIndexInvalid, err)
	}
	return decodeIndexFileHeader(b[:], k, base)
}

// readIndexFile reads and checks a whole index file, returning the raw entries.
func readIndexFile(dir string, k indexKind, base int64) (indexFileHeader, []byte, error) {
	b, err := os.ReadFile(segmentPath(dir, base, k.suffix))
	if err != nil {
		return indexFileHeader{}, nil, err
	}
	h, err := decodeIndexFileHeader(b, k, base)
	if err != nil {
		return indexFileHeader{}, nil, err
	}
	entries := b[indexFileHeaderSize:]
	if len(entries) != h.count*k.entrySize || crc32.Checksum(entries, castagnoli) != h.entriesCRC {
		return indexFileHeader{}, nil, fmt.Errorf("%w: entries", errIndexInvalid)
	}
	return h, entries, nil
}

// writeIndexFiles persists both indexes of a sealed segment. The caller syncs
// the directory.
func writeIndexFiles(dir string, base int64, sum segmentSummary, es []indexEntry, ts []timeEntry) error {
	if err := writeFileAtomic(segmentPath(dir, base, indexSuffix),
		encodeIndexFile(offsetIndexKind, base, sum, encodeIndexEntries(es))); err != nil {
		return fmt.Errorf("write index of segment %d: %w", base, err)
	}
	if err := writeFileAtomic(segmentPath(dir, base, timeIndexSuffix),
		encodeIndexFile(timeIndexKind, base, sum, encodeTimeEntries(ts))); err != nil {
		return fmt.Errorf("write time index of segment %d: %w", base, err)
	}
	return nil
}
