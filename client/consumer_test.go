package client

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func testConsumer(f *fakeCluster) *Consumer {
	return newConsumer(f, ConsumerConfig{MaxWait: 10 * time.Millisecond}, time.Second, slog.New(slog.DiscardHandler))
}

// encodeAt builds a batch of values whose first record has offset base.
func encodeAt(t *testing.T, base int64, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Timestamp: 1700000000000 + int64(i), Key: []byte("k"), Value: []byte(v)}
	}
	b, err := record.Encode(record.BatchOptions{}, recs)
	if err != nil {
		t.Fatal(err)
	}
	record.SetBaseOffset(b, base)
	return b
}

func TestAssignResolvesOffsetsThroughTheLeader(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 2})
	var mu sync.Mutex
	var seen []*skiffpb.ListOffsetsRequest
	f.offsetFn = func(addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error) {
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		switch req.Spec {
		case skiffpb.OffsetSpec_OFFSET_SPEC_EARLIEST:
			return &skiffpb.ListOffsetsResponse{Offset: 10, LogStartOffset: 10, HighWatermark: 50}, nil
		case skiffpb.OffsetSpec_OFFSET_SPEC_LATEST:
			return &skiffpb.ListOffsetsResponse{Offset: 50, LogStartOffset: 10, HighWatermark: 50}, nil
		}
		return &skiffpb.ListOffsetsResponse{Offset: 30 + req.TimestampMs%7}, nil
	}
	co := testConsumer(f)
	defer co.Close()
	ctx := context.Background()
	at := time.UnixMilli(1_700_000_000_003)
	for _, tc := range []struct {
		from Offset
		want int64
	}{
		{Earliest(), 10},
		{Latest(), 50},
		{Offset{}, 50}, // the zero Offset is Latest
		{At(42), 42},
		{AtTime(at), 30 + at.UnixMilli()%7},
	} {
		if err := co.Assign(ctx, "t", 1, tc.from); err != nil {
			t.Fatal(err)
		}
		if got, ok := co.Position("t", 1); !ok || got != tc.want {
			t.Errorf("%v: position %d, want %d", tc.from, got, tc.want)
		}
	}
	if len(seen) != 4 {
		t.Fatalf("%d ListOffsets calls, want 4 (At needs none)", len(seen))
	}
	if last := seen[3]; last.Spec != skiffpb.OffsetSpec_OFFSET_SPEC_TIMESTAMP || last.TimestampMs != at.UnixMilli() || last.Partition != 1 {
		t.Fatalf("AtTime asked %v", last)
	}
	if err := co.Assign(ctx, "t", 0, At(-1)); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestAssignFollowsNotLeader(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 1})
	f.offsetFn = func(addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error) {
		if addr != "real-leader" {
			return nil, &NotLeaderError{LeaderID: "n3", LeaderAddr: "real-leader"}
		}
		return &skiffpb.ListOffsetsResponse{Offset: 7}, nil
	}
	co := testConsumer(f)
	defer co.Close()
	if err := co.Assign(context.Background(), "t", 0, Earliest()); err != nil {
		t.Fatal(err)
	}
	if got, _ := co.Position("t", 0); got != 7 {
		t.Fatalf("position %d", got)
	}
}

func TestDecodeFetchSkipsRecordsBeforeTheOffset(t *testing.T) {
	buf := append(encodeAt(t, 100, "a", "b", "c"), encodeAt(t, 103, "d", "e")...)
	partial := encodeAt(t, 105, "f")
	buf = append(buf, partial[:len(partial)-3]...) // cut at MaxBytes
	recs, next, err := decodeFetch(topicPartition{"t", 0}, 101, buf)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, r := range recs {
		got += string(r.Value) + strconv.FormatInt(r.Offset, 10) + " "
	}
	if got != "b101 c102 d103 e104 " || next != 105 {
		t.Fatalf("records %q next %d", got, next)
	}
	if recs[0].Timestamp.UnixMilli() != 1700000000001 || recs[0].Topic != "t" {
		t.Fatalf("record %+v", recs[0])
	}
}

func TestDecodeFetchRejectsACorruptBatch(t *testing.T) {
	b := encodeAt(t, 0, "hello")
	b[len(b)-1] ^= 0xff
	if _, _, err := decodeFetch(topicPartition{"t", 0}, 0, b); !errors.Is(err, record.ErrCRCMismatch) {
		t.Fatalf("got %v, want a CRC mismatch", err)
	}
}

func TestPollReturnsRecordsAndTypedOutOfRange(t *testing.T) {
	f := newFakeCluster(map[string]int{"t": 2})
	batch := encodeAt(t, 0, "x0", "x1")
	f.fetchFn = func(addr string, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error) {
		if req.Partition == 1 {
			return nil, &OffsetOutOfRangeError{Offset: req.Offset, Start: 0, End: 2}
		}
		if req.Offset >= 2 {
			time.Sleep(5 * time.Millisecond) // a long poll that finds nothing
			return &skiffpb.FetchResponse{HighWatermark: 2}, nil
		}
		return &skiffpb.FetchResponse{Batches: batch, HighWatermark: 2}, nil
	}
	co := testConsumer(f)
	defer co.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := co.Assign(ctx, "t", 0, At(1)); err != nil {
		t.Fatal(err)
	}
	if err := co.Assign(ctx, "t", 1, At(99)); err != nil {
		t.Fatal(err)
	}
	var got []string
	var oor *OffsetOutOfRangeError
	for (len(got) < 1 || oor == nil) && ctx.Err() == nil {
		recs, err := co.Poll(ctx)
		for _, r := range recs {
			got = append(got, string(r.Value))
		}
		if err != nil && !errors.As(err, &oor) {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0] != "x1" {
		t.Fatalf("records %v, want [x1] (x0 is before the assigned offset)", got)
	}
	if oor.Topic != "t" || oor.Partition != 1 || oor.Offset != 99 || oor.End != 2 {
		t.Fatalf("out of range %+v", oor)
	}
	if pos, _ := co.Position("t", 0); pos != 2 {
		t.Fatalf("position %d, want 2", pos)
	}
	// Nothing more: Poll waits until ctx ends.
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if recs, err := co.Poll(short); len(recs) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle poll: %v %v", recs, err)
	}
}

func TestPollAfterCloseFails(t *testing.T) {
	co := testConsumer(newFakeCluster(map[string]int{"t": 1}))
	co.Close()
	if _, err := co.Poll(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}
