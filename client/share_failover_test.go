package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/chaos/fault/inproc"
	"github.com/skiff-mq/skiff/client"
)

// batchedShareWorker fetches and acks with the batched path (AckAsync:
// acks ride on the next fetch) until stopped, reporting to the ledger
// as outcomes come back.
type batchedShareWorker struct {
	sc     *client.ShareConsumer
	cancel context.CancelFunc
	done   chan struct{}
}

func startBatchedShareWorker(t *testing.T, brokers []string, group, topic string, l *shareLedger) *batchedShareWorker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := client.New(ctx, client.Config{Brokers: brokers, RequestTimeout: 10 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mu sync.Mutex
	held := map[client.ShareAck]*client.ShareRecord{} // by the accept that settles it
	onResult := func(a client.ShareAck, err error) {
		mu.Lock()
		r := held[a]
		delete(held, a)
		mu.Unlock()
		switch {
		case r == nil:
			t.Errorf("outcome of an ack never sent: %+v", a)
		case err == nil:
			l.ackedOK(r)
		case errors.Is(err, client.ErrIndeterminate):
			l.ackUncertain(r)
		default:
			// Not applied: the record comes back when its lock expires.
			l.ackFailed(r)
			t.Logf("ack %s/%d@%d: %v", a.Topic, a.Partition, a.Offset, err)
		}
	}
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: group, Topics: []string{topic}, MaxRecords: 200,
		MaxWait: 200 * time.Millisecond, OnAckResult: onResult})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w := &batchedShareWorker{sc: sc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer cl.Close()
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			sc.Close(cctx)
		}()
		for ctx.Err() == nil {
			recs, err := sc.Fetch(ctx)
			if err != nil {
				continue
			}
			for _, r := range recs {
				l.delivered(r)
				mu.Lock()
				held[client.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: client.ShareAccept}] = r
				mu.Unlock()
				l.ackSent(r)
				if err := r.AckAsync(); err != nil {
					t.Errorf("queue ack: %v", err)
				}
			}
		}
	}()
	t.Cleanup(func() {
		w.cancel()
		<-w.done
	})
	return w
}

// TestShareBatchedAcksSurviveACoordinatorKill: three members ack with
// batched acks while the share group's coordinator is killed mid-run;
// every record is still acknowledged exactly once, and each key's records
// are processed in order (redeliveries included).
func TestShareBatchedAcksSurviveACoordinatorKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own and kills a node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := inproc.Start(ctx, inproc.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := client.New(ctx, client.Config{Brokers: c.Brokers(), RequestTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const topic, group = "kill-coord", "kill-coord-g"
	n := recordCount(t, 3000, 1500)
	createTopic(t, cl, topic, 3, 3)
	if _, err := cl.AlterShareGroup(ctx, group, map[string]string{"lock.timeout.ms": "3000"}, false); err != nil {
		t.Fatal(err)
	}
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res := newProduced()
	for i := range n {
		p.Produce(ctx, keyedRecord(topic, i, 100), res.callback())
	}
	if err := p.Flush(ctx); err != nil || len(res.errs) > 0 {
		t.Fatalf("produce: %v %v", err, res.errs)
	}
	p.Close(ctx)

	l := newShareLedger()
	for range 3 {
		startBatchedShareWorker(t, c.Brokers(), group, topic, l)
	}
	deadline := time.Now().Add(time.Minute)
	for l.count() < n/3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d records acknowledged before the kill", l.count(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	desc, err := cl.DescribeShareGroup(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(ctx, desc.Coordinator); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed coordinator %s after %d of %d records", desc.Coordinator, l.count(), n)
	waitAcked(t, l, n, 3*time.Minute)
	// An ack whose outcome was lost and that did not apply brings its
	// record back after the lock timeout: the group's own count settles at
	// n, and must never pass it.
	settle := time.Now().Add(time.Minute)
	for {
		after, err := cl.DescribeShareGroup(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if after.Coordinator == desc.Coordinator {
			t.Fatalf("coordinator still %s after it was killed", after.Coordinator)
		}
		var acked, lag int64
		for _, sp := range after.Partitions {
			acked += sp.Acked
			lag += sp.Lag
		}
		if acked > int64(n) {
			t.Fatalf("the group counts %d records acknowledged, more than the %d produced", acked, n)
		}
		if acked == int64(n) && lag == 0 {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("the group counts %d of %d records acknowledged, lag %d, a minute after the members did", acked, n, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.mu.Lock()
	lost := 0
	for _, o := range l.acks {
		lost += o.uncertain
	}
	t.Logf("%d records, %d deliveries, %d acks with a lost outcome", n, l.delivers, lost)
	l.mu.Unlock()
}
