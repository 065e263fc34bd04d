package rpc

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// emptyBatch is a well-framed batch with a valid CRC and no records.
func emptyBatch(t testing.TB) []byte {
	b := encodeValues(t, record.BatchOptions{}, "x")[:record.HeaderSize]
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[8:], uint32(record.HeaderSize-record.LogOverhead)) // batchLength
	binary.BigEndian.PutUint32(b[57:], 0)                                           // recordCount
	binary.BigEndian.PutUint32(b[17:], record.Checksum(b))                          // crc
	return b
}

func TestBadInputIsRejectedWithTheRightCodeAndNothingIsWritten(t *testing.T) {
	c := theCluster(t)
	const topic = "bad-input"
	leader := c.createTopic(t, topic, 2, 3, map[string]string{"max.message.bytes": "2048"})[0]
	ctx := ctxFor(t, 30*time.Second)

	good := encodeValues(t, record.BatchOptions{}, "fine")
	badCRC := bytes.Clone(good)
	badCRC[len(badCRC)-1] ^= 0xff
	huge := encodeValues(t, record.BatchOptions{}, strings.Repeat("x", 3000))
	manyHeaders := make([]*skiffpb.Header, MaxHeadersPerRecord+1)
	for i := range manyHeaders {
		manyHeaders[i] = &skiffpb.Header{Key: "h"}
	}
	recs := func(rs ...*skiffpb.Record) []*skiffpb.Record { return rs }

	produce := func(req *skiffpb.ProduceRequest) error {
		_, err := leader.producer.Produce(ctx, req)
		return err
	}
	fetch := func(req *skiffpb.FetchRequest) error {
		_, err := leader.consumer.Fetch(ctx, req)
		return err
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  codes.Code
		field string // the BadRequest field, "" for none
	}{
		{"oversized batch", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: huge}) }, codes.ResourceExhausted, "batch"},
		{"oversized records", func() error {
			return produce(&skiffpb.ProduceRequest{Topic: topic, Records: recs(&skiffpb.Record{Value: []byte(strings.Repeat("x", 3000))})})
		}, codes.ResourceExhausted, "records"},
		{"bad crc", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: badCRC}) }, codes.InvalidArgument, "batch"},
		{"truncated batch", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: good[:len(good)-3]}) }, codes.InvalidArgument, "batch"},
		{"two batches", func() error {
			return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: append(bytes.Clone(good), good...)})
		}, codes.InvalidArgument, "batch"},
		{"empty batch", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: emptyBatch(t)}) }, codes.InvalidArgument, "batch"},
		{"neither batch nor records", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic}) }, codes.InvalidArgument, "batch"},
		{"both batch and records", func() error {
			return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: good, Records: recs(&skiffpb.Record{})})
		}, codes.InvalidArgument, "records"},
		{"too many headers", func() error {
			return produce(&skiffpb.ProduceRequest{Topic: topic, Records: recs(&skiffpb.Record{Headers: manyHeaders})})
		}, codes.InvalidArgument, "records[0].headers"},
		{"negative timestamp", func() error {
			return produce(&skiffpb.ProduceRequest{Topic: topic, Records: recs(&skiffpb.Record{}, &skiffpb.Record{TimestampMs: -5})})
		}, codes.InvalidArgument, "records[1].timestamp_ms"},
		{"unknown acks", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Batch: good, Acks: 7}) }, codes.InvalidArgument, "acks"},
		{"unknown topic", func() error { return produce(&skiffpb.ProduceRequest{Topic: "no-such-topic", Batch: good}) }, codes.NotFound, ""},
		{"invalid topic name", func() error { return produce(&skiffpb.ProduceRequest{Topic: "bad topic!", Batch: good}) }, codes.InvalidArgument, "topic"},
		{"empty topic name", func() error { return produce(&skiffpb.ProduceRequest{Batch: good}) }, codes.InvalidArgument, "topic"},
		{"partition out of range", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Partition: 2, Batch: good}) }, codes.InvalidArgument, "partition"},
		{"negative partition", func() error { return produce(&skiffpb.ProduceRequest{Topic: topic, Partition: -1, Batch: good}) }, codes.InvalidArgument, "partition"},
		{"fetch negative offset", func() error { return fetch(&skiffpb.FetchRequest{Topic: topic, Offset: -1}) }, codes.InvalidArgument, "offset"},
		{"fetch negative max_bytes", func() error { return fetch(&skiffpb.FetchRequest{Topic: topic, MaxBytes: -1}) }, codes.InvalidArgument, "max_bytes"},
		{"fetch unknown topic", func() error { return fetch(&skiffpb.FetchRequest{Topic: "no-such-topic"}) }, codes.NotFound, ""},
		{"fetch partition out of range", func() error { return fetch(&skiffpb.FetchRequest{Topic: topic, Partition: 9}) }, codes.InvalidArgument, "partition"},
		{"list offsets unknown spec", func() error {
			_, err := leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: topic, Spec: 42})
			return err
		}, codes.InvalidArgument, "spec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := wantCode(t, tc.call(), tc.code)
			if got := fieldViolation(st); got != tc.field {
				t.Errorf("field %q, want %q (%s)", got, tc.field, st.Message())
			}
			if errorReason(st) == "" {
				t.Errorf("no ErrorInfo detail in %v", st)
			}
		})
	}
	if st := wantCode(t, produce(&skiffpb.ProduceRequest{Topic: topic, Batch: huge}), codes.ResourceExhausted); !strings.Contains(st.Message(), "max.message.bytes") || !strings.Contains(st.Message(), "2048") {
		t.Errorf("size error %q does not name the limit", st.Message())
	}

	// Nothing was written; the server still serves.
	lo, err := leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: topic})
	if err != nil || lo.HighWatermark != 0 {
		t.Fatalf("high watermark after bad input: %+v, %v; want 0", lo, err)
	}
	if err := produce(&skiffpb.ProduceRequest{Topic: topic, Batch: good}); err != nil {
		t.Fatalf("a good batch after the bad ones: %v", err)
	}

	// Past the end: OUT_OF_RANGE with the valid range.
	_, err = leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: topic, Offset: 1000})
	st := wantCode(t, err, codes.OutOfRange)
	var oor *skiffpb.OffsetOutOfRange
	for _, d := range st.Details() {
		if o, ok := d.(*skiffpb.OffsetOutOfRange); ok {
			oor = o
		}
	}
	if oor == nil || oor.Offset != 1000 || oor.LogStartOffset != 0 || oor.HighWatermark != 1 {
		t.Errorf("OffsetOutOfRange detail %v, want offset 1000 in [0, 1]", oor)
	}
}
