package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/record"
)

// shareLedger checks a share group's run as the members saw it: each
// record acknowledged exactly once and each key's records processed in
// order, redeliveries included.
//
// Order is checked per key against the acks the members sent, not only
// their outcomes: with batched acks (AckAsync) the outcome comes back on a
// later fetch, so the coordinator may deliver a key's next record, having
// applied the ack, before the member hears that it applied. A delivery of
// record s is in order when record s-1 was delivered and an ack of it was
// sent; when every ack of s-1 then failed, the delivery of s was not (that
// is checked in the end, as failures arrive late). A delivery of a record
// older than one already delivered for its key is a violation at once: the
// record before it was acknowledged.
type shareLedger struct {
	mu       sync.Mutex
	delivers int
	first    map[string]time.Time   // value -> first delivery
	acks     map[string]*ackOutcome // value "<key>/<seq>" -> what became of its acks
	maxSeq   map[string]int         // key -> highest sequence delivered
	errs     []error
}

// ackOutcome counts the acks sent for one record by how they ended; sent
// minus the rest are still in flight.
type ackOutcome struct {
	sent, ok, uncertain, failed int
}

func newShareLedger() *shareLedger {
	return &shareLedger{first: map[string]time.Time{}, acks: map[string]*ackOutcome{}, maxSeq: map[string]int{}}
}

// seqOf parses keyedRecord's value "<key>/<n>".
func seqOf(r *client.ShareRecord) (string, int) {
	key, n, _ := strings.Cut(string(r.Value), "/")
	seq, _ := strconv.Atoi(n)
	return key, seq
}

func (l *shareLedger) outcomeLocked(value string) *ackOutcome {
	o := l.acks[value]
	if o == nil {
		o = &ackOutcome{}
		l.acks[value] = o
	}
	return o
}

func (l *shareLedger) delivered(r *client.ShareRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivers++
	if _, ok := l.first[string(r.Value)]; !ok {
		l.first[string(r.Value)] = time.Now()
	}
	key, seq := seqOf(r)
	if o := l.acks[string(r.Value)]; o != nil && o.ok > 0 {
		l.errs = append(l.errs, fmt.Errorf("%s delivered again after it was acknowledged", r.Value))
	}
	top, seen := l.maxSeq[key]
	switch {
	case seen && seq < top:
		l.errs = append(l.errs, fmt.Errorf("key %s: record %d delivered after record %d", key, seq, top))
	case seq > 0 && (seq > top+1 || l.acks[fmt.Sprintf("%s/%d", key, seq-1)] == nil || !seen):
		l.errs = append(l.errs, fmt.Errorf("key %s: record %d delivered before record %d was acknowledged", key, seq, seq-1))
	}
	if !seen || seq > top {
		l.maxSeq[key] = seq
	}
}

// ackSent records an ack sent (or queued) for r, before its outcome.
func (l *shareLedger) ackSent(r *client.ShareRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomeLocked(string(r.Value)).sent++
}

// ackedOK, ackUncertain and ackFailed record an ack's outcome: applied; lost
// (the request may or may not have applied it); not applied (the record
// comes back when its lock expires).
func (l *shareLedger) ackedOK(r *client.ShareRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.outcomeLocked(string(r.Value))
	o.ok++
	if o.ok > 1 {
		l.errs = append(l.errs, fmt.Errorf("%s/%d/%d (%s) acknowledged %d times", r.Topic, r.Partition, r.Offset, r.Value, o.ok))
	}
}

func (l *shareLedger) ackUncertain(r *client.ShareRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomeLocked(string(r.Value)).uncertain++
}

func (l *shareLedger) ackFailed(r *client.ShareRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomeLocked(string(r.Value)).failed++
}

// count is the records acknowledged, those with an ack whose outcome was
// lost included (they are done, or will be delivered again).
func (l *shareLedger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.acks {
		if o.ok > 0 || o.uncertain > 0 {
			n++
		}
	}
	return n
}

// finalErrsLocked adds the violations only the whole run shows: a key's
// record delivered although every ack of the record before it failed.
func (l *shareLedger) finalErrsLocked() []error {
	errs := l.errs
	for key, top := range l.maxSeq {
		for seq := range top {
			o := l.acks[fmt.Sprintf("%s/%d", key, seq)]
			if o == nil || (o.ok == 0 && o.uncertain == 0 && o.failed == o.sent) {
				errs = append(errs, fmt.Errorf("key %s: record %d delivered though record %d was never acknowledged", key, seq+1, seq))
			}
		}
	}
	return errs
}

