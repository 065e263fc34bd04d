package rpc

import (
	"fmt"
	"math"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Limits checked at the edge besides the topic's max.message.bytes.
const (
	// MaxHeadersPerRecord bounds a record's headers, in plain records and
	// in encoded batches alike.
	MaxHeadersPerRecord = 1000
	// DefaultFetchMaxBytes is a fetch's max_bytes when the request leaves
	// it 0.
	DefaultFetchMaxBytes = 1 << 20
	// MaxFetchBytes caps max_bytes: a response never needs to be larger
	// than the largest batch a topic may hold (metadata.MaxMaxMessageBytes).
	MaxFetchBytes = metadata.MaxMaxMessageBytes
)

// validateTopic checks a topic name in a request. Internal topic names
// ("__consumer_offsets") pass: reading them is allowed.
func validateTopic(field, name string) error {
	switch {
	case name == "":
		return invalid(field, "topic name is empty")
	case len(name) > metadata.MaxTopicNameLength:
		return invalid(field, "topic name is %d characters long, at most %d allowed", len(name), metadata.MaxTopicNameLength)
	case name == "." || name == "..":
		return invalid(field, "topic name %q is not allowed", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalid(field, "topic name %q: character %q at %d is not one of [a-zA-Z0-9._-]", name, rune(c), i)
		}
	}
	return nil
}

// lookupPartition validates topic and partition against this node's
// metadata and returns the topic.
func lookupPartition(st *metadata.State, topic string, p int32) (*metadata.Topic, error) {
	if err := validateTopic("topic", topic); err != nil {
		return nil, err
	}
	if p < 0 {
		return nil, invalid("partition", "%d: must not be negative", p)
	}
	t, ok := st.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, topic)
	}
	if int(p) >= len(t.Partitions) {
		return nil, invalid("partition", "%d out of range: topic %s has partitions 0..%d", p, topic, len(t.Partitions)-1)
	}
	return t, nil
}

// requestBatch returns the one batch a produce request writes: its batch,
// validated, or one built from its plain records. limit is the topic's
// max.message.bytes.
func requestBatch(req *skiffpb.ProduceRequest, limit int, now time.Time) ([]byte, error) {
	switch {
	case len(req.Batch) > 0 && len(req.Records) > 0:
		return nil, invalid("records", "send either batch or records, not both")
	case len(req.Batch) > 0:
		if req.Idempotent {
			return nil, invalid("idempotent", "a batch carries its producer id, epoch and sequence in its header: set idempotent only with records")
		}
		return req.Batch, validateBatch(req.Batch, limit)
	case len(req.Records) > 0:
		opts, err := recordsBatchOptions(req)
		if err != nil {
			return nil, err
		}
		return buildBatch(req.Records, opts, limit, now)
	}
	return nil, invalid("batch", "the request carries no batch and no records (exactly one is required)")
}

// validateBatch checks an encoded batch before it reaches Raft: within the
// size limit, exactly one intact v2 batch (CRC, framing, known codec),
// records that decode, and the header limit. Only the records section is
// read (decompressed if need be); the bytes go on unchanged.
func validateBatch(b []byte, limit int) error {
	if len(b) > limit {
		return &tooLargeError{Field: "batch", What: "bytes", Size: len(b), Limit: limit, Config: "max.message.bytes"}
	}
	h, err := record.Verify(b)
	if err != nil {
		return err
	}
	switch {
	case h.Size() != len(b):
		return invalid("batch", "%d bytes follow the batch: send exactly one batch", len(b)-h.Size())
	case h.RecordCount == 0:
		return invalid("batch", "the batch holds no records")
	case int64(h.RecordCount) != int64(h.LastOffsetDelta)+1:
		return invalid("batch", "recordCount %d does not match lastOffsetDelta %d", h.RecordCount, h.LastOffsetDelta)
	case h.Transactional() || h.Control():
		return invalid("batch", "transactional and control batches are not supported")
	}
	i := 0
	return record.Records(b, func(r record.Record) error {
		if len(r.Headers) > MaxHeadersPerRecord {
			return invalid(fmt.Sprintf("batch.records[%d].headers", i), "%d headers, at most %d allowed", len(r.Headers), MaxHeadersPerRecord)
		}
		i++
		return nil
	})
}

// buildBatch encodes plain records into one uncompressed batch. A
// timestamp of 0 becomes now; proto3 cannot tell an empty key or value
// from an absent one, so nullness comes from key_null and value_null.
func buildBatch(in []*skiffpb.Record, opts record.BatchOptions, limit int, now time.Time) ([]byte, error) {
	recs := make([]record.Record, len(in))
	size := record.HeaderSize
	nowMs := now.UnixMilli()
	for i, r := range in {
		if len(r.Headers) > MaxHeadersPerRecord {
			return nil, invalid(fmt.Sprintf("records[%d].headers", i), "%d headers, at most %d allowed", len(r.Headers), MaxHeadersPerRecord)
		}
		if r.TimestampMs < 0 {
			return nil, invalid(fmt.Sprintf("records[%d].timestamp_ms", i), "%d: must not be negative (0 means the broker's time)", r.TimestampMs)
		}
		rec := record.Record{Timestamp: r.TimestampMs, Key: nonNull(r.Key), Value: nonNull(r.Value)}
		if rec.Timestamp == 0 {
			rec.Timestamp = nowMs
		}
		if r.KeyNull {
			rec.Key = nil
		}
		if r.ValueNull {
			rec.Value = nil
		}
		size += len(rec.Key) + len(rec.Value)
		if len(r.Headers) > 0 {
			rec.Headers = make([]record.Header, len(r.Headers))
			for j, h := range r.Headers {
				rec.Headers[j] = record.Header{Key: h.Key, Value: nonNull(h.Value)}
				size += len(h.Key) + len(h.Value)
			}
		}
		// Checked as we go so that a huge request is refused before
		// anything is encoded; the encoded size is checked below.
		if size > limit {
			return nil, &tooLargeError{Field: "records", What: "bytes", Size: size, Limit: limit, Config: "max.message.bytes"}
		}
		recs[i] = rec
	}
	b, err := record.Encode(opts, recs)
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, &tooLargeError{Field: "records", What: "bytes (encoded)", Size: len(b), Limit: limit, Config: "max.message.bytes"}
	}
	return b, nil
}

// recordsBatchOptions reads the idempotent producer's fields of a request
// of plain records.
func recordsBatchOptions(req *skiffpb.ProduceRequest) (record.BatchOptions, error) {
	if !req.Idempotent {
		if req.ProducerId != 0 || req.ProducerEpoch != 0 || req.BaseSequence != 0 {
			return record.BatchOptions{}, invalid("idempotent", "producer_id, producer_epoch and base_sequence are set but idempotent is not: set idempotent too")
		}
		return record.BatchOptions{}, nil
	}
	switch {
	case req.ProducerId < 0:
		return record.BatchOptions{}, invalid("producer_id", "%d: must not be negative (call InitProducerId for one)", req.ProducerId)
	case req.ProducerEpoch < 0 || req.ProducerEpoch > math.MaxInt16:
		return record.BatchOptions{}, invalid("producer_epoch", "%d: must be in [0, %d]", req.ProducerEpoch, math.MaxInt16)
	case req.BaseSequence < 0:
		return record.BatchOptions{}, invalid("base_sequence", "%d: must not be negative", req.BaseSequence)
	}
	return record.BatchOptions{Idempotent: true, ProducerID: req.ProducerId,
		ProducerEpoch: int16(req.ProducerEpoch), BaseSequence: req.BaseSequence}, nil
}

func nonNull(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
