package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
)

func TestBoundedTopicRejectsWithTheDocumentedError(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopicWith(t, cl, "bounded-reject", 1, 3, map[string]string{"max.messages": "20"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := 0; i < 20; i++ {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "bounded-reject", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	err = p.ProduceSync(ctx, &client.Record{Topic: "bounded-reject", Value: []byte("one too many")})
	const want = "RESOURCE_EXHAUSTED: topic bounded-reject is full (max.messages=20)"
	if !errors.Is(err, client.ErrTopicFull) || !strings.Contains(err.Error(), want) {
		t.Fatalf("21st record: %v, want ErrTopicFull with %q", err, want)
	}
	ti, err := cl.DescribeTopic(ctx, "bounded-reject")
	if err != nil {
		t.Fatal(err)
	}
	if p0 := ti.Partitions[0]; p0.HighWatermark != 20 || p0.LogStartOffset != 0 {
		t.Fatalf("partition holds [%d, %d), want [0, 20): nothing of the refused record written", p0.LogStartOffset, p0.HighWatermark)
	}
	// The producer recovers: once the bound is raised, it writes again.
	if _, err := cl.AlterTopicConfig(ctx, "bounded-reject", map[string]string{"max.messages": "21"}, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := p.ProduceSync(ctx, &client.Record{Topic: "bounded-reject", Value: []byte("room now")})
		if err == nil {
			break
		}
		if !errors.Is(err, client.ErrTopicFull) || time.Now().After(deadline) {
			t.Fatalf("after raising the bound: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the new bound reaches the leader
	}
}

func TestDropOldestTopicMovesConsumersToTheNewStart(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopicWith(t, cl, "bounded-ring", 1, 3, map[string]string{"max.messages": "10", "overflow.policy": "drop-oldest"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	for i := 0; i < 30; i++ {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "bounded-ring", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	co, err := cl.NewConsumer(client.ConsumerConfig{MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if err := co.Assign(ctx, "bounded-ring", 0, client.At(3)); err != nil {
		t.Fatal(err)
	}
	_, err = co.Poll(ctx)
	var oor *client.OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Start != 20 || oor.End != 30 {
		t.Fatalf("poll behind the start: %v, want OffsetOutOfRange [20, 30]", err)
	}
	if err := co.Assign(ctx, "bounded-ring", 0, client.Earliest()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 10 {
		recs, err := co.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset != int64(20+len(got)) {
				t.Fatalf("record at offset %d, want %d", r.Offset, 20+len(got))
			}
			got = append(got, string(r.Value))
		}
	}
	if got[0] != "20" || got[9] != "29" {
		t.Fatalf("window %v, want the 10 newest records 20..29", got)
	}
}
