package log

import (
	"encoding/binary"
	"sort"
	"sync/atomic"
)

// indexEntry maps the base offset of one batch, relative to the segment's
// base offset, to the batch's byte position in the segment's data file.
type indexEntry struct {
	rel uint32
	pos uint32
}

// indexEntrySize is the on-disk size of an indexEntry: rel and pos as
// big-endian uint32.
const indexEntrySize = 8

// offsetIndex is a segment's sparse offset index: one entry per
// IndexIntervalBytes of data, in increasing rel and pos order.
//
// One writer appends while many readers look up. The writer appends to its
// own slice and publishes the new slice header atomically; readers only touch
// elements below the length they loaded, which the writer never changes, so
// lookups take no lock.
type offsetIndex struct {
	entries atomic.Pointer[[]indexEntry]
}

func (x *offsetIndex) load() []indexEntry {
	if p := x.entries.Load(); p != nil {
		return *p
	}
	return nil
}

// add appends e; only the segment's writer calls it.
func (x *offsetIndex) add(e indexEntry) {
	s := append(x.load(), e)
	x.entries.Store(&s)
}

func (x *offsetIndex) set(es []indexEntry) { x.entries.Store(&es) }

// floorIndex returns the last entry with rel <= rel, or the zero entry (the
// first batch of the segment, at position 0) when there is none.
func floorIndex(es []indexEntry, rel uint32) indexEntry {
	i := sort.Search(len(es), func(i int) bool { return es[i].rel > rel })
	if i == 0 {
		return indexEntry{}
	}
	return es[i-1]
}

func encodeIndexEntries(es []indexEntry) []byte {
	b := make([]byte, len(es)*indexEntrySize)
	for i, e := range es {
		binary.BigEndian.PutUint32(b[i*indexEntrySize:], e.rel)
		binary.BigEndian.PutUint32(b[i*indexEntrySize+4:], e.pos)
	}
	return b
}

// decodeIndexEntries parses entries and checks that they increase, so that a
// damaged file cannot send a lookup backwards.
func decodeIndexEntries(b []byte) ([]indexEntry, bool) {
	if len(b)%indexEntrySize != 0 {
		return nil, false
	}
	es := make([]indexEntry, len(b)/indexEntrySize)
	for i := range es {
		es[i].rel = binary.BigEndian.Uint32(b[i*indexEntrySize:])
		es[i].pos = binary.BigEndian.Uint32(b[i*indexEntrySize+4:])
		if i > 0 && (es[i].rel <= es[i-1].rel || es[i].pos <= es[i-1].pos) {
			return nil, false
		}
	}
	return es, true
}
