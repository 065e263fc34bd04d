package client

import (
	"fmt"
	"time"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// Offset says where a Consumer starts reading a partition.
type Offset struct {
	kind offsetKind
	at   int64     // with offsetExact
	t    time.Time // with offsetTime
}

type offsetKind uint8

const (
	offsetLatest offsetKind = iota // the zero Offset: only new records
	offsetEarliest
	offsetExact
	offsetTime
)

// Earliest starts at the first record still in the log.
func Earliest() Offset { return Offset{kind: offsetEarliest} }

// Latest starts at the high watermark: only records produced from now on.
// It is the zero Offset.
func Latest() Offset { return Offset{kind: offsetLatest} }

// At starts at offset n. An n outside the log makes Poll fail with an
// *OffsetOutOfRangeError.
func At(n int64) Offset { return Offset{kind: offsetExact, at: n} }

// AtTime starts at the first record with a timestamp at or after t (the
// high watermark if there is none).
func AtTime(t time.Time) Offset { return Offset{kind: offsetTime, t: t} }

func (o Offset) String() string {
	switch o.kind {
	case offsetEarliest:
		return "earliest"
	case offsetExact:
		return fmt.Sprintf("offset %d", o.at)
	case offsetTime:
		return "time " + o.t.UTC().Format(time.RFC3339Nano)
	}
	return "latest"
}

// exact reports the offset when no broker needs to be asked.
func (o Offset) exact() (int64, bool) { return o.at, o.kind == offsetExact }

// request is the ListOffsets request that resolves o.
func (o Offset) request(topic string, partition int32) *skiffpb.ListOffsetsRequest {
	req := &skiffpb.ListOffsetsRequest{Topic: topic, Partition: partition, Spec: skiffpb.OffsetSpec_OFFSET_SPEC_LATEST}
	switch o.kind {
	case offsetEarliest:
		req.Spec = skiffpb.OffsetSpec_OFFSET_SPEC_EARLIEST
	case offsetTime:
		req.Spec = skiffpb.OffsetSpec_OFFSET_SPEC_TIMESTAMP
		req.TimestampMs = o.t.UnixMilli()
	}
	return req
}
