package rpc

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fetchAll fetches from offset until the high watermark and decodes every
// record at or after offset.
func fetchAll(t testing.TB, tn *testNode, topic string, p int32, offset int64) []record.Record {
	t.Helper()
	var out []record.Record
	for {
		resp, err := tn.consumer.Fetch(ctxFor(t, 10*time.Second), &skiffpb.FetchRequest{Topic: topic, Partition: p, Offset: offset})
		if err != nil {
			t.Fatalf("fetch %s/%d@%d: %v", topic, p, offset, err)
		}
		if len(resp.Batches) == 0 {
			return out
		}
		for batch, err := range record.Batches(resp.Batches) {
			if err != nil {
				t.Fatalf("split batches: %v", err)
			}
			_, recs, err := record.Decode(batch)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			for _, r := range recs {
				if r.Offset >= offset {
					out = append(out, r)
				}
			}
			if n := len(recs); n > 0 {
				offset = max(offset, recs[n-1].Offset+1)
			}
		}
		if offset >= resp.HighWatermark {
			return out
		}
	}
}

func encodeValues(t testing.TB, opts record.BatchOptions, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Timestamp: time.Now().UnixMilli(), Key: []byte("k"), Value: []byte(v)}
	}
	b, err := record.Encode(opts, recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProducedRecordsAndBatchesFetchBackAtTheirOffsets(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "produce-fetch", 1, 3, nil)[0]
	ctx := ctxFor(t, 20*time.Second)

	before := time.Now().UnixMilli()
	resp, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "produce-fetch", Records: []*skiffpb.Record{
		{Key: []byte("a"), Value: []byte("one"), Headers: []*skiffpb.Header{{Key: "h", Value: []byte("v")}}},
		{KeyNull: true, Value: []byte("two"), TimestampMs: 1234},
		{Key: []byte("c"), ValueNull: true},
	}})
	if err != nil {
		t.Fatalf("produce records: %v", err)
	}
	if resp.BaseOffset != 0 || resp.LastOffset != 2 {
		t.Fatalf("records at %d..%d, want 0..2", resp.BaseOffset, resp.LastOffset)
	}
	resp, err = leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "produce-fetch", Batch: encodeValues(t, record.BatchOptions{}, "four", "five"), CorrelationId: 7})
	if err != nil {
		t.Fatalf("produce batch: %v", err)
	}
	if resp.BaseOffset != 3 || resp.LastOffset != 4 || resp.CorrelationId != 7 || resp.LeaderEpoch <= 0 {
		t.Fatalf("batch answer %+v, want offsets 3..4, correlation 7, a leader epoch", resp)
	}

	recs := fetchAll(t, leader, "produce-fetch", 0, 0)
	want := []struct {
		key, value []byte
	}{{[]byte("a"), []byte("one")}, {nil, []byte("two")}, {[]byte("c"), nil}, {[]byte("k"), []byte("four")}, {[]byte("k"), []byte("five")}}
	if len(recs) != len(want) {
		t.Fatalf("fetched %d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.Offset != int64(i) || !bytes.Equal(r.Key, w.key) || (r.Key == nil) != (w.key == nil) ||
			!bytes.Equal(r.Value, w.value) || (r.Value == nil) != (w.value == nil) {
			t.Errorf("record %d = offset %d key %q value %q, want offset %d key %q value %q", i, r.Offset, r.Key, r.Value, i, w.key, w.value)
		}
	}
	if len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != "h" || string(recs[0].Headers[0].Value) != "v" {
		t.Errorf("headers %+v, want h=v", recs[0].Headers)
	}
	if recs[0].Timestamp < before || recs[1].Timestamp != 1234 {
		t.Errorf("timestamps %d and %d: want the broker's time for 0, 1234 as given", recs[0].Timestamp, recs[1].Timestamp)
	}

	// From the middle: the answer starts with the batch holding offset 4.
	if got := fetchAll(t, leader, "produce-fetch", 0, 4); len(got) != 1 || string(got[0].Value) != "five" {
		t.Errorf("fetch from 4: %d records", len(got))
	}
	lo, err := leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: "produce-fetch", Spec: skiffpb.OffsetSpec_OFFSET_SPEC_LATEST})
	if err != nil || lo.Offset != 5 || lo.HighWatermark != 5 || lo.LogStartOffset != 0 {
		t.Errorf("latest offsets %+v, %v: want 5", lo, err)
	}
	lo, err = leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: "produce-fetch", Spec: skiffpb.OffsetSpec_OFFSET_SPEC_EARLIEST})
	if err != nil || lo.Offset != 0 {
		t.Errorf("earliest offsets %+v, %v: want 0", lo, err)
	}
	lo, err = leader.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: "produce-fetch", Spec: skiffpb.OffsetSpec_OFFSET_SPEC_TIMESTAMP, TimestampMs: time.Now().Add(time.Hour).UnixMilli()})
	if err != nil || lo.Offset != 5 {
		t.Errorf("offset for a future timestamp %+v, %v: want the high watermark 5", lo, err)
	}

	// A follower serves committed data when allowed to.
	for _, tn := range c.nodes {
		if tn == leader {
			continue
		}
		waitFor(t, 10*time.Second, "the follower to apply every record", func() bool {
			r, err := tn.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: "produce-fetch", Offset: 4, AllowFollower: true})
			return err == nil && r.HighWatermark == 5 && len(r.Batches) > 0
		})
	}
}

