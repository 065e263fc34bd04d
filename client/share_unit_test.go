package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// fakeShareBroker is one in-process broker on loopback that serves
// metadata, FindCoordinator (itself) and the ShareGroups service through
// hooks, so the share client is tested over real gRPC without a cluster.
// A nil hook answers UNIMPLEMENTED. Every request is recorded.
type fakeShareBroker struct {
	skiffpb.UnimplementedShareGroupsServer
	addr string

	mu       sync.Mutex // guards the fields below
	fetch    func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error)
	ack      func(*skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error)
	leave    func(*skiffpb.ShareLeaveRequest) (*skiffpb.ShareLeaveResponse, error)
	inspect  func(*skiffpb.ShareInspectRequest) (*skiffpb.ShareInspectResponse, error)
	describe func(*skiffpb.DescribeShareGroupRequest) (*skiffpb.DescribeShareGroupResponse, error)
	alter    func(*skiffpb.AlterShareGroupRequest) (*skiffpb.AlterShareGroupResponse, error)
	list     func(*skiffpb.ListDeadLettersRequest) (*skiffpb.ListDeadLettersResponse, error)
	resolve  func(*skiffpb.ResolveDeadLettersRequest) (*skiffpb.ResolveDeadLettersResponse, error)
	requests []any
	finds    int
}

type fakeAdmin struct {
	skiffpb.UnimplementedAdminServer
	b *fakeShareBroker
}

func (a fakeAdmin) Metadata(context.Context, *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	return &skiffpb.MetadataResponse{Brokers: []*skiffpb.Broker{{Id: "n1", GrpcAddr: a.b.addr, State: "alive"}}, ControllerId: "n1"}, nil
}

type fakeGroups struct {
	skiffpb.UnimplementedGroupsServer
	b *fakeShareBroker
}

func (g fakeGroups) FindCoordinator(context.Context, *skiffpb.FindCoordinatorRequest) (*skiffpb.FindCoordinatorResponse, error) {
	g.b.mu.Lock()
	g.b.finds++
	g.b.mu.Unlock()
	return &skiffpb.FindCoordinatorResponse{NodeId: "n1", Addr: g.b.addr}, nil
}

// startFakeShareBroker serves until the test ends and returns a client
// connected to it.
func startFakeShareBroker(t *testing.T) (*fakeShareBroker, *Client) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeShareBroker{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	skiffpb.RegisterAdminServer(srv, fakeAdmin{b: b})
	skiffpb.RegisterGroupsServer(srv, fakeGroups{b: b})
	skiffpb.RegisterShareGroupsServer(srv, b)
	go srv.Serve(lis)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := New(ctx, Config{Brokers: []string{b.addr}, RequestTimeout: 5 * time.Second})
	if err != nil {
		srv.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		srv.Stop()
	})
	return b, cl
}

// hook records req and returns the hook to run under b.mu.
func hook[Req, Resp any](b *fakeShareBroker, req Req, fn *func(Req) (Resp, error)) (Resp, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.requests = append(b.requests, req)
	if *fn == nil {
		var zero Resp
		return zero, status.Error(codes.Unimplemented, "no hook")
	}
	return (*fn)(req)
}

func (b *fakeShareBroker) ShareFetch(_ context.Context, r *skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
	return hook(b, r, &b.fetch)
}
func (b *fakeShareBroker) ShareAcknowledge(_ context.Context, r *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
	return hook(b, r, &b.ack)
}
func (b *fakeShareBroker) ShareLeave(_ context.Context, r *skiffpb.ShareLeaveRequest) (*skiffpb.ShareLeaveResponse, error) {
	return hook(b, r, &b.leave)
}
func (b *fakeShareBroker) ShareInspect(_ context.Context, r *skiffpb.ShareInspectRequest) (*skiffpb.ShareInspectResponse, error) {
	return hook(b, r, &b.inspect)
}
func (b *fakeShareBroker) DescribeShareGroup(_ context.Context, r *skiffpb.DescribeShareGroupRequest) (*skiffpb.DescribeShareGroupResponse, error) {
	return hook(b, r, &b.describe)
}
func (b *fakeShareBroker) AlterShareGroup(_ context.Context, r *skiffpb.AlterShareGroupRequest) (*skiffpb.AlterShareGroupResponse, error) {
	return hook(b, r, &b.alter)
}
func (b *fakeShareBroker) ListDeadLetters(_ context.Context, r *skiffpb.ListDeadLettersRequest) (*skiffpb.ListDeadLettersResponse, error) {
	return hook(b, r, &b.list)
}
func (b *fakeShareBroker) ResolveDeadLetters(_ context.Context, r *skiffpb.ResolveDeadLettersRequest) (*skiffpb.ResolveDeadLettersResponse, error) {
	return hook(b, r, &b.resolve)
}