// shareWorker fetches and acks in batches until stopped; crash() makes it
// vanish with records in flight (no leave, no ack).
type shareWorker struct {
	sc     *client.ShareConsumer
	cl     *client.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startShareWorker(t *testing.T, c *testCluster, group, topic string, l *shareLedger, crashAfter int) *shareWorker {
	t.Helper()
	cl := newClient(t, c)
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: group, Topics: []string{topic}, MaxRecords: 50, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &shareWorker{sc: sc, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		fetched := 0
		for ctx.Err() == nil {
			recs, err := sc.Fetch(ctx)
			if err != nil {
				continue
			}
			for _, r := range recs {
				l.delivered(r)
			}
			fetched += len(recs)
			if crashAfter > 0 && fetched >= crashAfter {
				return // holds its records: they come back after the lock timeout
			}
			acks := make([]client.ShareAck, len(recs))
			for i, r := range recs {
				acks[i] = client.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: client.ShareAccept}
			}
			if len(acks) == 0 {
				continue
			}
			for _, r := range recs {
				l.ackSent(r)
			}
			errs, err := sc.Acknowledge(ctx, acks)
			if err != nil {
				t.Logf("acknowledge: %v", err)
				for _, r := range recs {
					l.ackUncertain(r)
				}
				continue
			}
			for i, e := range errs {
				switch {
				case e == nil:
					l.ackedOK(recs[i])
				case errors.Is(e, client.ErrIndeterminate):
					l.ackUncertain(recs[i])
				default:
					l.ackFailed(recs[i])
					t.Logf("ack %s/%d@%d: %v", recs[i].Topic, recs[i].Partition, recs[i].Offset, e)
				}
			}
		}
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *shareWorker) stop() {
	w.cancel()
	<-w.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w.sc.Close(ctx)
}

func alterShare(t *testing.T, cl *client.Client, group string, set map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.AlterShareGroup(ctx, group, set, false); err != nil {
		t.Fatal(err)
	}
}

func waitAcked(t *testing.T, l *shareLedger, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for l.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records acknowledged after %v", l.count(), n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	if errs := l.finalErrsLocked(); len(errs) > 0 {
		t.Fatalf("%d violations, first: %v", len(errs), errs[0])
	}
	done, lost := 0, 0
	for _, o := range l.acks {
		if o.ok > 0 || o.uncertain > 0 {
			done++
		}
		if o.ok == 0 && o.uncertain > 0 {
			lost++
		}
	}
	if done != n {
		t.Fatalf("%d records acknowledged (%d of them only with a lost outcome), want %d", done, lost, n)
	}
}

