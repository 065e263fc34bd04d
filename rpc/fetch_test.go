package rpc

import (
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

func TestFetchLongPollsUntilDataOrMaxWait(t *testing.T) {
	c := theCluster(t)
	const topic = "long-poll"
	leader := c.createTopic(t, topic, 1, 3, nil)[0]
	ctx := ctxFor(t, 30*time.Second)
	produce := func(v string) {
		t.Helper()
		if _, err := leader.producer.Produce(ctx, &skiffpb.ProduceRequest{Topic: topic, Records: []*skiffpb.Record{{Value: []byte(v)}}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("returns when data arrives", func(t *testing.T) {
		got := make(chan *skiffpb.FetchResponse, 1)
		go func() {
			resp, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: topic, Offset: 0, MaxWaitMs: 20_000})
			if err != nil {
				t.Error(err)
			}
			got <- resp
		}()
		time.Sleep(100 * time.Millisecond) // likely lets the poll start waiting; the assertions hold either way
		start := time.Now()
		produce("a")
		select {
		case resp := <-got:
			if resp == nil || len(resp.Batches) == 0 || resp.HighWatermark != 1 {
				t.Fatalf("long poll answered %v", resp)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("answered %v after the write", d)
			}
		case <-ctx.Done():
			t.Fatal("long poll never answered")
		}
	})

	t.Run("min_bytes waits for more", func(t *testing.T) {
		start := time.Now()
		resp, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: topic, Offset: 0, MinBytes: 1 << 20, MaxWaitMs: 300})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 250*time.Millisecond || len(resp.Batches) == 0 {
			t.Errorf("answered after %v with %d bytes: want the data there is, after max_wait", d, len(resp.Batches))
		}
		// Data arriving during the wait is added to the answer.
		done := make(chan *skiffpb.FetchResponse, 1)
		go func() {
			resp, err := leader.consumer.Fetch(ctx, &skiffpb.FetchRequest{Topic: topic, Offset: 0, MinBytes: 1 << 20, MaxWaitMs: 3000})
			if err != nil {
				t.Error(err)
			}
			done <- resp
		}()
		time.Sleep(300 * time.Millisecond)
		produce("b")
		resp = <-done
		if resp == nil || resp.HighWatermark != 2 || countBatches(resp.Batches) != 2 {
			t.Errorf("min_bytes fetch missed the batch written while it waited: %v", resp)
		}
	})

	t.Run("a short deadline gets an empty answer, not an error", func(t *testing.T) {
		dctx := ctxFor(t, 2*time.Second)
		resp, err := leader.consumer.Fetch(dctx, &skiffpb.FetchRequest{Topic: topic, Offset: 2, MaxWaitMs: 10_000})
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		if len(resp.Batches) != 0 || resp.HighWatermark != 2 {
			t.Errorf("answer %v, want empty at high watermark 2", resp)
		}
	})
}

// countBatches counts the whole batches in b.
func countBatches(b []byte) int {
	n := 0
	for _, err := range record.Batches(b) {
		if err != nil {
			break
		}
		n++
	}
	return n
}
