package log

import (
	"encoding/binary"
	"sort"
	"sync/atomic"
)

// timeEntry says: up to and including the batch at base offset rel (relative
// to the segment), the largest MaxTimestamp seen in the segment is ts, and
// that batch holds it. Entries have strictly increasing ts (Kafka's time
// index works the same way), so a binary search finds where a timestamp is
// first reached even though batch timestamps need not be ordered.
type timeEntry struct {
	ts  int64
	rel uint32
}

// timeEntrySize is the on-disk size of a timeEntry: ts as big-endian int64,
// rel as big-endian uint32.
const timeEntrySize = 12

// timeIndex is a segment's sparse time index, one entry at most per offset
// index entry plus a final one when the segment is sealed. Concurrency as
// offsetIndex: one appending writer, lock-free readers.
type timeIndex struct {
	entries atomic.Pointer[[]timeEntry]
}

func (x *timeIndex) load() []timeEntry {
	if p := x.entries.Load(); p != nil {
		return *p
	}
	return nil
}

func (x *timeIndex) add(e timeEntry) {
	s := append(x.load(), e)
	x.entries.Store(&s)
}

func (x *timeIndex) set(es []timeEntry) { x.entries.Store(&es) }

// lastBefore returns the index of the last entry with ts < target, or -1.
// Every batch up to that entry's batch has MaxTimestamp < target, so a scan
// for the first batch reaching target can start there.
func lastBefore(es []timeEntry, target int64) int {
	return sort.Search(len(es), func(i int) bool { return es[i].ts >= target }) - 1
}

func encodeTimeEntries(es []timeEntry) []byte {
	b := make([]byte, len(es)*timeEntrySize)
	for i, e := range es {
		binary.BigEndian.PutUint64(b[i*timeEntrySize:], uint64(e.ts))
		binary.BigEndian.PutUint32(b[i*timeEntrySize+8:], e.rel)
	}
	return b
}

func decodeTimeEntries(b []byte) ([]timeEntry, bool) {
	if len(b)%timeEntrySize != 0 {
		return nil, false
	}
	es := make([]timeEntry, len(b)/timeEntrySize)
	for i := range es {
		es[i].ts = int64(binary.BigEndian.Uint64(b[i*timeEntrySize:]))
		es[i].rel = binary.BigEndian.Uint32(b[i*timeEntrySize+8:])
		if i > 0 && (es[i].ts <= es[i-1].ts || es[i].rel < es[i-1].rel) {
			return nil, false
		}
	}
	return es, true
}
