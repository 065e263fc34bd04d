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
	keepBusy := func() {
		t.Helper()
		if time.Since(lastRenew) < 2*time.Second {
			return
		}
		for _, r := range busy {
			if _, err := r.Renew(ctx); err != nil && !errors.Is(err, client.ErrIndeterminate) {
				t.Fatalf("renew offset %d: %v", r.Offset, err)
			}
		}
		lastRenew = time.Now()
	}
	// fill produces until the topic has taken exactly room more records.
	// Acks reach the partition as the group's progress reports, a few
	// times a second and one by one, so room appears in steps: refusals
	// are retried until room records went in, and then the topic must stay
	// full across several reports (it never takes more than room).
	fill := func(what string, room int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for n := 0; n < room; {
			keepBusy()
			err := p.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte(fmt.Sprint(what, n)), Value: []byte("v")})
			switch {
			case err == nil:
				n++
			case !errors.Is(err, client.ErrTopicFull):
				t.Fatalf("%s: record %d of %d: %v", what, n, room, err)
			case time.Now().After(deadline):
				t.Fatalf("%s: took %d of %d records in 30 s: %v", what, n, room, err)
			default:
				time.Sleep(50 * time.Millisecond) // the group's next progress report
			}
		}
		// A leader that has no report yet counts every record it holds
		// (refusing too, without naming a group): wait for the report.
		for {
			keepBusy()
			err := p.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte(what + "-over"), Value: []byte("v")})
			if errors.Is(err, client.ErrTopicFull) && strings.Contains(err.Error(), "share group workers has not acknowledged them") {
				break
			}
			if !errors.Is(err, client.ErrTopicFull) || time.Now().After(deadline) {
				t.Fatalf("%s: after %d records: %v, want the refusal naming the group", what, room, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
			keepBusy()
			err := p.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte(what + "-over"), Value: []byte("v")})
			if !errors.Is(err, client.ErrTopicFull) || !strings.Contains(err.Error(), "share group workers has not acknowledged them") {
				t.Fatalf("%s: after %d records: %v, want the refusal naming the group", what, room, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Once the group has reported, the refusal names it.
	fill("stalled", 0)

	// Five acks make room for exactly five: the floor moved past 0..4.
	for _, r := range held[:5] {
		ackDone(ctx, t, cl, "workers", r)
	}
	busy = held[5:]
	fill("after 5 acks", 5)

	// Five more acks (offsets 5..9) leave 10..14 undone: room for five.
	for _, r := range held[5:] {
		ackDone(ctx, t, cl, "workers", r)
	}
	busy = nil
	fill("after 10 acks", 5)

	// The leader dies. The new one bounds producers by the same progress:
	// still full (10..19 undone), and acks of three more records, reported
	// to it now, make room for exactly three.
	ti, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	old := c.node(ti.Partitions[0].Leader)
	if old == nil {
		t.Fatalf("no node %q leads %s/0", ti.Partitions[0].Leader, topic)
	}
	old.kill()
	fill("after failover", 0)
	var more []*client.ShareRecord
	for len(more) < 3 {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, recs...)
	}
	busy = more[3:]
	for _, r := range more[:3] {
		ackDone(ctx, t, cl, "workers", r)
	}
	fill("after failover and 3 acks", 3)
	ti, err = cl.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if p0 := ti.Partitions[0]; p0.Leader == old.id || p0.HighWatermark != 23 {
		t.Fatalf("after failover: leader %s, high watermark %d; want a new leader and 23 records", p0.Leader, p0.HighWatermark)
	}
}
