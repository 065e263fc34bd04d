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

// produceUntilFull produces one record at a time until the topic refuses
// one as full; it returns how many it took and the refusal.
func produceUntilFull(ctx context.Context, t *testing.T, p *client.Producer, topic string, limit int) (int, error) {
	t.Helper()
	for n := 0; n <= limit; n++ {
		err := p.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte(fmt.Sprint("k", n)), Value: []byte("v")})
		if errors.Is(err, client.ErrTopicFull) {
			return n, err
		}
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
	}
	t.Fatalf("%s took more than %d records without refusing one", topic, limit)
	return 0, nil
}

// ackDone acknowledges r; an ack whose outcome a coordinator failover
// made unknown is checked against the record's state.
func ackDone(ctx context.Context, t *testing.T, cl *client.Client, group string, r *client.ShareRecord) {
	t.Helper()
	err := r.Ack(ctx)
	if errors.Is(err, client.ErrIndeterminate) {
		st, ierr := cl.InspectShareRecord(ctx, group, r.Topic, r.Partition, r.Offset)
		if ierr != nil {
			t.Fatalf("inspect offset %d after %v: %v", r.Offset, err, ierr)
		}
		if st.State == "acknowledged" || st.State == "below-start" {
			return
		}
		err = fmt.Errorf("%w; record is %s", err, st.State)
	}
	if err != nil {
		t.Fatalf("ack offset %d: %v", r.Offset, err)
	}
}

func TestRejectUnackedTopicPushesBackWhileWorkersStall(t *testing.T) {
	c, err := startCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	cl := newClient(t, c)
	const topic = "bounded-queue"
	createTopicWith(t, cl, topic, 1, 3, map[string]string{"max.messages": "10", "overflow.policy": "reject-unacked"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)

	// No share group yet: nothing is done, so every record held counts.
	if n, err := produceUntilFull(ctx, t, p, topic, 50); n != 10 || !strings.Contains(err.Error(), "topic bounded-queue is full (max.messages=10)") {
		t.Fatalf("took %d records, then %v; want 10, then the documented refusal", n, err)
	}

	// Workers take all ten and stall: still full, now naming the group.
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "workers", Topics: []string{topic}, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	var held []*client.ShareRecord
	for len(held) < 10 {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, recs...)
	}
	// The stalled workers are busy, not gone: they renew what they hold,
	// which also keeps their session.
	busy := held
	lastRenew := time.Now()
	waitProduceErr := func(what string, ok func(error) bool) error {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if time.Since(lastRenew) > 2*time.Second {
				for _, r := range busy {
					if _, err := r.Renew(ctx); err != nil && !errors.Is(err, client.ErrIndeterminate) {
						t.Fatalf("renew offset %d: %v", r.Offset, err)
					}
				}
				lastRenew = time.Now()
			}
			err := p.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte("probe"), Value: []byte("v")})
			if ok(err) {
				return err
			}
			if err == nil || !errors.Is(err, client.ErrTopicFull) || time.Now().After(deadline) {
				t.Fatalf("waiting for %s: produce returned %v", what, err)
			}
			time.Sleep(100 * time.Millisecond) // the group's next progress report
		}
	}
	waitProduceErr("a refusal naming the group", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "share group workers has not acknowledged them")
	})

	// Five acks make room for exactly five: the floor moved past 0..4.
	for _, r := range held[:5] {
		ackDone(ctx, t, cl, "workers", r)
	}
	busy = held[5:]
	waitProduceErr("room after acks", func(err error) bool { return err == nil })
	if n, err := produceUntilFull(ctx, t, p, topic, 50); n != 4 {
		t.Fatalf("after 5 acks and one probe: took %d more, then %v; want 4", n, err)
	}

	// Five more acks (offsets 5..9) leave 10..14 undone: room for five,
	// of which the probe takes one. The leader then dies; the new one was
	// told the same progress and takes exactly the other four (counting the
	// 15 records it holds, as a leader that knew of no group would, it
	// would take none).
	for _, r := range held[5:] {
		ackDone(ctx, t, cl, "workers", r)
	}
	busy = nil
	waitProduceErr("room after more acks", func(err error) bool { return err == nil })
	ti, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	old := c.node(ti.Partitions[0].Leader)
	if old == nil {
		t.Fatalf("no node %q leads %s/0", ti.Partitions[0].Leader, topic)
	}
	old.kill()
	if n, err := produceUntilFull(ctx, t, p, topic, 50); n != 4 {
		t.Fatalf("after the leader was killed: took %d, then %v; want 4", n, err)
	}
	ti, err = cl.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if p0 := ti.Partitions[0]; p0.Leader == old.id || p0.HighWatermark != 20 {
		t.Fatalf("after failover: leader %s, high watermark %d; want a new leader and 20 records", p0.Leader, p0.HighWatermark)
	}
}
