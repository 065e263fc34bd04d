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
	notBefore int64 // unix ms; 0 none
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
		f.recs = append([]feedRec(nil), f.recs[start-f.base:]...)
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

// fill reads records from the feed's end up to limit (exclusive), at most a
// few reads per call.
func (f *feed) fill(ctx context.Context, h Host, topic string, p int32, limit int64) error {
	for range 4 {
		if f.end() >= limit {
			return nil
		}
		res, err := h.ReadPartition(ctx, topic, p, f.end(), maxFeedReadBytes)
		if err != nil {
			return err
		}
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
		n := len(f.recs)
		if err := f.appendBatches(res.Batches, limit); err != nil {
			return err
		}
		if len(f.recs) == n {
			return nil // nothing new
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
			f.recs = append(f.recs, fr)
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