func TestAcksNoneAnswersAtOnceAndTheBatchIsWritten(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "acks-none", 1, 3, nil)[0]
	ctx := ctxFor(t, 20*time.Second)
	for i := range 5 {
		resp, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "acks-none", Acks: skiffpb.Acks_ACKS_NONE,
			Records: []*skiffpb.Record{{Value: []byte(fmt.Sprint(i))}}})
		if err != nil {
			t.Fatalf("produce: %v", err)
		}
		if resp.BaseOffset != -1 || resp.LastOffset != -1 {
			t.Fatalf("ACKS_NONE answered offsets %d..%d, want -1", resp.BaseOffset, resp.LastOffset)
		}
	}
	var recs []record.Record
	waitFor(t, 10*time.Second, "the five ACKS_NONE records", func() bool {
		recs = fetchAll(t, leader, "acks-none", 0, 0)
		return len(recs) == 5
	})
	for i, r := range recs {
		if string(r.Value) != fmt.Sprint(i) {
			t.Errorf("record %d = %q: ACKS_NONE batches of a partition are written in order", i, r.Value)
		}
	}
}

func TestInitProducerIdHandsOutDistinctIds(t *testing.T) {
	c := theCluster(t)
	ctx := ctxFor(t, 10*time.Second)
	a, err := c.nodes[1].producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.nodes[2].producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ProducerId == b.ProducerId || a.ProducerId < 0 || a.ProducerEpoch != 0 {
		t.Fatalf("producer ids %+v and %+v: want distinct, non-negative, epoch 0", a, b)
	}
}

func TestWrongNodeAnswersNotLeaderNamingTheLeadersAddress(t *testing.T) {
	c := theCluster(t)
	replicated := c.createTopic(t, "not-leader-rf3", 1, 3, nil)[0]
	single := c.createTopic(t, "not-leader-rf1", 1, 1, nil)[0]
	for _, tc := range []struct {
		name   string
		topic  string
		leader *testNode
	}{
		{"follower", "not-leader-rf3", replicated}, // hosts a replica: Raft knows the leader
		{"not hosting", "not-leader-rf1", single},  // hosts none: the leader is looked up
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, tn := range c.nodes {
				if tn == tc.leader {
					continue
				}
				// An election on a loaded machine can move leadership while
				// this looks: an answer naming no leader or another one than
				// the partition's settled leader is asked again; one naming
				// the leader at a wrong address fails at once.
				deadline := time.Now().Add(30 * time.Second)
				for {
					leader := c.waitLeader(t, tc.topic, 0)
					last := checkRedirects(t, tn, leader, tc.topic)
					if last == "" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("from %s: no settled not-leader answers in 30s; last: %s", tn.node.ID(), last)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
}

// checkRedirects asks tn, not the leader of topic's partition 0, to
// produce, fetch and list offsets, and checks that each answer names the
// leader and its address. It returns why it should be asked again when an
// answer names no leader or another one (leadership moved), and fails the
// test when the leader is named at a wrong address.
func checkRedirects(t *testing.T, tn, leader *testNode, topic string) (again string) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	check := func(what string, err error) string {
		t.Helper()
		st, _ := status.FromError(err)
		nl := notLeaderDetail(st)
		if err == nil || st.Code() != codes.FailedPrecondition || nl == nil || nl.LeaderId != leader.node.ID() {
			return fmt.Sprintf("%s: %v (detail %v), want a redirect to %s", what, err, nl, leader.node.ID())
		}
		if nl.LeaderAddr != leader.addr {
			t.Fatalf("%s from %s: NotLeader detail %v, want leader %s at %s", what, tn.node.ID(), nl, leader.node.ID(), leader.addr)
		}
		if r := errorReason(st); r != ReasonNotLeader {
			t.Errorf("%s: ErrorInfo reason %q, want %q", what, r, ReasonNotLeader)
		}
		return ""
	}
	req := &skiffpb.ProduceRequest{Topic: topic, Records: []*skiffpb.Record{{Value: []byte("x")}}}
	_, err := tn.producer.Produce(ctx, req)
	if again := check("produce", err); again != "" {
		return again
	}
	if _, err := leader.producer.Produce(ctx, req); err != nil {
		return fmt.Sprintf("retry at the named leader: %v", err)
	}
	// Fetch and ListOffsets redirect alike.
	_, err = tn.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: topic})
	if again := check("fetch", err); again != "" {
		return again
	}
	_, err = tn.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: topic})
	return check("list offsets", err)
}

