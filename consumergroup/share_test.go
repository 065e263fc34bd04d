package consumergroup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

type testRec struct {
	key     string // "" = null key
	value   string
	headers []record.Header
}

func produceTo(t *testing.T, h *fakeHost, topic string, p int32, recs ...testRec) {
	t.Helper()
	for _, r := range recs {
		rec := record.Record{Value: []byte(r.value), Headers: r.headers, Timestamp: time.Now().UnixMilli()}
		if r.key != "" {
			rec.Key = []byte(r.key)
		}
		b, err := record.Encode(record.BatchOptions{}, []record.Record{rec})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.ProducePartition(context.Background(), topic, p, b); err != nil {
			t.Fatal(err)
		}
	}
}

func newShareTest(t *testing.T, clk *clock, topics map[string]int32) (*Coordinator, *fakeHost) {
	return newTestCoordinatorHost(t, &fakeHost{log: newMemLog(true), topics: topics}, clk)
}

func fetch(t *testing.T, c *Coordinator, member string, max int) []ShareRecord {
	t.Helper()
	resp, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: member, Topics: []string{"jobs"}, MaxRecords: max})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Records
}

func values(rs []ShareRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Record.Value))
	}
	return out
}

func ack(t *testing.T, c *Coordinator, member string, typ ShareAckType, delay time.Duration, reason string, rs ...ShareRecord) []error {
	t.Helper()
	var acks []ShareAck
	for _, r := range rs {
		acks = append(acks, ShareAck{TopicPartition: r.TopicPartition, Offset: r.Record.Offset, Type: typ, Delay: delay, Error: reason})
	}
	res, err := c.ShareAcknowledge(testCtx(t), "q", member, acks)
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	for _, r := range res {
		errs = append(errs, r.Err)
	}
	return errs
}

func mustAck(t *testing.T, c *Coordinator, member string, typ ShareAckType, rs ...ShareRecord) {
	t.Helper()
	for i, err := range ack(t, c, member, typ, 0, "", rs...) {
		if err != nil {
			t.Fatalf("ack %s: %v", rs[i].Record.Value, err)
		}
	}
}

func TestShareKeyOrderedDeliveryHoldsOneRecordPerKey(t *testing.T) {
	c, h := newShareTest(t, nil, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{"a", "a1", nil}, testRec{"b", "b1", nil}, testRec{"a", "a2", nil},
		testRec{"", "n1", nil}, testRec{"b", "b2", nil}, testRec{"", "n2", nil})
	first := fetch(t, c, "m1", 100)
	if got := values(first); !slices.Equal(got, []string{"a1", "b1", "n1", "n2"}) {
		t.Fatalf("first fetch %v: want one record per key plus every null-key record", got)
	}
	if got := fetch(t, c, "m2", 100); len(got) != 0 {
		t.Fatalf("second member got %v while every key is in flight", values(got))
	}
	mustAck(t, c, "m1", ShareAccept, first[0]) // a1
	if got := values(fetch(t, c, "m2", 100)); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("after a1 acked: %v, want [a2]", got)
	}
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"key.ordered": "false"}, false); err != nil {
		t.Fatal(err)
	}
	if got := values(fetch(t, c, "m2", 100)); !slices.Equal(got, []string{"b2"}) {
		t.Fatalf("unordered mode: %v, want [b2]", got)
	}
}

func TestShareLockExpiryRedeliversToAnotherMember(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"lock.timeout.ms": "5000"}, false); err != nil {
		t.Fatal(err)
	}
	produceTo(t, h, "jobs", 0, testRec{"k", "v", nil})
	got := fetch(t, c, "stuck", 10)
	if len(got) != 1 || got[0].DeliveryCount != 1 {
		t.Fatalf("first delivery %+v", got)
	}
	if again := fetch(t, c, "other", 10); len(again) != 0 {
		t.Fatal("delivered twice while locked")
	}
	clk.advance(5001 * time.Millisecond)
	again := fetch(t, c, "other", 10)
	if len(again) != 1 || again[0].DeliveryCount != 2 {
		t.Fatalf("after the lock expired: %+v", again)
	}
	if errs := ack(t, c, "stuck", ShareAccept, 0, "", got[0]); !errors.Is(errs[0], ErrNotHeld) {
		t.Fatalf("ack by the member whose lock expired: %v", errs[0])
	}
	clk.advance(5001 * time.Millisecond)
	if errs := ack(t, c, "other", ShareAccept, 0, "", again[0]); !errors.Is(errs[0], ErrLockExpired) {
		t.Fatalf("ack after the lock expired: %v", errs[0])
	}
	// Renewing keeps a lock alive.
	third := fetch(t, c, "other", 10)
	clk.advance(4 * time.Second)
	res, err := c.ShareAcknowledge(testCtx(t), "q", "other", []ShareAck{{TopicPartition: third[0].TopicPartition, Offset: third[0].Record.Offset, Type: ShareRenew}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("renew: %v %v", err, res)
	}
	clk.advance(4 * time.Second)
	mustAck(t, c, "other", ShareAccept, third...)
}

