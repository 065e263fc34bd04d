package client

import (
	"time"

	"github.com/skiff-mq/skiff/record"
)

// Record is one message: what a Producer sends and a Consumer returns.
//
// Key and Value keep the difference between nil (null) and empty, as
// Kafka does: a nil Value is a tombstone on a compacted topic, and only a
// nil Key makes KeyPartitioner spread records instead of hashing.
type Record struct {
	Topic string
	// Partition is set by the producer's partitioner before the callback
	// runs (with ManualPartitioner the caller sets it).
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []record.Header
	// Timestamp is the create time; the zero value means "now" when
	// producing. Millisecond precision on the wire.
	Timestamp time.Time
	// Offset is the record's position in its partition, set when the
	// producer's callback reports success (-1 with AcksNone, which learns
	// no offsets) and on every consumed record.
	Offset int64
	// LeaderEpoch is the leader term the record was written in.
	LeaderEpoch int32
}

// wire converts r for the batch builder; the byte slices are shared.
func (r *Record) wire() record.Record {
	return record.Record{Timestamp: r.Timestamp.UnixMilli(), Key: r.Key, Value: r.Value, Headers: r.Headers}
}

// size approximates the memory r pins while buffered.
func (r *Record) size() int {
	n := 64 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 16 + len(h.Key) + len(h.Value)
	}
	return n
}
