package rpc

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestProducerIDsTheClusterNeverAllocatedAreRefused(t *testing.T) {
	c := theCluster(t)
	leader := c.createTopic(t, "made-up-pids", 1, 3, nil)[0]
	ctx := ctxFor(t, 20*time.Second)
	pid, err := leader.producer.InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
	if err != nil {
		t.Fatal(err)
	}
	madeUp := pid.ProducerId + 1_000_000
	_, err = leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "made-up-pids",
		Batch: encodeValues(t, record.BatchOptions{Idempotent: true, ProducerID: madeUp}, "x")})
	st := wantCode(t, err, codes.InvalidArgument)
	if !strings.Contains(st.Message(), "never allocated") || fieldViolation(st) != "batch.producer_id" {
		t.Fatalf("refusal %q (field %q)", st.Message(), fieldViolation(st))
	}
	// The allocated id, and a batch without idempotence, still write.
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "made-up-pids",
		Batch: encodeValues(t, record.BatchOptions{Idempotent: true, ProducerID: pid.ProducerId}, "a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: "made-up-pids", Batch: encodeValues(t, record.BatchOptions{}, "b")}); err != nil {
		t.Fatal(err)
	}
	recs := fetchAll(t, leader, "made-up-pids", 0, 0)
	if len(recs) != 2 || string(recs[0].Value) != "a" || string(recs[1].Value) != "b" {
		t.Fatalf("log holds %d records, want a and b only", len(recs))
	}
}
