package rpc

import (
	"fmt"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// checkFormat refuses a fetch format this server does not know, so that a
// newer client asking for one gets an error rather than batches it did
// not ask for.
func checkFormat(f skiffpb.FetchFormat) error {
	switch f {
	case skiffpb.FetchFormat_FETCH_FORMAT_BATCHES, skiffpb.FetchFormat_FETCH_FORMAT_RECORDS:
		return nil
	}
	return invalid("format", "unknown fetch format %d: use FETCH_FORMAT_BATCHES or FETCH_FORMAT_RECORDS", f)
}

// fillRecords turns the batches of a fetch answer into decoded records at
// or after from, for FETCH_FORMAT_RECORDS: the first batch may start
// before the offset asked for, and callers in other languages should not
// have to skip its head. Each batch's CRC is checked first (record.Records
// verifies before it yields). next is the offset after the last whole
// batch, or from when there is none.
func fillRecords(resp *skiffpb.FetchResponse, partition int32, from int64) error {
	batches := resp.Batches
	resp.Batches = nil
	resp.NextOffset = from
	for batch, err := range record.Batches(batches) {
		if err != nil {
			return fmt.Errorf("decode partition %d from offset %d: %w", partition, from, err)
		}
		h, err := record.ParseHeader(batch)
		if err != nil {
			return fmt.Errorf("decode partition %d from offset %d: %w", partition, from, err)
		}
		resp.NextOffset = max(resp.NextOffset, h.NextOffset())
		if h.Control() || h.LastOffset() < from {
			continue
		}
		err = record.Records(batch, func(r record.Record) error {
			if r.Offset < from {
				return nil
			}
			resp.Records = append(resp.Records, consumedRecord(partition, r))
			return nil
		})
		if err != nil {
			return fmt.Errorf("decode batch at offset %d of partition %d: %w", h.BaseOffset, partition, err)
		}
	}
	return nil
}

func consumedRecord(partition int32, r record.Record) *skiffpb.ConsumedRecord {
	out := &skiffpb.ConsumedRecord{Partition: partition, Offset: r.Offset, TimestampMs: r.Timestamp,
		Key: r.Key, KeyNull: r.Key == nil, Value: r.Value, ValueNull: r.Value == nil}
	if len(r.Headers) > 0 {
		out.Headers = make([]*skiffpb.Header, len(r.Headers))
		for i, h := range r.Headers {
			out.Headers[i] = &skiffpb.Header{Key: h.Key, Value: h.Value}
		}
	}
	return out
}