func TestSharePoisonRecordGoesToTheDLQQuarantinesItsKeyAndRedrivesInOrder(t *testing.T) {
	c, h := newShareTest(t, nil, map[string]int32{"jobs": 1})
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"max.deliveries": "2", "backoff.initial.ms": "0"}, false); err != nil {
		t.Fatal(err)
	}
	produceTo(t, h, "jobs", 0, testRec{"p", "poison", []record.Header{{Key: "trace", Value: []byte("t1")}}},
		testRec{"ok", "fine1", nil}, testRec{"p", "after-poison", nil}, testRec{"ok", "fine2", nil})
	deadline := time.Now().Add(10 * time.Second)
	var done []string
	for !slices.Contains(done, "fine2") {
		if time.Now().After(deadline) {
			t.Fatalf("processed %v", done)
		}
		for _, r := range fetch(t, c, "w", 10) {
			if string(r.Record.Value) == "poison" {
				if errs := ack(t, c, "w", ShareRelease, -1, "boom "+strconv.Itoa(int(r.DeliveryCount)), r); errs[0] != nil {
					t.Fatal(errs[0])
				}
				continue
			}
			if string(r.Record.Value) == "after-poison" {
				t.Fatal("a later record of the poisoned key was delivered while its key is quarantined")
			}
			mustAck(t, c, "w", ShareAccept, r)
			done = append(done, string(r.Record.Value))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var dls []DeadLetterInfo
	for {
		var err error
		if dls, err = c.ListDeadLetters(testCtx(t), "q", "jobs"); err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %+v", dls)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := dls[0]
	if d.Offset != 0 || d.DeliveryCount != 2 || d.LastError != "boom 2" || d.State != dlPending || d.DLQTopic != "jobs.dlq.q" || d.Record == nil {
		t.Fatalf("dead letter %+v", d)
	}
	hdr := map[string]string{}
	for _, hd := range d.Record.Headers {
		hdr[hd.Key] = string(hd.Value)
	}
	if string(d.Record.Value) != "poison" || hdr["trace"] != "t1" || hdr[HeaderDLQSourceTopic] != "jobs" ||
		hdr[HeaderDLQSourceOffset] != "0" || hdr[HeaderDLQDeliveryCount] != "2" || hdr[HeaderDLQLastError] != "boom 2" || hdr[HeaderDLQFirstDelivery] == "" {
		t.Fatalf("dead letter payload %q headers %v", d.Record.Value, hdr)
	}
	st, err := c.ShareInspect(testCtx(t), "q", TopicPartition{"jobs", 0}, 2)
	if err != nil || !st.KeyQuarantined || st.BlockedBy != blockedQuarantine {
		t.Fatalf("inspect the held record: %+v %v", st, err)
	}
	n, err := c.ResolveDeadLetters(testCtx(t), "q", "jobs", []int64{d.DLQOffset}, false, false)
	if err != nil || n != 1 {
		t.Fatalf("redrive: %d %v", n, err)
	}
	// The redriven copy comes first, then the held record.
	var order []string
	for len(order) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("after redrive got %v", order)
		}
		for _, r := range fetch(t, c, "w", 10) {
			order = append(order, string(r.Record.Value))
			mustAck(t, c, "w", ShareAccept, r)
		}
	}
	if !slices.Equal(order, []string{"poison", "after-poison"}) {
		t.Fatalf("order after redrive %v", order)
	}
	dls, _ = c.ListDeadLetters(testCtx(t), "q", "jobs")
	if dls[0].State != dlRedriven || dls[0].RedriveOffset != 4 {
		t.Fatalf("dead letter after redrive %+v", dls[0])
	}
}

