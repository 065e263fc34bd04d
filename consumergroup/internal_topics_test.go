package consumergroup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestShareConfigRefusesAnInternalDeadLetterTopic(t *testing.T) {
	c, _ := newShareTest(t, nil, map[string]int32{"jobs": 1})
	ctx := testCtx(t)
	before, err := c.AlterShareGroup(ctx, "q", map[string]string{"max.deliveries": "3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, dlq := range []string{"__consumer_offsets", "__{topic}", "__x.{group}"} {
		_, err := c.AlterShareGroup(ctx, "q", map[string]string{"dlq.topic": dlq, "max.deliveries": "1"}, false)
		if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "dlq.topic="+`"`+dlq+`"`) || !strings.Contains(err.Error(), "internal") {
			t.Fatalf("dlq.topic=%s: %v, want an invalid-argument error naming it", dlq, err)
		}
	}
	d, err := c.DescribeShareGroup(ctx, "q")
	if err != nil {
		t.Fatal(err)
	}
	if d.Config["dlq.topic"] != before["dlq.topic"] || d.Config["max.deliveries"] != "3" {
		t.Fatalf("a refused change changed the config: %v", d.Config)
	}
}

// The report's reproduction, replayed from a log written before the fix:
// the stored config names __consumer_offsets as the dead-letter topic. The
// group keeps its other settings and dead-letters to the default topic.
func TestStoredInternalDeadLetterTopicFallsBackToTheDefault(t *testing.T) {
	lg := newMemLog(true)
	cfg := shareDefaults()
	cfg["dlq.topic"], cfg["max.deliveries"], cfg["backoff.initial.ms"] = OffsetsTopic, "1", "0"
	appendEntries(t, lg, shareEntry(&shareConfigCmd{Group: "q", Config: cfg}))
	c, h := newTestCoordinatorHost(t, &fakeHost{log: lg, topics: map[string]int32{"jobs": 1}}, nil)
	produceTo(t, h, "jobs", 0, testRec{"k", "poison", nil})
	recs := fetch(t, c, "w", 1)
	if len(recs) != 1 {
		t.Fatalf("fetched %v", values(recs))
	}
	ack(t, c, "w", ShareRelease, 0, "exit 1", recs[0])
	waitDeadLetters(t, c, "jobs", 1)
	dls, _ := c.ListDeadLetters(testCtx(t), "q", "jobs")
	if dls[0].DLQTopic != "jobs.dlq.q" || dls[0].DeliveryCount != 1 {
		t.Fatalf("dead letter %+v: want jobs.dlq.q after max.deliveries=1", dls[0])
	}
	if n := len(h.dataLog(OffsetsTopic, 0).batches); n != 0 {
		t.Fatalf("%d batches written to the data partition %s", n, OffsetsTopic)
	}
}

// A share group may read an internal topic, but its dead letters would
// go to "{topic}.dlq.{group}", an internal name: refused, nothing written.
func TestDeadLettersOfAnInternalTopicAreNotWritten(t *testing.T) {
	lg := newMemLog(true)
	appendEntries(t, lg, shareEntry(&shareConfigCmd{Group: "q", Config: func() map[string]string {
		cfg := shareDefaults()
		cfg["max.deliveries"], cfg["backoff.initial.ms"] = "1", "0"
		return cfg
	}()}))
	c, h := newTestCoordinatorHost(t, &fakeHost{log: lg, topics: map[string]int32{"__events": 1}}, nil)
	produceTo(t, h, "__events", 0, testRec{"k", "poison", nil})
	resp, err := c.ShareFetch(testCtx(t), ShareFetchRequest{Group: "q", MemberID: "w", Topics: []string{"__events"}, MaxRecords: 1})
	if err != nil || len(resp.Records) != 1 {
		t.Fatalf("fetch: %v %v", resp.Records, err)
	}
	r := resp.Records[0]
	if _, err := c.ShareAcknowledge(testCtx(t), "q", "w", []ShareAck{{TopicPartition: r.TopicPartition, Offset: r.Record.Offset, Type: ShareRelease}}); err != nil {
		t.Fatal(err)
	}
	// The record is dead; the coordinator's upkeep tries (and refuses)
	// the dead-letter write on every tick.
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := c.ShareInspect(testCtx(t), "q", TopicPartition{"__events", 0}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == InspectDead {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record state %v, want dead", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	_, created := h.topics["__events.dlq.q"]
	_, written := h.data[TopicPartition{"__events.dlq.q", 0}]
	h.mu.Unlock()
	if created || written {
		t.Fatalf("dead-letter topic __events.dlq.q created %v, written %v", created, written)
	}
	// Inspect answers from the committed table; the working state the
	// dead-letter path reads takes the dead record once the committer has
	// seen its append land, a moment later. Until then deadLetter finds
	// nothing dead and returns nil.
	s := c.shardList()[0]
	for {
		err = c.deadLetter(testCtx(t), s, "q", TopicPartition{"__events", 0}, 0, time.Now())
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, ErrInternalTopic) || !strings.Contains(err.Error(), `topic "__events.dlq.q" is internal to the cluster`) {
		t.Fatalf("dead letter to an internal topic: %v", err)
	}
}

// A dead letter whose source is an internal topic (one a share group read)
// cannot be redriven: that would write into the internal topic.
func TestRedriveToAnInternalTopicIsRefused(t *testing.T) {
	lg := newMemLog(true)
	appendEntries(t, lg,
		shareEntry(&shareInitCmd{Group: "q", Topic: "__events", Partition: 0, Offset: 0}),
		shareEntry(&shareAcquireCmd{Group: "q", Topic: "__events", Partition: 0, Offsets: []int64{0}, Member: "w", At: 1}),
		shareEntry(&shareDeadCmd{Group: "q", Topic: "__events", Partition: 0, Offset: 0, Err: "boom"}),
		shareEntry(&shareDeadLetteredCmd{Group: "q", Topic: "__events", Partition: 0, Offset: 0, DLQTopic: "events.dlq", DLQOffset: 0}))
	c, h := newTestCoordinatorHost(t, &fakeHost{log: lg, topics: map[string]int32{"__events": 1, "events.dlq": 1}}, nil)
	produceTo(t, h, "events.dlq", 0, testRec{"k", "poison", nil})
	_, err := c.ResolveDeadLetters(testCtx(t), "q", "__events", nil, true, false)
	if !errors.Is(err, ErrInternalTopic) || !strings.Contains(err.Error(), `topic "__events" is internal to the cluster`) {
		t.Fatalf("redrive: %v, want ErrInternalTopic naming __events", err)
	}
	if n := len(h.dataLog("__events", 0).batches); n != 0 {
		t.Fatalf("%d batches redriven into __events", n)
	}
	dls, err := c.ListDeadLetters(testCtx(t), "q", "__events")
	if err != nil || len(dls) != 1 || dls[0].State != dlPending {
		t.Fatalf("dead letters after the refusal: %+v %v", dls, err)
	}
	// Discarding writes nothing to the source: allowed.
	if n, err := c.ResolveDeadLetters(testCtx(t), "q", "__events", nil, true, true); err != nil || n != 1 {
		t.Fatalf("discard: %d %v", n, err)
	}
}

func waitDeadLetters(t *testing.T, c *Coordinator, topic string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		dls, err := c.ListDeadLetters(testCtx(t), "q", topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(dls) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %+v, want %d", dls, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
