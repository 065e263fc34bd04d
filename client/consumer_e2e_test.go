package client_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
)

func TestConsumerResolvesOffsetsAndReportsOutOfRange(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "offsets", 1, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	p, err := cl.NewProducer(client.ProducerConfig{Partitioner: client.ManualPartitioner()})
	if err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(1_700_000_000_000)
	var recs []*client.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &client.Record{Topic: "offsets", Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := p.ProduceSync(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)

	co, err := cl.NewConsumer(client.ConsumerConfig{MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	for _, tc := range []struct {
		from client.Offset
		want int64
	}{
		{client.Earliest(), 0},
		{client.Latest(), 10},
		{client.AtTime(base.Add(4500 * time.Millisecond)), 5},
		{client.At(7), 7},
	} {
		if err := co.Assign(ctx, "offsets", 0, tc.from); err != nil {
			t.Fatal(err)
		}
		if pos, _ := co.Position("offsets", 0); pos != tc.want {
			t.Fatalf("%v: position %d, want %d", tc.from, pos, tc.want)
		}
	}
	// From offset 7 the next records are 7, 8, 9 with their timestamps.
	got, err := co.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Offset != 7 || string(got[0].Value) != "7" || !got[0].Timestamp.Equal(base.Add(7*time.Second)) {
		t.Fatalf("poll from 7: %d records, first %+v", len(got), got[0])
	}

	if err := co.Assign(ctx, "offsets", 0, client.At(100)); err != nil {
		t.Fatal(err)
	}
	_, err = co.Poll(ctx)
	var oor *client.OffsetOutOfRangeError
	if !errors.As(err, &oor) || oor.Topic != "offsets" || oor.Offset != 100 || oor.Start != 0 || oor.End != 10 {
		t.Fatalf("poll at 100: %v, want *OffsetOutOfRangeError{offsets/0 100 [0, 10]}", err)
	}
	if err := co.Assign(ctx, "missing-topic", 0, client.Earliest()); !errors.Is(err, client.ErrUnknownTopic) {
		t.Fatalf("assign of an unknown topic: %v", err)
	}
}