// TestShareGroupKeyOrderExactlyOnceAcksWhileMembersCrash: 3 members, 10,000
// records of 100 keys; members crash holding records and new ones start.
func TestShareGroupKeyOrderExactlyOnceAcksWhileMembersCrash(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	n := recordCount(t, 10_000, 2_000)
	createTopic(t, cl, "share-orders", 3, 3)
	alterShare(t, cl, "share-orders-g", map[string]string{"lock.timeout.ms": "1500"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	res := newProduced()
	for i := range n {
		p.Produce(ctx, keyedRecord("share-orders", i, 100), res.callback())
	}
	if err := p.Flush(ctx); err != nil || len(res.errs) > 0 {
		t.Fatalf("produce: %v %v", err, res.errs)
	}
	p.Close(ctx)

	l := newShareLedger()
	start := time.Now()
	// The first member crashes (no leave, its last batch unacknowledged)
	// before the others start; the second crashes among them; a fourth
	// replaces it.
	crash1 := startShareWorker(t, c, "share-orders-g", "share-orders", l, n/10)
	<-crash1.done
	crash1.cl.Close()
	startShareWorker(t, c, "share-orders-g", "share-orders", l, 0)
	startShareWorker(t, c, "share-orders-g", "share-orders", l, 0)
	crash2 := startShareWorker(t, c, "share-orders-g", "share-orders", l, n/20)
	select {
	case <-crash2.done:
	case <-time.After(time.Minute):
		t.Fatal("the second member never fetched enough to crash")
	}
	crash2.cl.Close()
	startShareWorker(t, c, "share-orders-g", "share-orders", l, 0)
	waitAcked(t, l, n, 3*time.Minute)
	t.Logf("%d records, %d deliveries, in %v", n, l.delivers, time.Since(start).Round(time.Millisecond))
	if l.delivers <= n {
		t.Fatalf("%d deliveries of %d records: the crashed members' records were never redelivered", l.delivers, n)
	}
}

func TestShareGroupLockExpiryRedeliversToAnotherMember(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "share-locks", 1, 3)
	alterShare(t, cl, "locks", map[string]string{"lock.timeout.ms": "1000"})
	produceN(t, cl, "share-locks", 0, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lazy, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "locks", Topics: []string{"share-locks"}})
	if err != nil {
		t.Fatal(err)
	}
	defer lazy.Close(ctx)
	taken := time.Now() // the lock starts during the fetch
	held, err := lazy.Fetch(ctx)
	if err != nil || len(held) != 5 {
		t.Fatalf("lazy member got %d records: %v", len(held), err)
	}
	busy, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "locks", Topics: []string{"share-locks"}})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	var again []*client.ShareRecord
	for len(again) < 5 {
		recs, err := busy.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, recs...)
	}
	if waited := time.Since(taken); waited < time.Second {
		t.Fatalf("redelivered after %v, before the 1s lock expired", waited)
	}
	for _, r := range again {
		if r.DeliveryCount != 2 {
			t.Fatalf("redelivery count %d", r.DeliveryCount)
		}
		if err := r.Ack(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := held[0].Ack(ctx); !errors.Is(err, client.ErrNotHeld) && !errors.Is(err, client.ErrLockExpired) {
		t.Fatalf("late ack by the lazy member: %v", err)
	}
}

func TestShareGroupPoisonRecordDeadLetteredQuarantinedAndRedriven(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "share-poison", 1, 3)
	alterShare(t, cl, "poison", map[string]string{"max.deliveries": "3", "backoff.initial.ms": "50"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"bad", "poison"}, {"good", "g1"}, {"bad", "after"}, {"good", "g2"}} {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "share-poison", Key: []byte(kv[0]), Value: []byte(kv[1]),
			Headers: []record.Header{{Key: "trace", Value: []byte("t-" + kv[1])}}}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close(ctx)
	sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "poison", Topics: []string{"share-poison"}, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	var order []string
	cured := false // after the redrive, the poison record is processed fine
	handle := func(until func() bool) {
		t.Helper()
		for !until() {
			fctx, fcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			recs, err := sc.Fetch(fctx)
			fcancel()
			if ctx.Err() != nil {
				t.Fatalf("fetch: %v (order so far %v)", err, order)
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("fetch: %v", err)
			}
			for _, r := range recs {
				if string(r.Value) == "poison" && !cured {
					if err := r.ReleaseWithBackoff(ctx, fmt.Sprintf("cannot parse (attempt %d)", r.DeliveryCount)); err != nil {
						t.Fatal(err)
					}
					continue
				}
				order = append(order, string(r.Value))
				if err := r.Ack(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	contains := func(v string) func() bool {
		return func() bool {
			for _, o := range order {
				if o == v {
					return true
				}
			}
			return false
		}
	}
	// Keep working (the poison record is redelivered after each backoff)
	// until it reaches the dead-letter topic.
	var dls []client.DeadLetter
	handle(func() bool {
		if !contains("g2")() {
			return false
		}
		dls, err = cl.ListDeadLetters(ctx, "poison", "share-poison")
		if err != nil {
			t.Fatal(err)
		}
		return len(dls) > 0
	})
	d := dls[0]
	hdr := map[string]string{}
	for _, h := range d.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if string(d.Value) != "poison" || d.DeliveryCount != 3 || d.LastError != "cannot parse (attempt 3)" || d.Offset != 0 ||
		hdr["trace"] != "t-poison" || hdr["skiff-dlq-source-topic"] != "share-poison" || hdr["skiff-dlq-delivery-count"] != "3" {
		t.Fatalf("dead letter %+v headers %v", d, hdr)
	}
	for _, v := range order {
		if v == "after" {
			t.Fatalf("a later record of the quarantined key was processed: %v", order)
		}
	}
	st, err := cl.InspectShareRecord(ctx, "poison", "share-poison", 0, 2)
	if err != nil || !st.KeyQuarantined {
		t.Fatalf("inspect the held record: %+v %v", st, err)
	}
	if n, err := cl.ResolveDeadLetters(ctx, "poison", "share-poison", []int64{d.DLQOffset}, false, false); err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	cured = true
	handle(contains("after"))
	if got := strings.Join(order, ","); got != "g1,g2,poison,after" {
		t.Fatalf("processing order %s, want g1,g2,poison,after", got)
	}
}

// TestShareGroupSurvivesCoordinatorFailover kills the share group's
// coordinator mid-run: no record lost, none acknowledged twice, and
// delayed records (not-before 2s and 10s) wait out their delay across the
// failover.
func TestShareGroupSurvivesCoordinatorFailover(t *testing.T) {
	c, err := startCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	cl := newClient(t, c)
	createTopic(t, cl, "share-failover", 3, 3)
	alterShare(t, cl, "fo", map[string]string{"lock.timeout.ms": "2000"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 3000
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	produced := time.Now()
	notBefore := map[string]time.Time{"delay-2s": produced.Add(2 * time.Second), "delay-10s": produced.Add(10 * time.Second)}
	for name, at := range notBefore {
		if err := p.ProduceSync(ctx, &client.Record{Topic: "share-failover", Key: []byte(name), Value: []byte(name + "/0"),
			Headers: []record.Header{{Key: "skiff-not-before", Value: []byte(strconv.FormatInt(at.UnixMilli(), 10))}}}); err != nil {
			t.Fatal(err)
		}
	}
	res := newProduced()
	for i := range n {
		p.Produce(ctx, keyedRecord("share-failover", i, 50), res.callback())
	}
	if err := p.Flush(ctx); err != nil || len(res.errs) > 0 {
		t.Fatalf("produce: %v %v", err, res.errs)
	}
	p.Close(ctx)

	l := newShareLedger()
	startShareWorker(t, c, "fo", "share-failover", l, 0)
	// Kill the coordinator once a third is acknowledged (about a second in:
	// the delayed records are still waiting).
	for l.count() < n/3 {
		if ctx.Err() != nil {
			t.Fatal("no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d, err := cl.DescribeShareGroup(ctx, "fo")
	if err != nil {
		t.Fatal(err)
	}
	victim := c.node(d.Coordinator)
	if victim == nil {
		t.Fatalf("coordinator %q is not a test node", d.Coordinator)
	}
	t.Logf("killing coordinator %s after %d acks, %v after producing", victim.id, l.count(), time.Since(produced).Round(time.Millisecond))
	victim.kill()
	waitAcked(t, l, n+2, 90*time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, at := range notBefore {
		got, ok := l.first[name+"/0"]
		if !ok || got.Before(at) {
			t.Fatalf("%s delivered at %v, not before %v", name, got, at)
		}
		t.Logf("%s delivered %v after its not-before time", name, got.Sub(at).Round(time.Millisecond))
	}
}

// TestShareGroupRefusesBadAcksWithClearReasons checks the wire answers for
// an ack of a record not held, an ack after the lock expired and an
// unknown group, and that they change nothing.
func TestShareGroupRefusesBadAcksWithClearReasons(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "share-bad", 1, 3)
	alterShare(t, cl, "bad-acks", map[string]string{"lock.timeout.ms": "500"})
	produceN(t, cl, "share-bad", 0, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "bad-acks", Topics: []string{"share-bad"}, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close(ctx)
	other, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: "bad-acks", Topics: []string{"share-bad"}, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	recs, err := owner.Fetch(ctx)
	if err != nil || len(recs) != 1 {
		t.Fatalf("fetch: %v %v", recs, err)
	}
	r := recs[0]
	theirs, err := other.Fetch(ctx)
	if err != nil || len(theirs) != 1 {
		t.Fatalf("second member's fetch: %v %v", theirs, err)
	}
	errs, err := owner.Acknowledge(ctx, []client.ShareAck{{Topic: r.Topic, Partition: r.Partition, Offset: theirs[0].Offset, Type: client.ShareAccept}})
	if err != nil || !errors.Is(errs[0], client.ErrNotHeld) {
		t.Fatalf("ack of another member's record: %v %v", errs, err)
	}
	time.Sleep(600 * time.Millisecond)
	if err := r.Ack(ctx); !errors.Is(err, client.ErrLockExpired) {
		t.Fatalf("ack after the lock expired: %v", err)
	}
	if _, err := cl.ListDeadLetters(ctx, "no-such-share-group", ""); !errors.Is(err, client.ErrGroupNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	st, err := cl.InspectShareRecord(ctx, "bad-acks", "share-bad", 0, r.Offset)
	if err != nil || st.State == "acknowledged" {
		t.Fatalf("a refused ack changed the record: %+v %v", st, err)
	}
}