func TestIdempotentRetryIsAnsweredWithTheOriginalOffsets(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "idempotent", 1, 3, nil)[0]
	ctx := ctxFor(t, 10*time.Second)
	pid, err := leader.producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}
	opts := record.BatchOptions{Idempotent: true, ProducerID: pid.ProducerId}
	first := encodeValues(t, opts, "a", "b")
	r1, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "idempotent", Batch: first})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "idempotent", Batch: first})
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Duplicate || r2.BaseOffset != r1.BaseOffset || r2.LastOffset != r1.LastOffset {
		t.Fatalf("retry answered %+v, want a duplicate of %+v", r2, r1)
	}
	opts.BaseSequence = 5 // a gap
	_, err = leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "idempotent", Batch: encodeValues(t, opts, "c")})
	if st := wantCode(t, err, codes.OutOfRange); errorReason(st) != ReasonOutOfOrderSequence {
		t.Errorf("reason %q, want %q", errorReason(st), ReasonOutOfOrderSequence)
	}
	opts = record.BatchOptions{Idempotent: true, ProducerID: pid.ProducerId, ProducerEpoch: 1}
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "idempotent", Batch: encodeValues(t, opts, "d")}); err != nil {
		t.Fatalf("new epoch: %v", err)
	}
	opts.ProducerEpoch = 0 // fenced by epoch 1
	opts.BaseSequence = 2
	_, err = leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "idempotent", Batch: encodeValues(t, opts, "e")})
	if st := wantCode(t, err, codes.FailedPrecondition); notLeaderDetail(st) != nil || errorReason(st) != ReasonProducerFenced {
		t.Errorf("fenced producer: reason %q, NotLeader %v; want %q and no NotLeader", errorReason(st), notLeaderDetail(st), ReasonProducerFenced)
	}
}

func TestSubscribeReceivesRecordsProducedAfterItStarted(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "subscribe", 1, 3, nil)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "subscribe", Records: []*skiffpb.Record{{Value: []byte("before")}}}); err != nil {
		t.Fatal(err)
	}
	sub, err := leader.consumer.Subscribe(ctx, &skiffpb.SubscribeRequest{Topic: "subscribe", Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []record.Record, 16)
	go func() {
		defer close(got)
		for {
			resp, err := sub.Recv()
			if err != nil {
				return
			}
			var recs []record.Record
			for batch, err := range record.Batches(resp.Batches) {
				if err != nil {
					return
				}
				_, rs, err := record.Decode(batch)
				if err != nil {
					return
				}
				recs = append(recs, rs...)
			}
			got <- recs
		}
	}()
	for i := range 3 {
		if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "subscribe", Records: []*skiffpb.Record{{Value: []byte(fmt.Sprint("after-", i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	var recs []record.Record
	for len(recs) < 3 {
		select {
		case rs, ok := <-got:
			if !ok {
				t.Fatalf("subscription ended after %d records", len(recs))
			}
			recs = append(recs, rs...)
		case <-ctx.Done():
			t.Fatalf("received %d of 3 records", len(recs))
		}
	}
	for i, r := range recs {
		if r.Offset != int64(i+1) || string(r.Value) != fmt.Sprint("after-", i) {
			t.Errorf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
}