func TestShareNotBeforeDelaysDelivery(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	at := clk.Now().Add(2 * time.Second)
	produceTo(t, h, "jobs", 0,
		testRec{"", "later", []record.Header{{Key: NotBeforeHeader, Value: []byte(at.Format(time.RFC3339Nano))}}},
		testRec{"", "now", nil})
	if got := values(fetch(t, c, "m", 10)); !slices.Equal(got, []string{"now"}) {
		t.Fatalf("before the not-before time: %v", got)
	}
	st, err := c.ShareInspect(testCtx(t), "q", TopicPartition{"jobs", 0}, 0)
	if err != nil || !st.VisibleAt.Equal(at.Truncate(time.Millisecond)) || st.BlockedBy != blockedDelayed {
		t.Fatalf("inspect: %+v %v", st, err)
	}
	clk.advance(2 * time.Second)
	if got := values(fetch(t, c, "m", 10)); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("at the not-before time: %v", got)
	}
}

func TestShareStateSurvivesANewCoordinator(t *testing.T) {
	lg := newMemLog(true)
	host := &fakeHost{log: lg, topics: map[string]int32{"jobs": 2}}
	c, _ := newTestCoordinatorHost(t, host, nil)
	for p := range int32(2) {
		for i := range 5 {
			produceTo(t, host, "jobs", p, testRec{"", fmt.Sprintf("p%d-%d", p, i), nil})
		}
	}
	got := fetch(t, c, "m", 6)
	if len(got) != 6 {
		t.Fatalf("fetched %d", len(got))
	}
	mustAck(t, c, "m", ShareAccept, got[:4]...)
	held := got[4:]
	c.Close()

	c2, _ := newTestCoordinatorHost(t, host, nil)
	rest := fetch(t, c2, "m2", 100)
	if len(rest) != 4 {
		t.Fatalf("new coordinator delivered %v; want the 4 never delivered", values(rest))
	}
	for _, r := range rest {
		if slices.Contains(values(got), string(r.Record.Value)) {
			t.Fatalf("redelivered %s: acked or still locked", r.Record.Value)
		}
	}
	// The locks taken before the failover still hold for their owner.
	mustAck(t, c2, "m", ShareAccept, held...)
	if errs := ack(t, c2, "m2", ShareAccept, 0, "", held[0]); !errors.Is(errs[0], ErrNotHeld) {
		t.Fatalf("second ack of an acked record: %v", errs[0])
	}
}

func TestShareRefusesBadAcks(t *testing.T) {
	c, h := newShareTest(t, nil, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{"", "x", nil}, testRec{"", "y", nil})
	got := fetch(t, c, "owner", 1)
	if errs := ack(t, c, "thief", ShareAccept, 0, "", got[0]); !errors.Is(errs[0], ErrNotHeld) {
		t.Fatalf("ack by another member: %v", errs[0])
	}
	never := ShareRecord{TopicPartition: TopicPartition{"jobs", 0}, Record: record.Record{Offset: 1}}
	if errs := ack(t, c, "owner", ShareAccept, 0, "", never); !errors.Is(errs[0], ErrNotHeld) {
		t.Fatalf("ack of an undelivered record: %v", errs[0])
	}
	if _, err := c.ShareAcknowledge(testCtx(t), "nope", "m", []ShareAck{{TopicPartition: TopicPartition{"jobs", 0}}}); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("unknown group: %v", err)
	}
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"max.deliveries": "0"}, false); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"no.such.key": "1"}, false); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown config key: %v", err)
	}
	// The refused acks changed nothing: the owner still acks it.
	mustAck(t, c, "owner", ShareAccept, got...)
}

func TestShareFloodBreakerPausesTheGroupUntilResumed(t *testing.T) {
	c, h := newShareTest(t, nil, map[string]int32{"jobs": 1})
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"dlq.flood.per.minute": "2", "key.ordered": "false"}, false); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		produceTo(t, h, "jobs", 0, testRec{"", fmt.Sprintf("bad-%d", i), nil})
	}
	got := fetch(t, c, "m", 3)
	for _, err := range ack(t, c, "m", ShareReject, 0, "schema mismatch", got...) {
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := c.DescribeShareGroup(testCtx(t), "q")
		if err != nil {
			t.Fatal(err)
		}
		if d.Paused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the flood breaker never paused the group")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "m", Topics: []string{"jobs"}})
	if err != nil || !resp.Paused || len(resp.Records) != 0 || resp.PausedReason == "" {
		t.Fatalf("fetch from a paused group: %+v %v", resp, err)
	}
	d, err := c.DescribeShareGroup(testCtx(t), "q")
	if err != nil || !d.Paused || d.Partitions[0].DeadLettered != 3 {
		t.Fatalf("describe: %+v %v", d, err)
	}
	if _, err := c.AlterShareGroup(testCtx(t), "q", nil, true); err != nil {
		t.Fatal(err)
	}
	if got := values(fetch(t, c, "m", 10)); len(got) != 3 {
		t.Fatalf("after resume: %v", got)
	}
}

