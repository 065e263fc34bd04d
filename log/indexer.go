package log

import (
	"math"

	"github.com/skiff-mq/skiff/record"
)

// indexer decides where sparse index entries go as batches are appended to a
// segment, or re-read by recovery and index rebuilds, and keeps the running
// maximum timestamp the time index needs.
type indexer struct {
	base  int64
	index *offsetIndex
	times *timeIndex

	lastIndexedPos int64  // position of the newest offset index entry; -1 if none
	maxTs          int64  // largest MaxTimestamp so far; math.MinInt64 if none
	maxTsRel       uint32 // relative base offset of the batch holding maxTs
	lastTimeTs     int64  // ts of the newest time index entry; math.MinInt64 if none
}

func newIndexer(base int64, index *offsetIndex, times *timeIndex) indexer {
	return indexer{base: base, index: index, times: times,
		lastIndexedPos: -1, maxTs: math.MinInt64, lastTimeTs: math.MinInt64}
}

// track accounts for the batch h stored at pos. The first batch is always
// indexed, so a lookup never has to start before position 0; after that one
// entry per interval bytes bounds the forward scan of a lookup to about one
// interval.
func (x *indexer) track(pos int64, h record.BatchHeader, interval int64) {
	rel := uint32(h.BaseOffset - x.base)
	if h.MaxTimestamp > x.maxTs {
		x.maxTs, x.maxTsRel = h.MaxTimestamp, rel
	}
	if x.lastIndexedPos >= 0 && pos-x.lastIndexedPos < interval {
		return
	}
	x.index.add(indexEntry{rel: rel, pos: uint32(pos)})
	x.lastIndexedPos = pos
	x.addTimeEntry()
}

// finish records the segment's final maximum timestamp, so that the last time
// index entry of a sealed segment is its newest timestamp.
func (x *indexer) finish() { x.addTimeEntry() }

func (x *indexer) addTimeEntry() {
	if x.maxTs > x.lastTimeTs {
		x.times.add(timeEntry{ts: x.maxTs, rel: x.maxTsRel})
		x.lastTimeTs = x.maxTs
	}
}
