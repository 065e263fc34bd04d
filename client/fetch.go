package client

import (
	"errors"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// decodeFetch turns a fetch response's batches into records from offset
// on, and returns the offset to fetch next.
//
// A fetch starts at the batch holding offset, so records before it are
// skipped; control batches carry no user records but advance the offset.
// A partial last batch (the response was cut at MaxBytes) is left for the
// next fetch. Every batch's CRC is checked, so corruption anywhere between
// the producer and here is an error, never a wrong record.
func decodeFetch(tp topicPartition, offset int64, buf []byte) ([]*Record, int64, error) {
	var recs []*Record
	next := offset
	for batch, err := range record.Batches(buf) {
		if errors.Is(err, record.ErrShortBuffer) {
			break
		}
		if err != nil {
			return nil, offset, err
		}
		h, rs, err := record.Decode(batch)
		if err != nil {
			return nil, offset, err
		}
		if h.NextOffset() <= next {
			continue // wholly before the position
		}
		if !h.Control() {
			for _, r := range rs {
				if r.Offset < next {
					continue
				}
				recs = append(recs, &Record{
					Topic:       tp.topic,
					Partition:   tp.partition,
					Key:         r.Key,
					Value:       r.Value,
					Headers:     r.Headers,
					Timestamp:   time.UnixMilli(r.Timestamp),
					Offset:      r.Offset,
					LeaderEpoch: h.PartitionLeaderEpoch,
				})
			}
		}
		next = h.NextOffset()
	}
	return recs, next, nil
}