func TestShareReleaseWithDelayAndBackoffHoldsTheRecordBack(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	if _, err := c.AlterShareGroup(testCtx(t), "q", map[string]string{"backoff.initial.ms": "4000", "backoff.jitter": "0"}, false); err != nil {
		t.Fatal(err)
	}
	produceTo(t, h, "jobs", 0, testRec{"", "x", nil})
	got := fetch(t, c, "m", 1)
	if errs := ack(t, c, "m", ShareRelease, 2*time.Second, "busy", got...); errs[0] != nil {
		t.Fatal(errs[0])
	}
	clk.advance(1999 * time.Millisecond)
	if again := fetch(t, c, "m", 1); len(again) != 0 {
		t.Fatal("released with a 2s delay, delivered after 1.999s")
	}
	clk.advance(time.Millisecond)
	got = fetch(t, c, "m", 1)
	if len(got) != 1 || got[0].DeliveryCount != 2 {
		t.Fatalf("after the delay: %+v", got)
	}
	// The group's backoff after the 2nd delivery: 4s × 2^(2-1) = 8s.
	if errs := ack(t, c, "m", ShareRelease, -1, "still busy", got...); errs[0] != nil {
		t.Fatal(errs[0])
	}
	st, err := c.ShareInspect(testCtx(t), "q", TopicPartition{"jobs", 0}, 0)
	if err != nil || st.LastError != "still busy" || !st.VisibleAt.Equal(clk.Now().Add(8*time.Second)) {
		t.Fatalf("inspect after a backoff release: %+v %v (now %v)", st, err, clk.Now())
	}
	clk.advance(7999 * time.Millisecond)
	if again := fetch(t, c, "m", 1); len(again) != 0 {
		t.Fatal("delivered before the backoff ended")
	}
	clk.advance(time.Millisecond)
	if again := fetch(t, c, "m", 1); len(again) != 1 || again[0].DeliveryCount != 3 {
		t.Fatalf("after the backoff: %+v", again)
	}
}

// TestShareDeadLetterWrittenOnceWhenAnEarlierWriteLanded: a dead letter
// whose first write landed but was not recorded (its outcome was lost) is
// found instead of written again.
func TestShareDeadLetterWrittenOnceWhenAnEarlierWriteLanded(t *testing.T) {
	c, h := newShareTest(t, nil, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{"k", "poison", nil})
	produceTo(t, h, "jobs.dlq.q", 0, testRec{"k", "poison", []record.Header{
		{Key: HeaderDLQGroup, Value: []byte("q")}, {Key: HeaderDLQSourceTopic, Value: []byte("jobs")},
		{Key: HeaderDLQSourcePartition, Value: []byte("0")}, {Key: HeaderDLQSourceOffset, Value: []byte("0")}}})
	got := fetch(t, c, "m", 1)
	if errs := ack(t, c, "m", ShareReject, 0, "bad", got...); errs[0] != nil {
		t.Fatal(errs[0])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		dls, err := c.ListDeadLetters(testCtx(t), "q", "jobs")
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) == 1 {
			if dls[0].DLQOffset != 0 {
				t.Fatalf("dead letter at dlq offset %d, want the earlier write at 0", dls[0].DLQOffset)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hw := h.dataLog("jobs.dlq.q", 0).HighWatermark(); hw != 1 {
		t.Fatalf("dead-letter topic holds %d records, want 1", hw)
	}
}

// TestShareFetchCarriesAcks: acks sent with a fetch are checked one by
// one and committed with it, and the member's own acks free the next
// records of their keys for it in the same call.
func TestShareFetchCarriesAcks(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{"a", "a1", nil}, testRec{"b", "b1", nil}, testRec{"a", "a2", nil}, testRec{"b", "b2", nil})
	first := fetch(t, c, "m1", 10)
	if got := values(first); !slices.Equal(got, []string{"a1", "b1"}) {
		t.Fatalf("first fetch %v", got)
	}
	a1, b1 := first[0], first[1]
	resp, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "m1", Topics: []string{"jobs"}, MaxRecords: 10,
		Acks: []ShareAck{
			{TopicPartition: a1.TopicPartition, Offset: a1.Record.Offset, Type: ShareAccept},
			{TopicPartition: a1.TopicPartition, Offset: 99, Type: ShareAccept},
			{TopicPartition: b1.TopicPartition, Offset: b1.Record.Offset, Type: ShareRenew},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.AckResults) != 3 || resp.AckResults[0].Err != nil || !errors.Is(resp.AckResults[1].Err, ErrNotHeld) ||
		resp.AckResults[2].Err != nil || !resp.AckResults[2].LockUntil.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("ack results %+v", resp.AckResults)
	}
	if got := values(resp.Records); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("records with the acks %v, want a2 (freed by the member's own ack; b is still in flight)", got)
	}
	st, err := c.ShareInspect(testCtx(t), "q", a1.TopicPartition, a1.Record.Offset)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != InspectBelowStart && st.State != InspectAcknowledged {
		t.Fatalf("a1 after the fetch that acked it: %v", st.State)
	}
	// An ack of a record already settled fails alone.
	resp, err = c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "m1", Topics: []string{"jobs"}, MaxRecords: 10,
		Acks: []ShareAck{{TopicPartition: a1.TopicPartition, Offset: a1.Record.Offset, Type: ShareAccept}}})
	if err != nil || len(resp.AckResults) != 1 || !errors.Is(resp.AckResults[0].Err, ErrNotHeld) {
		t.Fatalf("second ack of a1: %+v %v", resp.AckResults, err)
	}
	if _, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", Topics: []string{"jobs"},
		Acks: []ShareAck{{TopicPartition: a1.TopicPartition, Offset: 0}}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("acks without a member id: %v", err)
	}
	many := make([]ShareAck, MaxShareAcksPerRequest+1)
	if _, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "m1", Topics: []string{"jobs"}, Acks: many}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("%d acks: %v", len(many), err)
	}
}

