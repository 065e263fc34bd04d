package consumergroup

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// NotBeforeHeader delays a record's delivery to share groups until the time
// it holds (RFC 3339, or Unix milliseconds).
const NotBeforeHeader = "skiff-not-before"

// feedRec is one record of a share-partition as the coordinator caches it.
type feedRec struct {
	rec       record.Record
	key       string // rec.Key as a string, for the key maps
	notBefore int64  // unix ms; 0 none
}

func (f *feedRec) keyNull() bool { return f.rec.Key == nil }

// feed caches the records of one share-partition from its start offset on,
// read from the data partition. Offsets are dense, so recs[i] is offset
// base+i.
type feed struct {
	base  int64
	recs  []feedRec
	extra map[int64]feedRec // single records beyond the window (redriven copies)
	// logStart is the data partition's log start as last seen.
	logStart int64
	hw       int64
	// aboveSince is when the feed's start was first seen beyond the log's
	// end (zero while it is not).
	aboveSince time.Time

	// The records' offsets by key, in offset order, and those without a
	// key: key-ordered selection looks at the first record of each key
	// that is not done instead of walking the whole window
	// (selectKeyOrdered). Offsets below the share-partition's start, or
	// done, are dropped from the front as they are met.
	byKey map[string]*offQueue
	nulls offQueue
}

// offQueue is a FIFO of offsets.
type offQueue struct {
	offs []int64
	head int
}

func (q *offQueue) empty() bool  { return q.head >= len(q.offs) }
func (q *offQueue) front() int64 { return q.offs[q.head] }
func (q *offQueue) pop() {
	q.head++
	if q.head >= 64 && q.head*2 >= len(q.offs) {
		q.offs = append([]int64(nil), q.offs[q.head:]...)
		q.head = 0
	}
}

// index adds a record appended to the feed to the key queues.
func (f *feed) index(o int64, fr *feedRec) {
	if fr.keyNull() {
		f.nulls.offs = append(f.nulls.offs, o)
		return
	}
	if f.byKey == nil {
		f.byKey = map[string]*offQueue{}
	}
	q := f.byKey[fr.key]
	if q == nil {
		q = &offQueue{}
		f.byKey[fr.key] = q
	}
	q.offs = append(q.offs, o)
}

// reset empties the feed and restarts it at base.
func (f *feed) reset(base int64) {
	f.base, f.recs, f.extra = base, nil, nil
	f.byKey, f.nulls = nil, offQueue{}
}

// aboveEndGrace is how long a share-partition's start must stay beyond its
// log's end before the share-partition starts over.
const aboveEndGrace = 30 * time.Second

func (f *feed) end() int64 { return f.base + int64(len(f.recs)) }

func (f *feed) get(o int64) (*feedRec, bool) {
	if o >= f.base && o < f.end() {
		return &f.recs[o-f.base], true
	}
	if r, ok := f.extra[o]; ok {
		return &r, true
	}
	return nil, false
}

// trim drops records below start.
func (f *feed) trim(start int64) {
	switch {
	case start >= f.end():
		f.base, f.recs = start, nil
	case start > f.base:
		// Copy only once the dropped prefix is most of the array, so that
		// trimming costs nothing per fetch yet memory is given back.
		if cut := start - f.base; cut*2 >= int64(cap(f.recs)) {
			f.recs = append([]feedRec(nil), f.recs[cut:]...)
		} else {
			f.recs = f.recs[cut:]
		}
		f.base = start
	}
	for o := range f.extra {
		if o < start {
			delete(f.extra, o)
		}
	}
}

// maxFeedReadBytes bounds one read of a data partition into a feed.
const maxFeedReadBytes = 1 << 20

// fill reads records from the feed's end up to limit (exclusive), at most
// a few reads per call.
func (f *feed) fill(ctx context.Context, h Host, topic string, p int32, limit int64) error {
	if f.end() >= limit {
		return nil
	}
	reads, err := readFeed(ctx, h, topic, p, f.end(), limit)
	if aerr := f.absorb(reads, limit); aerr != nil {
		return aerr
	}
	return err
}

