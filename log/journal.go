package log

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The journal is a segment's sidecar file with one fixed-size entry per batch
// in the data file, in the same order. It carries what the batch bytes cannot:
// the caller's index (a Raft log index) and the time the batch was appended.
//
// Header (32 bytes):
//
//	0  4 magic "SKJN"
//	4  2 version (1)
//	6  2 reserved (0)
//	8  8 base offset of the segment
//	16 8 prevIndex: index of the last batch before this segment, so LastIndex
//	     is known even when the segment is empty and older segments are gone
//	24 4 reserved (0)
//	28 4 CRC-32C of bytes 0..28
//
// Entry (24 bytes):
//
//	0  8 index passed to Append with the batch
//	8  8 append time, Unix milliseconds (for rolling by age)
//	16 4 CRC-32C of the batch's first 21 bytes (base offset, length, leader
//	     epoch, magic, batch CRC): binds the entry to its batch and covers the
//	     base offset and leader epoch, which the batch CRC does not
//	20 4 CRC-32C of entry bytes 0..20
const (
	journalHeaderSize = 32
	journalEntrySize  = 24
	journalVersion    = 1
	// batchHeadSize is the prefix of a batch that an entry's binding CRC covers.
	batchHeadSize = 21
)

var journalMagic = [4]byte{'S', 'K', 'J', 'N'}

// errJournalInvalid marks a journal whose header is missing or damaged.
var errJournalInvalid = errors.New("journal header invalid")

// journalEntry is one decoded entry.
type journalEntry struct {
	index      uint64
	appendTime int64 // Unix milliseconds
}

// journal is the open journal of the active segment. Its writer is the log's
// single writer; sync may run concurrently (see segment.syncMu).
type journal struct {
	f         *os.File
	base      int64
	prevIndex uint64
	buf       [journalEntrySize]byte // reused so Append does not allocate
}

func encodeJournalHeader(base int64, prevIndex uint64) []byte {
	b := make([]byte, journalHeaderSize)
	copy(b[0:4], journalMagic[:])
	binary.BigEndian.PutUint16(b[4:], journalVersion)
	binary.BigEndian.PutUint64(b[8:], uint64(base))
	binary.BigEndian.PutUint64(b[16:], prevIndex)
	binary.BigEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// decodeJournalHeader checks the header and returns prevIndex.
func decodeJournalHeader(b []byte, base int64) (uint64, error) {
	if len(b) < journalHeaderSize ||
		crc32.Checksum(b[:28], castagnoli) != binary.BigEndian.Uint32(b[28:]) ||
		[4]byte(b[0:4]) != journalMagic || binary.BigEndian.Uint16(b[4:]) != journalVersion ||
		int64(binary.BigEndian.Uint64(b[8:])) != base {
		return 0, errJournalInvalid
	}
	return binary.BigEndian.Uint64(b[16:]), nil
}

// createJournal creates (or replaces) a journal holding only its header. With
// durable it is fsynced before it is returned; a roll skips that (see
// Log.roll) and leaves the header's durability to the next Sync.
func createJournal(path string, base int64, prevIndex uint64, durable bool) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(encodeJournalHeader(base, prevIndex)); err != nil {
		f.Close()
		return nil, err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &journal{f: f, base: base, prevIndex: prevIndex}, nil
}

// openJournal opens an existing journal for recovery and appends. A missing
// file or damaged header yields an error matching errJournalInvalid or
// fs.ErrNotExist.
func openJournal(path string, base int64) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	var b [journalHeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %v", errJournalInvalid, err)
	}
	prev, err := decodeJournalHeader(b[:], base)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &journal{f: f, base: base, prevIndex: prev}, nil
}

func batchHeadCRC(batch []byte) uint32 {
	return crc32.Checksum(batch[:batchHeadSize], castagnoli)
}

func encodeJournalEntry(b []byte, e journalEntry, batch []byte) {
	binary.BigEndian.PutUint64(b[0:], e.index)
	binary.BigEndian.PutUint64(b[8:], uint64(e.appendTime))
	binary.BigEndian.PutUint32(b[16:], batchHeadCRC(batch))
	binary.BigEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
}

// decodeJournalEntry checks an entry on its own (ok) and against its batch
// (bound); batch may be nil to skip the second check.
func decodeJournalEntry(b []byte, batch []byte) (e journalEntry, ok bool) {
	if crc32.Checksum(b[:20], castagnoli) != binary.BigEndian.Uint32(b[20:]) {
		return journalEntry{}, false
	}
	if batch != nil && batchHeadCRC(batch) != binary.BigEndian.Uint32(b[16:]) {
		return journalEntry{}, false
	}
	return journalEntry{index: binary.BigEndian.Uint64(b[0:]), appendTime: int64(binary.BigEndian.Uint64(b[8:]))}, true
}

// write stores entry n (0-based) for batch. An entry is written with one
// pwrite at its fixed position, so a failed or torn write is overwritten by
// the next append and cut off by recovery.
func (j *journal) write(n int64, e journalEntry, batch []byte) error {
	encodeJournalEntry(j.buf[:], e, batch)
	if _, err := j.f.WriteAt(j.buf[:], journalHeaderSize+n*journalEntrySize); err != nil {
		return fmt.Errorf("write journal entry %d of segment %d: %w", n, j.base, err)
	}
	return nil
}

// truncate keeps the first n entries.
func (j *journal) truncate(n int64) error {
	return j.f.Truncate(journalHeaderSize + n*journalEntrySize)
}

func (j *journal) sync() error  { return j.f.Sync() }
func (j *journal) close() error { return j.f.Close() }

// size is the byte size of a journal holding n entries.
func journalSize(n int64) int64 { return journalHeaderSize + n*journalEntrySize }

// journalReader yields the entries of an open journal in order.
type journalReader struct {
	r   *bufio.Reader
	buf [journalEntrySize]byte
}

func newJournalReader(j *journal) *journalReader {
	return &journalReader{r: bufio.NewReaderSize(io.NewSectionReader(j.f, journalHeaderSize, 1<<62), 64<<10)}
}

// next returns the next entry if it is intact and belongs to batch; ok is
// false at the end of the file, at a torn entry or at a mismatch.
func (jr *journalReader) next(batch []byte) (journalEntry, bool, error) {
	if _, err := io.ReadFull(jr.r, jr.buf[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return journalEntry{}, false, nil
		}
		return journalEntry{}, false, err
	}
	e, ok := decodeJournalEntry(jr.buf[:], batch)
	return e, ok, nil
}

// lastJournalIndex returns the index of the newest intact entry of the
// journal at path, or its prevIndex when it has none. It is a fallback for
// recovering a successor segment whose own journal is damaged, so it checks
// entries on their own only.
func lastJournalIndex(path string, base int64) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	prev, err := decodeJournalHeader(b, base)
	if err != nil {
		return 0, err
	}
	n := (len(b) - journalHeaderSize) / journalEntrySize
	for i := n - 1; i >= 0; i-- {
		off := journalHeaderSize + i*journalEntrySize
		if e, ok := decodeJournalEntry(b[off:off+journalEntrySize], nil); ok {
			return e.index, nil
		}
	}
	return prev, nil
}