// TestShareTickExpiresSilentMembersOnAFakeClock drives the shell's
// upkeep with an explicit time: a member silent for longer than the
// session timeout leaves, and its records go to another member at once.
func TestShareTickExpiresSilentMembersOnAFakeClock(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	produceTo(t, h, "jobs", 0, testRec{"a", "a1", nil})
	if got := values(fetch(t, c, "gone", 10)); !slices.Equal(got, []string{"a1"}) {
		t.Fatalf("first fetch %v", got)
	}
	s, err := c.shardFor(testCtx(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	c.shareTick(testCtx(t), s, clk.Now().Add(c.cfg.SessionTimeout/2))
	if got := fetch(t, c, "other", 10); len(got) != 0 {
		t.Fatalf("delivered %v while its holder's session lasts", values(got))
	}
	c.shareTick(testCtx(t), s, clk.Now().Add(c.cfg.SessionTimeout+time.Second))
	got := fetch(t, c, "other", 10)
	if len(got) != 1 || got[0].DeliveryCount != 2 {
		t.Fatalf("after the silent member left: %+v", got)
	}
}

func TestShareTickReportsProgressFromCommittedAcks(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	c, h := newShareTest(t, clk, map[string]int32{"jobs": 1})
	for i := range 6 {
		produceTo(t, h, "jobs", 0, testRec{"", fmt.Sprint("r", i), nil})
	}
	got := fetch(t, c, "m", 6)
	if len(got) != 6 {
		t.Fatalf("fetched %v, want 6 records", values(got))
	}
	s, err := c.shardFor(testCtx(t), "q")
	if err != nil {
		t.Fatal(err)
	}
	tick := func() ShareProgress {
		t.Helper()
		c.shareTick(testCtx(t), s, clk.Now())
		p, ok := h.shareProgress("q", "jobs", 0)
		if !ok {
			t.Fatal("no progress reported for q on jobs/0")
		}
		return p
	}
	p1 := tick()
	if p1.Floor != 0 || p1.Done != 0 {
		t.Fatalf("nothing acked yet: floor %d done %d, want 0 and 0", p1.Floor, p1.Done)
	}
	// Acks of r0, r1 (the floor moves past them) and r4 (done above the
	// floor); r2, r3 and r5 stay in flight.
	mustAck(t, c, "m", ShareAccept, got[0], got[1], got[4])
	p2 := tick()
	if p2.Floor != 2 || p2.Done != 1 {
		t.Fatalf("after acks of offsets 0, 1 and 4: floor %d done %d, want 2 and 1", p2.Floor, p2.Done)
	}
	if p2.Epoch < p1.Epoch || (p2.Epoch == p1.Epoch && p2.Seq <= p1.Seq) {
		t.Fatalf("report (%d, %d) does not follow (%d, %d)", p2.Epoch, p2.Seq, p1.Epoch, p1.Seq)
	}
	// A release is not done: the record is ready again.
	for i, err := range ack(t, c, "m", ShareRelease, 0, "", got[2]) {
		if err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
	}
	if p3 := tick(); p3.Floor != 2 || p3.Done != 1 {
		t.Fatalf("after a release: floor %d done %d, want 2 and 1", p3.Floor, p3.Done)
	}
}