func (b *fakeShareBroker) set(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fn()
}

// requestsOf returns the recorded requests of one type.
func requestsOf[T any](b *fakeShareBroker) []T {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []T
	for _, r := range b.requests {
		if r, ok := r.(T); ok {
			out = append(out, r)
		}
	}
	return out
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestShareConsumerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ShareConsumerConfig
		want string // "" valid
	}{
		{"topics", ShareConsumerConfig{Group: "g", Topics: []string{"a"}}, ""},
		{"pattern", ShareConsumerConfig{Group: "g", Pattern: "orders.*"}, ""},
		{"no group", ShareConsumerConfig{Topics: []string{"a"}}, "Group is required"},
		{"neither topics nor pattern", ShareConsumerConfig{Group: "g"}, "exactly one of Topics and Pattern"},
		{"both topics and pattern", ShareConsumerConfig{Group: "g", Topics: []string{"a"}, Pattern: "#"}, "exactly one of Topics and Pattern"},
		{"empty topic", ShareConsumerConfig{Group: "g", Topics: []string{""}}, "empty topic name"},
		{"too many records", ShareConsumerConfig{Group: "g", Topics: []string{"a"}, MaxRecords: 10001}, "MaxRecords"},
		{"negative records", ShareConsumerConfig{Group: "g", Topics: []string{"a"}, MaxRecords: -1}, "MaxRecords"},
		{"negative wait", ShareConsumerConfig{Group: "g", Topics: []string{"a"}, MaxWait: -time.Second}, "MaxWait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	d := ShareConsumerConfig{Group: "g", Topics: []string{"a"}}.withDefaults()
	if d.MaxRecords != 100 || d.MaxWait != time.Second {
		t.Fatalf("defaults %+v", d)
	}
}

func TestNewShareConsumerRefusesAMaxWaitBeyondTheRequestTimeout(t *testing.T) {
	_, cl := startFakeShareBroker(t)
	if _, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"a"}, MaxWait: 5 * time.Second}); err == nil ||
		!strings.Contains(err.Error(), "RequestTimeout") {
		t.Fatalf("MaxWait = RequestTimeout accepted: %v", err)
	}
}

