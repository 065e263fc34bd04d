package rpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// FETCH_FORMAT_RECORDS answers what a client in any language needs without
// a batch decoder: records at or after the offset asked for (the head of
// the first batch skipped), null keys and values told apart from empty
// ones, headers, and the next offset to ask for.
func TestFetchRecordsFormatDecodesFromTheOffsetOn(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "decoded", 1, 3, nil)[0]
	ctx := ctxFor(t, 20*time.Second)
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "decoded", Records: []*skiffpb.Record{
		{Key: []byte("a"), Value: []byte("one"), Headers: []*skiffpb.Header{{Key: "h", Value: []byte("v")}}},
		{KeyNull: true, Value: []byte("two"), TimestampMs: 1234},
		{Key: []byte{}, ValueNull: true},
	}}); err != nil {
		t.Fatal(err)
	}
	compressed, err := record.Encode(record.BatchOptions{Compression: record.CompressionZstd}, []record.Record{
		{Timestamp: 99, Key: []byte("z"), Value: []byte("four")}, {Timestamp: 99, Key: []byte("z"), Value: []byte("five")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "decoded", Batch: compressed}); err != nil {
		t.Fatal(err)
	}

	resp, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: "decoded", Offset: 1, Format: skiffpb.FetchFormat_FETCH_FORMAT_RECORDS})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Batches) != 0 || resp.NextOffset != 5 || resp.HighWatermark != 5 {
		t.Fatalf("answer carries %d batch bytes, next offset %d, high watermark %d: want no batches, 5, 5", len(resp.Batches), resp.NextOffset, resp.HighWatermark)
	}
	type want struct {
		offset             int64
		key, value         string
		keyNull, valueNull bool
		timestamp, headers int
	}
	wants := []want{
		{offset: 1, keyNull: true, value: "two", timestamp: 1234},
		{offset: 2, key: "", valueNull: true, timestamp: -1},
		{offset: 3, key: "z", value: "four", timestamp: 99},
		{offset: 4, key: "z", value: "five", timestamp: 99},
	}
	if len(resp.Records) != len(wants) {
		t.Fatalf("%d records from offset 1, want %d", len(resp.Records), len(wants))
	}
	for i, w := range wants {
		r := resp.Records[i]
		if r.Partition != 0 || r.Offset != w.offset || string(r.Key) != w.key || r.KeyNull != w.keyNull ||
			string(r.Value) != w.value || r.ValueNull != w.valueNull || (w.timestamp >= 0 && r.TimestampMs != int64(w.timestamp)) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
	}

	from0, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: "decoded", Offset: 0, Format: skiffpb.FetchFormat_FETCH_FORMAT_RECORDS})
	if err != nil {
		t.Fatal(err)
	}
	if h := from0.Records[0].Headers; len(h) != 1 || h[0].Key != "h" || string(h[0].Value) != "v" {
		t.Errorf("headers of offset 0: %+v", h)
	}
	end, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: "decoded", Offset: 5, Format: skiffpb.FetchFormat_FETCH_FORMAT_RECORDS})
	if err != nil || len(end.Records) != 0 || end.NextOffset != 5 {
		t.Errorf("fetch at the end: %v, %d records, next %d", err, len(end.GetRecords()), end.GetNextOffset())
	}

	_, err = leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: "decoded", Format: skiffpb.FetchFormat(7)})
	wantCode(t, err, codes.InvalidArgument)
}

func TestSubscribeRecordsFormat(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "decoded-stream", 1, 3, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "decoded-stream", Records: []*skiffpb.Record{
			{Value: []byte(fmt.Sprint("a-", i))}, {Value: []byte(fmt.Sprint("b-", i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	sub, err := leader.consumer.Subscribe(ctx, &skiffpb.SubscribeRequest{Topic: "decoded-stream", Offset: 3, Format: skiffpb.FetchFormat_FETCH_FORMAT_RECORDS})
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	var offsets []int64
	for len(values) < 3 {
		resp, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %d records: %v", len(values), err)
		}
		if len(resp.Batches) != 0 {
			t.Fatalf("records format sent %d batch bytes", len(resp.Batches))
		}
		for _, r := range resp.Records {
			values = append(values, string(r.Value))
			offsets = append(offsets, r.Offset)
		}
	}
	if fmt.Sprint(values) != "[b-1 a-2 b-2]" || fmt.Sprint(offsets) != "[3 4 5]" {
		t.Fatalf("streamed %v at %v, want [b-1 a-2 b-2] at [3 4 5]", values, offsets)
	}
}

// Plain records can be written exactly once: a retried idempotent request
// is answered as a duplicate with the first write's offsets.
func TestIdempotentPlainRecords(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "idempotent-records", 1, 3, nil)[0]
	ctx := ctxFor(t, 10*time.Second)
	pid, err := leader.producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}
	req := &skiffpb.ProduceRequest{Topic: "idempotent-records", Idempotent: true, ProducerId: pid.ProducerId,
		Records: []*skiffpb.Record{{Value: []byte("x")}, {Value: []byte("y")}}}
	r1, err := leader.producer.Produce(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := leader.producer.Produce(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r1.Duplicate || !r2.Duplicate || r2.BaseOffset != r1.BaseOffset || r2.LastOffset != r1.LastOffset {
		t.Fatalf("first %+v, retry %+v: want the retry answered as a duplicate at the same offsets", r1, r2)
	}
	next := &skiffpb.ProduceRequest{Topic: "idempotent-records", Idempotent: true, ProducerId: pid.ProducerId, BaseSequence: 2,
		Records: []*skiffpb.Record{{Value: []byte("z")}}}
	r3, err := leader.producer.Produce(ctx, next)
	if err != nil || r3.Duplicate || r3.BaseOffset != r1.LastOffset+1 {
		t.Fatalf("next sequence: %+v, %v", r3, err)
	}
	if recs := fetchAll(t, leader, "idempotent-records", 0, 0); len(recs) != 3 {
		t.Fatalf("%d records in the log, want 3", len(recs))
	}

	for _, bad := range []*skiffpb.ProduceRequest{
		{Topic: "idempotent-records", Idempotent: true, ProducerId: -1, Records: req.Records},
		{Topic: "idempotent-records", Idempotent: true, ProducerId: pid.ProducerId, ProducerEpoch: 1 << 16, Records: req.Records},
		{Topic: "idempotent-records", Idempotent: true, ProducerId: pid.ProducerId, BaseSequence: -3, Records: req.Records},
		{Topic: "idempotent-records", ProducerEpoch: 3, BaseSequence: 1, Records: req.Records},
		{Topic: "idempotent-records", Idempotent: true, ProducerId: pid.ProducerId, Batch: encodeValues(t, record.BatchOptions{}, "b")},
	} {
		_, err := leader.producer.Produce(ctx, bad)
		if st := statusOf(t, err); st.Code() != codes.InvalidArgument {
			t.Errorf("idempotent %v producer %d epoch %d sequence %d, %d batch bytes: got %v (%s), want InvalidArgument",
				bad.Idempotent, bad.ProducerId, bad.ProducerEpoch, bad.BaseSequence, len(bad.Batch), st.Code(), st.Message())
		}
	}
}
