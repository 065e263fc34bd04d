package client

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ackOutcomes collects OnAckResult calls.
type ackOutcomes struct {
	mu   sync.Mutex
	got  map[int64]error // by offset
	seen chan struct{}   // a token per outcome
}

func newAckOutcomes() *ackOutcomes {
	return &ackOutcomes{got: map[int64]error{}, seen: make(chan struct{}, 100)}
}

func (o *ackOutcomes) record(a ShareAck, err error) {
	o.mu.Lock()
	o.got[a.Offset] = err
	o.mu.Unlock()
	o.seen <- struct{}{}
}

func (o *ackOutcomes) wait(t *testing.T, n int) map[int64]error {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for range n {
		select {
		case <-o.seen:
		case <-deadline:
			t.Fatalf("fewer than %d ack outcomes", n)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[int64]error{}
	for k, v := range o.got {
		out[k] = v
	}
	return out
}

// TestShareAcksRideOnTheNextFetch: queued acks travel with the next
// Fetch, each outcome is reported alone, and nothing else sends them.
func TestShareAcksRideOnTheNextFetch(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	out := newAckOutcomes()
	b.set(func() {
		b.fetch = func(req *skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			resp := &skiffpb.ShareFetchResponse{MemberId: "m1", Records: []*skiffpb.ShareRecord{
				{Topic: "t", Offset: 7, DeliveryCount: 1}, {Topic: "t", Offset: 8, DeliveryCount: 1}}}
			for _, a := range req.Acks {
				r := &skiffpb.ShareAckResult{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset}
				if a.Offset == 8 {
					r.ErrorReason, r.Error = "LOCK_EXPIRED", "lock ended"
				}
				resp.AckResults = append(resp.AckResults, r)
			}
			return resp, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, AckInterval: time.Hour, OnAckResult: out.record})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 2 {
		t.Fatalf("Fetch = %v, %v", recs, err)
	}
	if err := recs[0].AckAsync(); err != nil {
		t.Fatal(err)
	}
	if err := recs[1].ReleaseAsync(BackoffDelay, "failed"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Fetch(testContext(t)); err != nil {
		t.Fatal(err)
	}
	got := out.wait(t, 2)
	if got[7] != nil || !errors.Is(got[8], ErrLockExpired) {
		t.Fatalf("outcomes %v: want 7 applied, 8 lock expired", got)
	}
	fetches := requestsOf[*skiffpb.ShareFetchRequest](b)
	if len(fetches) != 2 || len(fetches[0].Acks) != 0 || len(fetches[1].Acks) != 2 {
		t.Fatalf("fetches carried %d requests: %+v", len(fetches), fetches)
	}
	if a := fetches[1].Acks[1]; a.Type != skiffpb.ShareAckType_SHARE_ACK_RELEASE || a.DelayMs != -1 || a.Error != "failed" || fetches[1].MemberId != "m1" {
		t.Fatalf("release sent as %+v", a)
	}
	if n := len(requestsOf[*skiffpb.ShareAckRequest](b)); n != 0 {
		t.Fatalf("%d ShareAcknowledge requests: the acks should have ridden on the fetch", n)
	}
}

// TestShareAcksGoOnTheirOwnAfterTheIntervalAndAtClose: acks no fetch
// takes are sent after AckInterval; those queued at Close are sent before
// the member leaves; after Close nothing can be queued.
func TestShareAcksGoOnTheirOwnAfterTheIntervalAndAtClose(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	out := newAckOutcomes()
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return &skiffpb.ShareFetchResponse{MemberId: "m1", Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: 1}, {Topic: "t", Offset: 2}}}, nil
		}
		b.ack = ackEcho(0)
		b.leave = func(*skiffpb.ShareLeaveRequest) (*skiffpb.ShareLeaveResponse, error) {
			return &skiffpb.ShareLeaveResponse{}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, AckInterval: 20 * time.Millisecond, OnAckResult: out.record})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 2 {
		t.Fatalf("Fetch = %v, %v", recs, err)
	}
	recs[0].AckAsync()
	if got := out.wait(t, 1); got[1] != nil {
		t.Fatalf("timer-sent ack: %v", got)
	}
	recs[1].AckAsync()
	if err := sc.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if got := out.wait(t, 1); got[2] != nil {
		t.Fatalf("ack sent at close: %v", got)
	}
	var sent []int64
	for _, r := range requestsOf[*skiffpb.ShareAckRequest](b) {
		for _, a := range r.Acks {
			sent = append(sent, a.Offset)
		}
	}
	if len(sent) != 2 || sent[0] != 1 || sent[1] != 2 {
		t.Fatalf("acks sent on their own: %v, want [1 2]", sent)
	}
	leaves := requestsOf[*skiffpb.ShareLeaveRequest](b)
	if len(leaves) != 1 {
		t.Fatalf("%d leaves", len(leaves))
	}
	if err := recs[0].AckAsync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("AckAsync after Close: %v", err)
	}
}

// TestShareAcksOfAFailedFetchAreReported: a fetch that fails reports its
// acks with the failure (a lost outcome as ErrIndeterminate), and an
// invalid ack is refused before anything is queued.
func TestShareAcksOfAFailedFetchAreReported(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	out := newAckOutcomes()
	calls := 0
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			calls++
			if calls == 1 {
				return &skiffpb.ShareFetchResponse{MemberId: "m1", Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: 3}}}, nil
			}
			return nil, errors.New("boom")
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, AckInterval: time.Hour, OnAckResult: out.record})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 1 {
		t.Fatalf("Fetch = %v, %v", recs, err)
	}
	if err := sc.AcknowledgeAsync(ShareAck{Topic: "t", Offset: 9, Type: ShareRelease, Delay: -5}); err == nil {
		t.Fatal("a negative release delay was queued")
	}
	recs[0].AckAsync()
	if _, err := sc.Fetch(testContext(t)); err == nil {
		t.Fatal("fetch succeeded")
	}
	if got := out.wait(t, 1); got[3] == nil {
		t.Fatalf("ack of a failed fetch reported %v", got)
	}
}
