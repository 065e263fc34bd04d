package client

import (
	"fmt"
	"strconv"
	"strings"
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

// ParseOffset reads an Offset as people write one: "earliest", "latest",
// an offset ("42"), or "@" and a time: Unix milliseconds, RFC 3339, or a
// UTC date and time ("@2026-01-02T15:04", "@2026-01-02 15:04:05",
// "@2026-01-02").
func ParseOffset(s string) (Offset, error) {
	switch {
	case s == "earliest":
		return Earliest(), nil
	case s == "latest":
		return Latest(), nil
	case strings.HasPrefix(s, "@"):
		ts := s[1:]
		if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
			return AtTime(time.UnixMilli(ms)), nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
			if t, err := time.Parse(layout, ts); err == nil {
				return AtTime(t), nil
			}
		}
		return Offset{}, fmt.Errorf("offset %q: want @ and a time: Unix milliseconds, RFC 3339 (@2026-01-02T15:04:05Z) or @2026-01-02T15:04", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return Offset{}, fmt.Errorf("offset %q: want earliest, latest, an offset or @TIME", s)
	}
	return At(n), nil
}

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
