package rpc

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestProduceStreamAnswersEveryRequestInOrderPerPartition(t *testing.T) {
	c := theCluster(t)
	const topic, total = "stream", 1000
	leaders := c.createTopic(t, topic, 6, 3, nil)
	// The node leading the most partitions takes the stream; one partition
	// it does not lead gets a few requests too, answered with NotLeader.
	count := map[*testNode]int{}
	for _, l := range leaders {
		count[l]++
	}
	var node *testNode
	for _, l := range leaders {
		if node == nil || count[l] > count[node] {
			node = l
		}
	}
	var mine []int32
	foreign := int32(-1)
	for p, l := range leaders {
		if l == node {
			mine = append(mine, int32(p))
		} else {
			foreign = int32(p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pid, err := node.producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}

	// Idempotent batches: one that reached Raft ahead of its predecessor
	// would fail with a sequence gap.
	type sent struct {
		partition int32
		foreign   bool
	}
	reqs := make([]*skiffpb.ProduceRequest, total)
	plan := make(map[uint64]sent, total)
	seq := map[int32]int32{}
	for i := range reqs {
		p := mine[i%len(mine)]
		isForeign := foreign >= 0 && i%100 == 99
		if isForeign {
			p = foreign
		}
		opts := record.BatchOptions{Idempotent: true, ProducerID: pid.ProducerId, BaseSequence: seq[p]}
		if !isForeign {
			seq[p]++
		}
		reqs[i] = &skiffpb.ProduceRequest{Topic: topic, Partition: p, CorrelationId: uint64(1000 + i), Batch: encodeValues(t, opts, "v")}
		plan[uint64(1000+i)] = sent{p, isForeign}
	}

	stream, err := node.producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sendErr := make(chan error, 1)
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- stream.CloseSend()
	}()

	lastCorr := map[int32]uint64{}
	nextOffset := map[int32]int64{}
	got := 0
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d responses: %v", got, err)
		}
		got++
		want, ok := plan[resp.CorrelationId]
		if !ok {
			t.Fatalf("response with unknown correlation id %d", resp.CorrelationId)
		}
		delete(plan, resp.CorrelationId)
		if resp.Partition != want.partition || resp.Topic != topic {
			t.Fatalf("correlation %d answered for %s/%d, sent to %s/%d", resp.CorrelationId, resp.Topic, resp.Partition, topic, want.partition)
		}
		if resp.CorrelationId < lastCorr[resp.Partition] {
			t.Fatalf("partition %d: correlation %d answered after %d", resp.Partition, resp.CorrelationId, lastCorr[resp.Partition])
		}
		lastCorr[resp.Partition] = resp.CorrelationId
		if want.foreign {
			if resp.Error == nil || codes.Code(resp.Error.Code) != codes.FailedPrecondition || resp.Error.NotLeader.GetLeaderAddr() != leaders[foreign].addr {
				t.Fatalf("request to a partition led elsewhere answered %v, want FAILED_PRECONDITION naming %s", resp.Error, leaders[foreign].addr)
			}
			continue
		}
		if resp.Error != nil {
			t.Fatalf("correlation %d failed: %v", resp.CorrelationId, resp.Error)
		}
		if resp.BaseOffset != nextOffset[resp.Partition] || resp.LastOffset != resp.BaseOffset {
			t.Fatalf("partition %d: correlation %d at %d..%d, want %d (dense, in request order)",
				resp.Partition, resp.CorrelationId, resp.BaseOffset, resp.LastOffset, nextOffset[resp.Partition])
		}
		nextOffset[resp.Partition]++
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
	if got != total || len(plan) != 0 {
		t.Fatalf("%d responses to %d requests (%d unanswered)", got, total, len(plan))
	}
	for _, p := range mine {
		lo, err := node.consumer.ListOffsets(ctx, &skiffpb.ListOffsetsRequest{Topic: topic, Partition: p})
		if err != nil || lo.HighWatermark != nextOffset[p] {
			t.Errorf("partition %d: high watermark %+v, %v; want %d", p, lo, err, nextOffset[p])
		}
	}
}

func TestProduceStreamReportsBadRequestsAndStaysOpen(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "stream-bad", 1, 3, nil)[0]
	ctx := ctxFor(t, 20*time.Second)
	stream, err := leader.producer.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		req  *skiffpb.ProduceRequest
		code codes.Code
	}{
		{&skiffpb.ProduceRequest{Topic: "stream-bad", CorrelationId: 1}, codes.InvalidArgument},
		{&skiffpb.ProduceRequest{Topic: "nope", CorrelationId: 2, Records: []*skiffpb.Record{{}}}, codes.NotFound},
		{&skiffpb.ProduceRequest{Topic: "stream-bad", CorrelationId: 3, Records: []*skiffpb.Record{{Value: []byte("ok")}}}, codes.OK},
	}
	retries := 0
	for _, s := range steps {
	again:
		if err := stream.Send(s.req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("correlation %d: %v", s.req.CorrelationId, err)
		}
		code := codes.OK
		if resp.Error != nil {
			code = codes.Code(resp.Error.Code)
		}
		// An election on a loaded machine can take leadership away for a
		// moment; the same stream, still open, is asked again once the
		// leader serves again (a few times at most).
		if s.code == codes.OK && code == codes.FailedPrecondition && resp.CorrelationId == s.req.CorrelationId && retries < 5 {
			retries++
			c.waitLeader(t, "stream-bad", 0)
			s.req.CorrelationId += 100
			goto again
		}
		if resp.CorrelationId != s.req.CorrelationId || code != s.code {
			t.Fatalf("correlation %d answered %d with %v (%s), want %v", s.req.CorrelationId, resp.CorrelationId, code, resp.Error.GetMessage(), s.code)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v, want EOF", err)
	}
}