func TestShareFetchDecodesRecordsKeepingNullAndEmptyApart(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	lock := time.Now().Add(30 * time.Second).UnixMilli()
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return &skiffpb.ShareFetchResponse{MemberId: "m1", LockTimeoutMs: 30000, Records: []*skiffpb.ShareRecord{
				{Topic: "t", Partition: 2, Offset: 7, Key: []byte("k"), Value: []byte("v"), TimestampMs: 1700000000000,
					DeliveryCount: 3, LockUntilMs: lock, Headers: []*skiffpb.Header{{Key: "h", Value: []byte("x")}}},
				{Topic: "t", Partition: 2, Offset: 8, KeyNull: true, ValueNull: true, DeliveryCount: 1},
				{Topic: "t", Partition: 2, Offset: 9, DeliveryCount: 1}, // empty key and value, not null
			}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, ClientID: "cli", MaxRecords: 3, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 3 {
		t.Fatalf("Fetch = %d records, %v", len(recs), err)
	}
	r := recs[0]
	if r.Topic != "t" || r.Partition != 2 || r.Offset != 7 || string(r.Key) != "k" || string(r.Value) != "v" ||
		r.DeliveryCount != 3 || r.LockUntil.UnixMilli() != lock || r.Timestamp.UnixMilli() != 1700000000000 ||
		!slices.EqualFunc(r.Headers, []record.Header{{Key: "h", Value: []byte("x")}}, func(a, b record.Header) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) {
		t.Fatalf("record 0 decoded as %+v", r)
	}
	if recs[1].Key != nil || recs[1].Value != nil {
		t.Fatalf("null key/value decoded as %q/%q", recs[1].Key, recs[1].Value)
	}
	if recs[2].Key == nil || recs[2].Value == nil || len(recs[2].Key) != 0 {
		t.Fatalf("empty key/value decoded as null: %#v/%#v", recs[2].Key, recs[2].Value)
	}
	if sc.MemberID() != "m1" {
		t.Fatalf("member id %q", sc.MemberID())
	}
	req := requestsOf[*skiffpb.ShareFetchRequest](b)[0]
	if req.Group != "g" || req.MemberId != "" || !slices.Equal(req.Topics, []string{"t"}) || req.ClientId != "cli" ||
		req.MaxRecords != 3 || req.MaxWaitMs != 200 {
		t.Fatalf("fetch request %v", req)
	}
}

func TestShareFetchKeepsTheMemberIDAndJoinsAgainWhenForgotten(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	n := 0
	b.set(func() {
		b.fetch = func(req *skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			n++
			switch {
			case req.MemberId == "":
				id := "m" + string(rune('0'+n))
				return &skiffpb.ShareFetchResponse{MemberId: id, Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: int64(n)}}}, nil
			case req.MemberId == "m1" && n == 3:
				return nil, statusWith(codes.FailedPrecondition, "member m1 expired", info("UNKNOWN_MEMBER"))
			}
			return &skiffpb.ShareFetchResponse{MemberId: req.MemberId, Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: int64(n)}}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Pattern: "t.*", MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	for range 3 {
		if _, err := sc.Fetch(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var sent []string
	for _, r := range requestsOf[*skiffpb.ShareFetchRequest](b) {
		sent = append(sent, r.MemberId)
		if r.Pattern != "t.*" || len(r.Topics) != 0 {
			t.Fatalf("subscription sent as %v", r)
		}
	}
	// 1st joins, 2nd reuses m1, 3rd is refused and joins again at once.
	if want := []string{"", "m1", "m1", ""}; !slices.Equal(sent, want) {
		t.Fatalf("member ids sent %q, want %q", sent, want)
	}
	if sc.MemberID() != "m4" {
		t.Fatalf("member id after rejoining %q", sc.MemberID())
	}
}

func TestShareFetchWaitsUntilRecordsArriveOrTheContextEnds(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	polls := 0
	b.set(func() {
		b.fetch = func(req *skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			polls++
			if polls < 4 {
				return &skiffpb.ShareFetchResponse{MemberId: "m"}, nil // nothing yet, answered at once
			}
			return &skiffpb.ShareFetchResponse{MemberId: "m", Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: 1}}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, MaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 1 || polls != 4 {
		t.Fatalf("Fetch = %v, %v after %d polls", recs, err, polls)
	}

	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return &skiffpb.ShareFetchResponse{MemberId: "m"}, nil
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	recs, err = sc.Fetch(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || recs != nil {
		t.Fatalf("Fetch on an empty queue = %v, %v; want the context's error", recs, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Fetch returned %v after its context ended", took)
	}
	// Immediate empty answers are paced: no more than one per 50ms.
	if n := len(requestsOf[*skiffpb.ShareFetchRequest](b)); n > 4+300/50+2 {
		t.Fatalf("%d fetch requests in 300ms: the loop spins", n)
	}
}

func TestShareFetchOfAPausedGroupFailsAfterMaxWait(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return &skiffpb.ShareFetchResponse{MemberId: "m", Paused: true, PausedReason: "120 dead letters in the last minute"}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}, MaxWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = sc.Fetch(testContext(t))
	if !errors.Is(err, ErrGroupPaused) || !strings.Contains(err.Error(), "120 dead letters") {
		t.Fatalf("Fetch of a paused group = %v", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("paused answer returned after %v, before MaxWait", took)
	}
}

func TestShareFetchFollowsAMovedCoordinator(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	calls := 0
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			if calls++; calls == 1 {
				return nil, statusWith(codes.FailedPrecondition, "moved", info("NOT_COORDINATOR"))
			}
			return &skiffpb.ShareFetchResponse{MemberId: "m", Records: []*skiffpb.ShareRecord{{Topic: "t"}}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if recs, err := sc.Fetch(testContext(t)); err != nil || len(recs) != 1 {
		t.Fatalf("Fetch = %v, %v", recs, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.finds != 2 {
		t.Fatalf("coordinator looked up %d times, want 2 (again after NOT_COORDINATOR)", b.finds)
	}
}

func TestShareFetchPassesOtherErrorsOn(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return nil, statusWith(codes.NotFound, "no topic t", info("UNKNOWN_TOPIC"))
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Fetch(testContext(t)); !errors.Is(err, ErrUnknownTopic) || !strings.Contains(err.Error(), "group g") {
		t.Fatalf("Fetch = %v", err)
	}
}

// fetchOne makes a consumer holding one record t/0@5 (member m1).
func fetchOne(t *testing.T, b *fakeShareBroker, cl *Client) (*ShareConsumer, *ShareRecord) {
	t.Helper()
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			return &skiffpb.ShareFetchResponse{MemberId: "m1", Records: []*skiffpb.ShareRecord{
				{Topic: "t", Offset: 5, DeliveryCount: 1, LockUntilMs: time.Now().Add(time.Second).UnixMilli()}}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.Fetch(testContext(t))
	if err != nil || len(recs) != 1 {
		t.Fatalf("Fetch = %v, %v", recs, err)
	}
	return sc, recs[0]
}

// ackEcho answers every ack as applied, renewals until lockUntil.
func ackEcho(lockUntil int64) func(*skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
	return func(req *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
		resp := &skiffpb.ShareAckResponse{}
		for _, a := range req.Acks {
			r := &skiffpb.ShareAckResult{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset}
			if a.Type == skiffpb.ShareAckType_SHARE_ACK_RENEW {
				r.LockUntilMs = lockUntil
			}
			resp.Results = append(resp.Results, r)
		}
		return resp, nil
	}
}

func TestShareRecordSettlementsSendWhatTheySay(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	_, r := fetchOne(t, b, cl)
	renewed := time.Now().Add(time.Minute).UnixMilli()
	b.set(func() { b.ack = ackEcho(renewed) })
	ctx := testContext(t)

	if err := r.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Release(ctx, 90*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.ReleaseWithBackoff(ctx, "db timeout"); err != nil {
		t.Fatal(err)
	}
	if err := r.Reject(ctx, "malformed"); err != nil {
		t.Fatal(err)
	}
	until, err := r.Renew(ctx)
	if err != nil || until.UnixMilli() != renewed || !r.LockUntil.Equal(until) {
		t.Fatalf("Renew = %v, %v (LockUntil %v)", until, err, r.LockUntil)
	}
	if err := r.Release(ctx, -time.Second); err == nil {
		t.Fatal("negative release delay accepted")
	}

	type sent struct {
		typ    skiffpb.ShareAckType
		delay  int64
		reason string
	}
	want := []sent{
		{skiffpb.ShareAckType_SHARE_ACK_ACCEPT, 0, ""},
		{skiffpb.ShareAckType_SHARE_ACK_RELEASE, 0, ""},
		{skiffpb.ShareAckType_SHARE_ACK_RELEASE, 90 * 60 * 1000, ""},
		{skiffpb.ShareAckType_SHARE_ACK_RELEASE, -1, "db timeout"},
		{skiffpb.ShareAckType_SHARE_ACK_REJECT, 0, "malformed"},
		{skiffpb.ShareAckType_SHARE_ACK_RENEW, 0, ""},
	}
	reqs := requestsOf[*skiffpb.ShareAckRequest](b)
	if len(reqs) != len(want) {
		t.Fatalf("%d ack requests, want %d", len(reqs), len(want))
	}
	for i, req := range reqs {
		a := req.Acks[0]
		got := sent{a.Type, a.DelayMs, a.Error}
		if req.Group != "g" || req.MemberId != "m1" || len(req.Acks) != 1 || a.Topic != "t" || a.Offset != 5 || got != want[i] {
			t.Errorf("ack %d sent %v, want %+v", i, req, want[i])
		}
	}
}

func TestShareAcknowledgeReportsEachRecord(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	sc, _ := fetchOne(t, b, cl)
	b.set(func() {
		b.ack = func(req *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
			// Answered out of order, one reason per record.
			return &skiffpb.ShareAckResponse{Results: []*skiffpb.ShareAckResult{
				{Topic: "t", Offset: 4, ErrorReason: "UNKNOWN_RECORD", Error: "offset 4 beyond the records handed out"},
				{Topic: "t", Offset: 3, ErrorReason: "LOCK_EXPIRED", Error: "lock expired 2s ago"},
				{Topic: "t", Offset: 2, ErrorReason: "NOT_HELD", Error: "held by m2"},
				{Topic: "t", Offset: 1},
				{Topic: "t", Offset: 5, ErrorReason: "SOMETHING_NEW", Error: "a reason this client does not know"},
				{Topic: "t", Offset: 7, ErrorReason: "INVALID_ARGUMENT", Error: "unknown ack type 9"},
			}}, nil
		}
	})
	acks := []ShareAck{
		{Topic: "t", Offset: 1, Type: ShareAccept},
		{Topic: "t", Offset: 2, Type: ShareRelease, Delay: BackoffDelay, Reason: "x"},
		{Topic: "t", Offset: 3, Type: ShareReject, Reason: "y"},
		{Topic: "t", Offset: 4, Type: ShareRenew},
		{Topic: "t", Offset: 5, Type: ShareAccept},
		{Topic: "t", Offset: 6, Type: ShareAccept}, // no answer at all
		{Topic: "t", Offset: 7, Type: ShareAccept},
	}
	errs, err := sc.Acknowledge(testContext(t), acks)
	if err != nil || len(errs) != len(acks) {
		t.Fatalf("Acknowledge = %v, %v", errs, err)
	}
	checks := []func(error) bool{
		func(e error) bool { return e == nil },
		func(e error) bool {
			return errors.Is(e, ErrNotHeld) && strings.Contains(e.Error(), "t/0@2: held by m2")
		},
		func(e error) bool {
			return errors.Is(e, ErrLockExpired) && strings.Contains(e.Error(), "lock expired 2s ago")
		},
		func(e error) bool { return errors.Is(e, ErrUnknownRecord) },
		func(e error) bool { return errors.Is(e, ErrRejected) && strings.Contains(e.Error(), "SOMETHING_NEW") },
		func(e error) bool { return errors.Is(e, ErrRejected) && strings.Contains(e.Error(), "no result") },
		func(e error) bool {
			var ia *InvalidArgumentError
			return errors.As(e, &ia) && strings.Contains(ia.Reason, "unknown ack type 9")
		},
	}
	for i, check := range checks {
		if !check(errs[i]) {
			t.Errorf("ack %d (offset %d): %v", i, acks[i].Offset, errs[i])
		}
	}
	// Ack of one record surfaces its reason as the error.
	_, r := fetchOne(t, b, cl)
	b.set(func() {
		b.ack = func(req *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
			return &skiffpb.ShareAckResponse{Results: []*skiffpb.ShareAckResult{{Topic: "t", Offset: 5, ErrorReason: "LOCK_EXPIRED"}}}, nil
		}
	})
	if err := r.Ack(testContext(t)); !errors.Is(err, ErrLockExpired) {
		t.Fatalf("Ack after expiry = %v", err)
	}
	// A call that fails as a whole is err, not per-record errors.
	b.set(func() {
		b.ack = func(*skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
			return nil, statusWith(codes.NotFound, "no share group g", info("GROUP_NOT_FOUND"))
		}
	})
	if errs, err := sc.Acknowledge(testContext(t), acks[:1]); errs != nil || !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("Acknowledge to an unknown group = %v, %v", errs, err)
	}
}

// A request whose outcome was lost in a coordinator failover is repeated;
// a record the repeat finds no longer held may have been settled by the
// lost attempt, so its outcome is unknown rather than "not held".
func TestShareCallsRepeatALostOutcome(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	lost := statusWith(codes.Aborted, "leadership transfer in progress", info("WRITE_INDETERMINATE"))
	fetches := 0
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			if fetches++; fetches == 1 {
				return nil, lost
			}
			return &skiffpb.ShareFetchResponse{MemberId: "m1", Records: []*skiffpb.ShareRecord{{Topic: "t", Offset: 1}, {Topic: "t", Offset: 2}}}, nil
		}
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	recs, err := sc.Fetch(ctx)
	if err != nil || len(recs) != 2 || fetches != 2 {
		t.Fatalf("Fetch = %v, %v after %d attempts", recs, err, fetches)
	}

	acks := 0
	b.set(func() {
		b.ack = func(req *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
			if acks++; acks%2 == 1 {
				return nil, lost
			}
			resp := &skiffpb.ShareAckResponse{}
			for _, a := range req.Acks {
				r := &skiffpb.ShareAckResult{Topic: a.Topic, Offset: a.Offset}
				if a.Offset == 1 { // the lost attempt had applied it
					r.ErrorReason, r.Error = "NOT_HELD", "not held"
				}
				resp.Results = append(resp.Results, r)
			}
			return resp, nil
		}
	})
	if err := recs[0].Ack(ctx); !errors.Is(err, ErrIndeterminate) || errors.Is(err, ErrNotHeld) {
		t.Fatalf("Ack repeated and found not held = %v, want an unknown outcome", err)
	}
	if err := recs[1].Ack(ctx); err != nil {
		t.Fatalf("Ack repeated and applied = %v", err)
	}
	if _, err := recs[0].Renew(ctx); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Renew repeated and found not held = %v: a renewal changes nothing, so not held is certain", err)
	}
	if acks != 6 {
		t.Fatalf("%d ack requests, want 6 (each sent twice)", acks)
	}

	b.set(func() {
		b.resolve = func(*skiffpb.ResolveDeadLettersRequest) (*skiffpb.ResolveDeadLettersResponse, error) {
			return nil, lost
		}
	})
	if _, err := cl.ResolveDeadLetters(ctx, "g", "t", nil, true, false); !errors.Is(err, ErrIndeterminate) ||
		len(requestsOf[*skiffpb.ResolveDeadLettersRequest](b)) != 1 {
		t.Fatalf("a lost redrive = %v; want it reported, not repeated", err)
	}
}

func TestShareAckConversion(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        ShareAck
		wantType  skiffpb.ShareAckType
		wantDelay int64
		wantErr   bool
	}{
		{"accept ignores a delay", ShareAck{Type: ShareAccept, Delay: time.Second}, skiffpb.ShareAckType_SHARE_ACK_ACCEPT, 0, false},
		{"release now", ShareAck{Type: ShareRelease}, skiffpb.ShareAckType_SHARE_ACK_RELEASE, 0, false},
		{"release later", ShareAck{Type: ShareRelease, Delay: 1500 * time.Millisecond}, skiffpb.ShareAckType_SHARE_ACK_RELEASE, 1500, false},
		{"sub-millisecond delay stays a delay", ShareAck{Type: ShareRelease, Delay: time.Microsecond}, skiffpb.ShareAckType_SHARE_ACK_RELEASE, 1, false},
		{"backoff", ShareAck{Type: ShareRelease, Delay: BackoffDelay}, skiffpb.ShareAckType_SHARE_ACK_RELEASE, -1, false},
		{"reject", ShareAck{Type: ShareReject}, skiffpb.ShareAckType_SHARE_ACK_REJECT, 0, false},
		{"renew", ShareAck{Type: ShareRenew}, skiffpb.ShareAckType_SHARE_ACK_RENEW, 0, false},
		{"negative delay", ShareAck{Type: ShareRelease, Delay: -time.Second}, 0, 0, true},
		{"unknown type", ShareAck{Type: ShareAckType(9)}, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.pb()
			if tc.wantErr {
				var ia *InvalidArgumentError
				if !errors.As(err, &ia) {
					t.Fatalf("pb() = %v, %v; want an InvalidArgumentError", got, err)
				}
				return
			}
			if err != nil || got.Type != tc.wantType || got.DelayMs != tc.wantDelay {
				t.Fatalf("pb() = %v, %v", got, err)
			}
		})
	}
	if s := ShareReject.String(); s != "reject" {
		t.Fatalf("String() = %q", s)
	}
}

func TestFromStatusMapsShareReasons(t *testing.T) {
	for reason, want := range map[string]error{
		"NOT_HELD":       ErrNotHeld,
		"LOCK_EXPIRED":   ErrLockExpired,
		"UNKNOWN_RECORD": ErrUnknownRecord,
		"GROUP_PAUSED":   ErrGroupPaused,
	} {
		for _, code := range []codes.Code{codes.FailedPrecondition, codes.NotFound} {
			if err := fromStatus(statusWith(code, "why", info(reason))); !errors.Is(err, want) || err.Error() != "why" {
				t.Errorf("%s %s: %v", code, reason, err)
			}
		}
	}
}

func TestShareCloseLeavesOnceAndStopsTheConsumer(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	sc, r := fetchOne(t, b, cl)
	b.set(func() {
		b.leave = func(*skiffpb.ShareLeaveRequest) (*skiffpb.ShareLeaveResponse, error) {
			return &skiffpb.ShareLeaveResponse{Released: 1}, nil
		}
	})
	ctx := testContext(t)
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	leaves := requestsOf[*skiffpb.ShareLeaveRequest](b)
	if len(leaves) != 1 || leaves[0].MemberId != "m1" || leaves[0].Group != "g" {
		t.Fatalf("leave requests %v", leaves)
	}
	if _, err := sc.Fetch(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fetch after Close = %v", err)
	}
	if err := r.Ack(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close = %v", err)
	}

	// A consumer that never fetched has nothing to leave.
	sc2, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc2.Close(ctx); err != nil || len(requestsOf[*skiffpb.ShareLeaveRequest](b)) != 1 {
		t.Fatalf("Close before joining = %v", err)
	}
}

func TestShareAdminCallsRoundTrip(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	ctx := testContext(t)
	b.set(func() {
		b.describe = func(req *skiffpb.DescribeShareGroupRequest) (*skiffpb.DescribeShareGroupResponse, error) {
			if req.Group != "g" {
				return nil, statusWith(codes.NotFound, "no share group "+req.Group, info("GROUP_NOT_FOUND"))
			}
			return &skiffpb.DescribeShareGroupResponse{Group: "g", Coordinator: "n1", Paused: true, PausedReason: "flood",
				Config:  map[string]string{"max.deliveries": "2"},
				Members: []*skiffpb.ShareGroupMember{{MemberId: "m1", ClientId: "c", InFlight: 3, LastSeenMs: 1700000000000}},
				Partitions: []*skiffpb.SharePartitionState{{Topic: "t", Partition: 1, StartOffset: 4, HighWatermark: 10, InFlight: 3,
					Available: 3, Acked: 4, Redeliveries: 2, DeadLettered: 1, Lag: 6, OldestUnackedAgeSeconds: 1.5,
					QuarantinedKeys: [][]byte{[]byte("k1")}}},
			}, nil
		}
		b.alter = func(req *skiffpb.AlterShareGroupRequest) (*skiffpb.AlterShareGroupResponse, error) {
			cfg := map[string]string{"max.deliveries": "5", "resumed": "no"}
			for k, v := range req.Set {
				cfg[k] = v
			}
			if req.Resume {
				cfg["resumed"] = "yes"
			}
			return &skiffpb.AlterShareGroupResponse{Config: cfg}, nil
		}
		b.list = func(req *skiffpb.ListDeadLettersRequest) (*skiffpb.ListDeadLettersResponse, error) {
			return &skiffpb.ListDeadLettersResponse{DeadLetters: []*skiffpb.DeadLetter{
				{Topic: req.Topic, Partition: 1, Offset: 7, DlqTopic: "t.dlq.g", DlqOffset: 0, State: "pending", DeliveryCount: 2,
					LastError: "boom", FirstDeliveryMs: 1000, LastDeliveryMs: 2000, KeyNull: true, Value: []byte("poison"),
					Headers: []*skiffpb.Header{{Key: "skiff-dlq-source-topic", Value: []byte(req.Topic)}}},
			}}, nil
		}
		b.resolve = func(req *skiffpb.ResolveDeadLettersRequest) (*skiffpb.ResolveDeadLettersResponse, error) {
			return &skiffpb.ResolveDeadLettersResponse{Count: int32(len(req.DlqOffsets)) + 10*btoi(req.All)}, nil
		}
		b.inspect = func(req *skiffpb.ShareInspectRequest) (*skiffpb.ShareInspectResponse, error) {
			if req.Offset > 100 {
				return nil, statusWith(codes.NotFound, "offset beyond the log", info("UNKNOWN_RECORD"))
			}
			return &skiffpb.ShareInspectResponse{State: "acquired", DeliveryCount: 2, LockHolder: "m1", LockUntilMs: 5000,
				KeyQuarantined: true, Key: []byte("k"), LastError: "boom", StartOffset: 3, BlockedBy: ""}, nil
		}
	})

	d, err := cl.DescribeShareGroup(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	p := d.Partitions[0]
	if !d.Paused || d.PausedReason != "flood" || d.Config["max.deliveries"] != "2" || d.Members[0].InFlight != 3 ||
		d.Members[0].LastSeen.UnixMilli() != 1700000000000 || p.Lag != 6 || p.OldestUnackedAgeSeconds != 1.5 ||
		string(p.QuarantinedKeys[0]) != "k1" || d.TotalLag() != 6 {
		t.Fatalf("describe %+v", d)
	}
	if _, err := cl.DescribeShareGroup(ctx, "nope"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("describe unknown group: %v", err)
	}
	if _, err := cl.DescribeShareGroup(ctx, ""); err == nil {
		t.Fatal("describe without a group name accepted")
	}

	cfg, err := cl.AlterShareGroup(ctx, "g", map[string]string{"max.deliveries": "2"}, true)
	if err != nil || cfg["max.deliveries"] != "2" || cfg["resumed"] != "yes" {
		t.Fatalf("alter = %v, %v", cfg, err)
	}

	dls, err := cl.ListDeadLetters(ctx, "g", "t")
	if err != nil || len(dls) != 1 {
		t.Fatalf("list = %v, %v", dls, err)
	}
	dl := dls[0]
	if dl.Topic != "t" || dl.Offset != 7 || dl.DLQTopic != "t.dlq.g" || dl.Key != nil || string(dl.Value) != "poison" ||
		dl.LastError != "boom" || dl.LastDelivery.UnixMilli() != 2000 || dl.Headers[0].Key != "skiff-dlq-source-topic" {
		t.Fatalf("dead letter %+v", dl)
	}

	if n, err := cl.ResolveDeadLetters(ctx, "g", "t", []int64{0, 3}, false, true); err != nil || n != 2 {
		t.Fatalf("discard = %d, %v", n, err)
	}
	if n, err := cl.ResolveDeadLetters(ctx, "g", "t", nil, true, false); err != nil || n != 10 {
		t.Fatalf("redrive all = %d, %v", n, err)
	}
	resolves := requestsOf[*skiffpb.ResolveDeadLettersRequest](b)
	if resolves[0].Action != skiffpb.DeadLetterAction_DEAD_LETTER_DISCARD || resolves[1].Action != skiffpb.DeadLetterAction_DEAD_LETTER_REDRIVE ||
		!resolves[1].All || !slices.Equal(resolves[0].DlqOffsets, []int64{0, 3}) {
		t.Fatalf("resolve requests %v", resolves)
	}
	for _, bad := range []struct {
		topic string
		offs  []int64
		all   bool
	}{{"t", nil, false}, {"t", []int64{1}, true}, {"", nil, true}} {
		if _, err := cl.ResolveDeadLetters(ctx, "g", bad.topic, bad.offs, bad.all, false); err == nil {
			t.Errorf("resolve %+v accepted", bad)
		}
	}
	if len(requestsOf[*skiffpb.ResolveDeadLettersRequest](b)) != 2 {
		t.Fatal("an invalid resolve reached the broker")
	}

	st, err := cl.InspectShareRecord(ctx, "g", "t", 1, 7)
	if err != nil || st.State != "acquired" || st.LockHolder != "m1" || st.LockUntil.UnixMilli() != 5000 || !st.VisibleAt.IsZero() ||
		!st.KeyQuarantined || string(st.Key) != "k" || st.StartOffset != 3 {
		t.Fatalf("inspect = %+v, %v", st, err)
	}
	if _, err := cl.InspectShareRecord(ctx, "g", "t", 1, 1000); !errors.Is(err, ErrUnknownRecord) {
		t.Fatalf("inspect beyond the log: %v", err)
	}
}

func btoi(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Workers ack from several goroutines while another fetches: the
// consumer's state is guarded (run with -race).
func TestShareConsumerIsSafeForConcurrentAcks(t *testing.T) {
	b, cl := startFakeShareBroker(t)
	var next int64
	b.set(func() {
		b.fetch = func(*skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
			resp := &skiffpb.ShareFetchResponse{MemberId: "m1"}
			for range 10 {
				resp.Records = append(resp.Records, &skiffpb.ShareRecord{Topic: "t", Offset: next})
				next++
			}
			return resp, nil
		}
		b.ack = ackEcho(0)
	})
	sc, err := cl.NewShareConsumer(ShareConsumerConfig{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t)
	work := make(chan *ShareRecord)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				if err := r.Ack(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	for range 5 {
		recs, err := sc.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			work <- r
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(requestsOf[*skiffpb.ShareAckRequest](b)); n != 50 {
		t.Fatalf("%d acks, want 50", n)
	}
}