// readFeed reads a data partition from offset from on, up to limit, in at
// most a few reads. It touches no feed: the shell calls it without its
// lock, and absorbs the reads under it.
func readFeed(ctx context.Context, h Host, topic string, p int32, from, limit int64) ([]ReadResult, error) {
	var out []ReadResult
	for range 4 {
		if from >= limit {
			break
		}
		res, err := h.ReadPartition(ctx, topic, p, from, maxFeedReadBytes)
		if err != nil {
			return out, err
		}
		out = append(out, res)
		next := batchesEnd(res.Batches, from)
		if next <= from || next >= res.End {
			break // nothing new, or the end of the log
		}
		from = next
	}
	return out, nil
}

// batchesEnd is the offset after the last whole batch of data (from when
// there is none).
func batchesEnd(data []byte, from int64) int64 {
	end := from
	for batch, err := range record.Batches(data) {
		if err != nil {
			break
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			break
		}
		end = max(end, h.BaseOffset+int64(h.LastOffsetDelta)+1)
	}
	return end
}

// absorb appends reads made from the feed's end (readFeed) up to limit.
// It reports a start below the log start, or one beyond the log's end for
// longer than aboveEndGrace.
func (f *feed) absorb(reads []ReadResult, limit int64) error {
	for _, res := range reads {
		f.logStart, f.hw = res.Start, res.End
		if f.end() < res.Start {
			return errBelowLogStart
		}
		// Beyond the log's end for a while (not a replica that trails for
		// a moment): the topic was recreated.
		if f.base > res.End {
			if f.aboveSince.IsZero() {
				f.aboveSince = time.Now()
			}
			if time.Since(f.aboveSince) > aboveEndGrace {
				return errAboveLogEnd
			}
			return nil
		}
		f.aboveSince = time.Time{}
		if err := f.appendBatches(res.Batches, limit); err != nil {
			return err
		}
	}
	return nil
}

var (
	errBelowLogStart = errors.New("share-partition start is below the data log's start")
	errAboveLogEnd   = errors.New("share-partition start is beyond the data log's end (topic recreated?)")
)

func (f *feed) appendBatches(data []byte, limit int64) error {
	for batch, err := range record.Batches(data) {
		if errors.Is(err, record.ErrShortBuffer) {
			return nil
		}
		if err != nil {
			return err
		}
		err = record.Records(batch, func(r record.Record) error {
			if r.Offset != f.end() || r.Offset >= limit {
				return nil
			}
			fr := feedRec{rec: cloneRecord(r), notBefore: notBefore(r)}
			fr.key = string(fr.rec.Key)
			f.recs = append(f.recs, fr)
			f.index(r.Offset, &fr)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readOne reads the single record at o (beyond the window) into extra.
func (f *feed) readOne(ctx context.Context, h Host, topic string, p int32, o int64) (*feedRec, error) {
	if fr, ok := f.get(o); ok {
		return fr, nil
	}
	res, err := h.ReadPartition(ctx, topic, p, o, maxFeedReadBytes)
	if err != nil {
		return nil, err
	}
	var found *feedRec
	for batch, err := range record.Batches(res.Batches) {
		if err != nil {
			break
		}
		record.Records(batch, func(r record.Record) error {
			if r.Offset == o {
				found = &feedRec{rec: cloneRecord(r), notBefore: notBefore(r)}
				found.key = string(found.rec.Key)
			}
			return nil
		})
		if found != nil {
			break
		}
	}
	if found == nil {
		return nil, ErrUnknownRecord
	}
	if f.extra == nil {
		f.extra = map[int64]feedRec{}
	}
	f.extra[o] = *found
	return found, nil
}

// cloneRecord copies a record out of the fetch buffer it aliases.
func cloneRecord(r record.Record) record.Record {
	c := r
	if r.Key != nil {
		c.Key = append([]byte{}, r.Key...)
	}
	if r.Value != nil {
		c.Value = append([]byte{}, r.Value...)
	}
	c.Headers = nil
	for _, h := range r.Headers {
		hv := h.Value
		if hv != nil {
			hv = append([]byte{}, hv...)
		}
		c.Headers = append(c.Headers, record.Header{Key: h.Key, Value: hv})
	}
	return c
}

// notBefore parses the record's NotBeforeHeader (0 when absent or
// unreadable: deliver now).
func notBefore(r record.Record) int64 {
	for _, h := range r.Headers {
		if h.Key != NotBeforeHeader {
			continue
		}
		s := string(h.Value)
		if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
			return ms
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t.UnixMilli()
		}
	}
	return 0
}
