package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/client"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// deliveries records which member saw which record.
type deliveries struct {
	mu   sync.Mutex
	seen map[string][]string // "topic/partition/offset" -> members, in delivery order
	n    int
}

func newDeliveries() *deliveries { return &deliveries{seen: map[string][]string{}} }

func (d *deliveries) add(member string, recs []*client.Record) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range recs {
		k := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
		d.seen[k] = append(d.seen[k], member)
		d.n++
	}
}

func (d *deliveries) distinct() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

// waitDistinct waits until want distinct records were delivered.
func (d *deliveries) waitDistinct(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d.distinct() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records delivered after %v", d.distinct(), want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// member runs a GroupConsumer's poll loop in a goroutine.
type member struct {
	name   string
	gc     *client.GroupConsumer
	cancel context.CancelFunc
	done   chan struct{}
}

func startMember(t *testing.T, cl *client.Client, name string, cfg client.GroupConsumerConfig, d *deliveries) *member {
	t.Helper()
	gc, err := cl.NewGroupConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{name: name, gc: gc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			recs, err := gc.Poll(ctx)
			d.add(name, recs)
			if err != nil && ctx.Err() == nil {
				t.Logf("member %s: poll: %v", name, err)
				time.Sleep(50 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { m.close() })
	return m
}

// close stops polling and leaves the group cleanly.
func (m *member) close() {
	m.cancel()
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.gc.Close(ctx)
}

// produceN writes n keyed records to topic and waits for every ack.
func produceN(t *testing.T, cl *client.Client, topic string, from, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	res := newProduced()
	for i := from; i < from+n; i++ {
		p.Produce(ctx, keyedRecord(topic, i, 50), res.callback())
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(res.errs) > 0 {
		t.Fatalf("produce: %v", res.errs[0])
	}
}

// waitStable waits until the group is Stable with members members and
// returns its description.
func waitStable(t *testing.T, cl *client.Client, group string, members int) client.GroupDescription {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		d, err := cl.DescribeGroup(ctx, group)
		if err == nil && d.State == "Stable" && len(d.Members) == members {
			return d
		}
		if ctx.Err() != nil {
			t.Fatalf("group %s not stable with %d members: %+v (%v)", group, members, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assignedCounts(d client.GroupDescription) []int {
	var out []int
	for _, m := range d.Members {
		out = append(out, len(m.Assigned))
	}
	slices.Sort(out)
	return out
}

func TestGroupSplitsPartitionsAndDeliversEachRecordOnce(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-split", 6, 3)
	const n = 3000
	produceN(t, cl, "group-split", 0, n)

	d := newDeliveries()
	cfg := client.GroupConsumerConfig{Group: "split", Topics: []string{"group-split"}, AutoOffsetReset: "earliest"}
	for i := range 3 {
		startMember(t, cl, fmt.Sprintf("m%d", i), cfg, d)
	}
	desc := waitStable(t, cl, "split", 3)
	if got := assignedCounts(desc); !slices.Equal(got, []int{2, 2, 2}) {
		t.Fatalf("assignment not balanced: %v", got)
	}
	d.waitDistinct(t, n, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // let any duplicate arrive
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, who := range d.seen {
		if len(who) != 1 {
			t.Fatalf("record %s delivered %d times (to %v) with no failure", k, len(who), who)
		}
	}
	if d.n != n {
		t.Fatalf("%d deliveries of %d records", d.n, n)
	}
}

func TestGroupFanOutToTwoGroups(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-fanout", 3, 3)
	const n = 600
	produceN(t, cl, "group-fanout", 0, n)
	a, b := newDeliveries(), newDeliveries()
	startMember(t, cl, "a", client.GroupConsumerConfig{Group: "fan-a", Topics: []string{"group-fanout"}, AutoOffsetReset: "earliest"}, a)
	startMember(t, cl, "b", client.GroupConsumerConfig{Group: "fan-b", Topics: []string{"group-fanout"}, AutoOffsetReset: "earliest"}, b)
	a.waitDistinct(t, n, 30*time.Second)
	b.waitDistinct(t, n, 30*time.Second)
}

// TestGroupMemberAddedMovesFewPartitions checks stickiness and the
// handover rule: while a third member joins, the coordinator never shows a
// partition owned by two members.
func TestGroupMemberAddedMovesFewPartitions(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-sticky", 6, 3)
	d := newDeliveries()
	cfg := client.GroupConsumerConfig{Group: "sticky", Topics: []string{"group-sticky"}}
	startMember(t, cl, "m0", cfg, d)
	startMember(t, cl, "m1", cfg, d)
	before := waitStable(t, cl, "sticky", 2)
	owner := map[client.TopicPartition]string{}
	for _, m := range before.Members {
		for _, tp := range m.Assigned {
			owner[tp] = m.MemberID
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	watchErr := make(chan error, 1)
	go func() { watchErr <- watchSingleOwners(ctx, cl, "sticky") }()
	startMember(t, cl, "m2", cfg, d)
	after := waitStable(t, cl, "sticky", 3)
	time.Sleep(200 * time.Millisecond)
	cancel()
	if err := <-watchErr; err != nil {
		t.Fatal(err)
	}
	if got := assignedCounts(after); !slices.Equal(got, []int{2, 2, 2}) {
		t.Fatalf("assignment after join: %v", got)
	}
	moved := 0
	for _, m := range after.Members {
		for _, tp := range m.Assigned {
			if prev, ok := owner[tp]; ok && prev != m.MemberID {
				moved++
			}
		}
	}
	if moved != 2 {
		t.Fatalf("%d partitions moved to make room for one member of three; want 2 (sticky)", moved)
	}
}

// watchSingleOwners polls the coordinator's view until ctx ends and fails
// if a partition is ever assigned to two members at once.
func watchSingleOwners(ctx context.Context, cl *client.Client, group string) error {
	for ctx.Err() == nil {
		d, err := cl.DescribeGroup(ctx, group)
		if err == nil {
			seen := map[client.TopicPartition]string{}
			for _, m := range d.Members {
				for _, tp := range m.Assigned {
					if other, dup := seen[tp]; dup {
						return fmt.Errorf("%s owned by %s and %s at once", tp, other, m.MemberID)
					}
					seen[tp] = m.MemberID
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// TestGroupMemberCrashHandsPartitionsOverAtLeastOnce kills a member's
// connection without a leave: after the session timeout its partitions go
// to the survivor, which resumes from the committed offsets.
func TestGroupMemberCrashHandsPartitionsOverAtLeastOnce(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-crash", 4, 3)
	const n = 2000
	produceN(t, cl, "group-crash", 0, n/2)
	d := newDeliveries()
	cfg := client.GroupConsumerConfig{Group: "crash", Topics: []string{"group-crash"}, AutoOffsetReset: "earliest",
		AutoCommitInterval: 100 * time.Millisecond}
	survivor := startMember(t, cl, "survivor", cfg, d)
	doomedClient := newClient(t, c)
	doomed := startMember(t, doomedClient, "doomed", cfg, d)
	waitStable(t, cl, "crash", 2)
	d.waitDistinct(t, n/2, 30*time.Second)
	time.Sleep(300 * time.Millisecond) // an auto-commit of what was read

	doomed.cancel()
	<-doomed.done
	doomedClient.Close() // no leave: the coordinator must notice by itself
	crashed := time.Now()
	produceN(t, cl, "group-crash", n/2, n/2)
	desc := waitStable(t, cl, "crash", 1)
	t.Logf("partitions moved %v after the crash", time.Since(crashed).Round(time.Millisecond))
	if len(desc.Members[0].Assigned) != 4 || desc.Members[0].MemberID != survivor.gc.MemberID() {
		t.Fatalf("survivor owns %v", desc.Members[0].Assigned)
	}
	d.waitDistinct(t, n, 30*time.Second)
}

func TestGroupResetOffsetsReplays(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-replay", 2, 3)
	produceN(t, cl, "group-replay", 0, 100)
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	produceN(t, cl, "group-replay", 100, 100)

	cfg := client.GroupConsumerConfig{Group: "replay", Topics: []string{"group-replay"}, AutoOffsetReset: "earliest"}
	first := newDeliveries()
	m := startMember(t, cl, "m", cfg, first)
	first.waitDistinct(t, 200, 30*time.Second)
	m.close() // commits on close

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs, err := cl.FetchGroupOffsets(ctx, "replay")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range offs {
		total += o.Offset
	}
	if total != 200 {
		t.Fatalf("committed offsets sum to %d after reading 200 records: %+v", total, offs)
	}

	// To a time: only the second hundred again.
	if _, err := cl.ResetGroupOffsets(ctx, "replay", "group-replay", client.ResetSpec{To: client.AtTime(mid)}); err != nil {
		t.Fatal(err)
	}
	second := newDeliveries()
	m = startMember(t, cl, "m", cfg, second)
	second.waitDistinct(t, 100, 30*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := second.distinct(); got != 100 {
		t.Fatalf("replay from %v delivered %d records, want 100", mid, got)
	}
	m.close()

	// To the earliest: everything again.
	if _, err := cl.ResetGroupOffsets(ctx, "replay", "group-replay", client.ResetSpec{To: client.Earliest()}); err != nil {
		t.Fatal(err)
	}
	third := newDeliveries()
	startMember(t, cl, "m", cfg, third)
	third.waitDistinct(t, 200, 30*time.Second)
}

func TestGroupPatternSubscriptionPicksUpNewTopics(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "orders.eu", 1, 3)
	createTopic(t, cl, "invoices.eu", 1, 3)
	d := newDeliveries()
	startMember(t, cl, "m", client.GroupConsumerConfig{Group: "patterns", Pattern: "orders.*", AutoOffsetReset: "earliest"}, d)
	produceN(t, cl, "orders.eu", 0, 10)
	produceN(t, cl, "invoices.eu", 0, 10)
	d.waitDistinct(t, 10, 30*time.Second)
	createTopic(t, cl, "orders.us", 2, 3)
	produceN(t, cl, "orders.us", 0, 10)
	d.waitDistinct(t, 20, 30*time.Second)
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.seen {
		if k[:7] != "orders." {
			t.Fatalf("pattern orders.* delivered %s", k)
		}
	}
}

// TestGroupRefusesBadRequests checks the status codes of a fenced epoch,
// a commit of an unowned partition and a reset of an active group, and
// that none of them changes the committed offsets.
func TestGroupRefusesBadRequests(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-bad", 2, 3)
	produceN(t, cl, "group-bad", 0, 20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	d := newDeliveries()
	m := startMember(t, cl, "m", client.GroupConsumerConfig{Group: "bad", Topics: []string{"group-bad"}, AutoOffsetReset: "earliest", DisableAutoCommit: true}, d)
	d.waitDistinct(t, 20, 30*time.Second)
	desc := waitStable(t, cl, "bad", 1)
	if err := m.gc.CommitOffsets(ctx, map[client.TopicPartition]int64{{Topic: "group-bad", Partition: 0}: 3, {Topic: "group-bad", Partition: 1}: 4}); err != nil {
		t.Fatal(err)
	}
	want, err := cl.FetchGroupOffsets(ctx, "bad")
	if err != nil || len(want) != 2 {
		t.Fatalf("committed %v, %v", want, err)
	}

	coord := c.node(desc.Coordinator)
	if coord == nil {
		t.Fatalf("coordinator %q is not a test node", desc.Coordinator)
	}
	conn, err := grpc.NewClient(coord.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	groups := skiffpb.NewGroupsClient(conn)
	member := desc.Members[0]
	commit := func(epoch int32, topic string, p int32) error {
		_, err := groups.CommitOffsets(ctx, &skiffpb.CommitOffsetsRequest{Group: "bad", MemberId: member.MemberID, MemberEpoch: epoch,
			Offsets: []*skiffpb.OffsetCommit{{Topic: topic, Partition: p, Offset: 99}}})
		return err
	}
	tests := []struct {
		name   string
		err    func() error
		reason string
	}{
		{"fenced epoch", func() error { return commit(member.Epoch+7, "group-bad", 0) }, "FENCED_MEMBER_EPOCH"},
		{"stale epoch", func() error { return commit(member.Epoch-100, "group-bad", 0) }, "FENCED_MEMBER_EPOCH"},
		{"unassigned partition", func() error { return commit(member.Epoch, "group-split-other", 0) }, "NOT_ASSIGNED"},
		{"unknown member", func() error {
			_, err := groups.CommitOffsets(ctx, &skiffpb.CommitOffsetsRequest{Group: "bad", MemberId: "nobody", MemberEpoch: 1,
				Offsets: []*skiffpb.OffsetCommit{{Topic: "group-bad", Partition: 0, Offset: 99}}})
			return err
		}, "UNKNOWN_MEMBER"},
		{"reset while active", func() error {
			_, err := groups.ResetOffsets(ctx, &skiffpb.ResetOffsetsRequest{Group: "bad", Offsets: []*skiffpb.OffsetCommit{{Topic: "group-bad", Partition: 0, Offset: 0}}})
			return err
		}, "GROUP_NOT_EMPTY"},
		{"delete while active", func() error {
			_, err := groups.DeleteGroup(ctx, &skiffpb.DeleteGroupRequest{Group: "bad"})
			return err
		}, "GROUP_NOT_EMPTY"},
		{"negative offset", func() error {
			_, err := groups.CommitOffsets(ctx, &skiffpb.CommitOffsetsRequest{Group: "bad", MemberId: member.MemberID, MemberEpoch: member.Epoch,
				Offsets: []*skiffpb.OffsetCommit{{Topic: "group-bad", Partition: 0, Offset: -5}}})
			return err
		}, "INVALID_ARGUMENT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := reasonOf(tc.err()); got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
		})
	}
	if _, err := cl.ResetGroupOffsets(ctx, "bad", "group-bad", client.ResetSpec{To: client.Earliest()}); !errors.Is(err, client.ErrGroupNotEmpty) {
		t.Fatalf("client reset of an active group: %v", err)
	}
	got, err := cl.FetchGroupOffsets(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	for tp, o := range want {
		if got[tp].Offset != o.Offset {
			t.Fatalf("%s committed %d after refused requests, was %d", tp, got[tp].Offset, o.Offset)
		}
	}
	if _, err := cl.DescribeGroup(ctx, "no-such-group"); !errors.Is(err, client.ErrGroupNotFound) {
		t.Fatalf("describe unknown group: %v", err)
	}
}

// reasonOf returns the ErrorInfo reason of a gRPC error ("" if none).
func reasonOf(err error) string {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// TestGroupCoordinatorFailoverKeepsOffsetsAndMembers kills the leader of
// the group's offsets partition: the committed offsets are intact on the
// new coordinator and the members carry on.
func TestGroupCoordinatorFailoverKeepsOffsetsAndMembers(t *testing.T) {
	c, err := startCluster(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	cl := newClient(t, c)
	createTopic(t, cl, "coord-failover", 4, 3)
	const n = 1000
	produceN(t, cl, "coord-failover", 0, n)
	d := newDeliveries()
	cfg := client.GroupConsumerConfig{Group: "failover", Topics: []string{"coord-failover"}, AutoOffsetReset: "earliest",
		AutoCommitInterval: 100 * time.Millisecond}
	a := startMember(t, cl, "a", cfg, d)
	b := startMember(t, cl, "b", cfg, d)
	before := waitStable(t, cl, "failover", 2)
	d.waitDistinct(t, n, 30*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Wait for the auto-commit of everything read.
	var committed map[client.TopicPartition]client.CommittedOffset
	for {
		committed, err = cl.FetchGroupOffsets(ctx, "failover")
		var sum int64
		for _, o := range committed {
			sum += o.Offset
		}
		if err == nil && sum == n {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("committed %v (%v), want offsets summing to %d", committed, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := c.node(before.Coordinator)
	if victim == nil {
		t.Fatalf("coordinator %q is not a test node", before.Coordinator)
	}
	t.Logf("killing coordinator %s", victim.id)
	victim.kill()

	after, err := cl.FetchGroupOffsets(ctx, "failover")
	if err != nil {
		t.Fatal(err)
	}
	for tp, o := range committed {
		if after[tp].Offset != o.Offset {
			t.Fatalf("%s: committed %d before the failover, %d after", tp, o.Offset, after[tp].Offset)
		}
	}
	produceN(t, cl, "coord-failover", n, n)
	d.waitDistinct(t, 2*n, 60*time.Second)
	desc := waitStable(t, cl, "failover", 2)
	if desc.Coordinator == victim.id {
		t.Fatalf("coordinator is still the killed node")
	}
	ids := []string{a.gc.MemberID(), b.gc.MemberID()}
	for _, m := range desc.Members {
		if !slices.Contains(ids, m.MemberID) {
			t.Fatalf("member %s after failover is not one of the original members %v", m.MemberID, ids)
		}
	}
}

// TestGroupMetricsShowMembersAndLag scrapes the coordinator's /metrics.
func TestGroupMetricsShowMembersAndLag(t *testing.T) {
	c := sharedCluster(t)
	cl := newClient(t, c)
	createTopic(t, cl, "group-metrics", 1, 3)
	produceN(t, cl, "group-metrics", 0, 10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.ResetGroupOffsets(ctx, "metered", "group-metrics", client.ResetSpec{To: client.At(4)}); err != nil {
		t.Fatal(err)
	}
	d := newDeliveries()
	startMember(t, cl, "m", client.GroupConsumerConfig{Group: "metered", Topics: []string{"group-metrics"}, DisableAutoCommit: true}, d)
	desc := waitStable(t, cl, "metered", 1)
	coord := c.node(desc.Coordinator)
	wants := []string{
		`skiff_group_members{group="metered"} 1`,
		`skiff_group_committed_offset{group="metered",partition="0",topic="group-metrics"} 4`,
		`skiff_group_lag{group="metered",partition="0",topic="group-metrics"} 6`,
		`skiff_group_commit_seconds_count`,
	}
	for {
		body := scrape(t, "http://"+coord.node.HTTPAddr()+"/metrics")
		missing := ""
		for _, w := range wants {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("/metrics of coordinator %s lacks %s", coord.id, missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkGroupCommit measures a synchronous offset commit, acknowledged
// once a majority of the offsets partition's replicas fsynced it.
func BenchmarkGroupCommit(b *testing.B) {
	c := sharedCluster(b)
	cl := newClient(b, c)
	createTopic(b, cl, "bench-commit", 1, 3)
	ctx := context.Background()
	gc, err := cl.NewGroupConsumer(client.GroupConsumerConfig{Group: "bench-commit", Topics: []string{"bench-commit"}, DisableAutoCommit: true})
	if err != nil {
		b.Fatal(err)
	}
	defer gc.Close(ctx)
	for len(gc.Assignment()) == 0 {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		gc.Poll(pctx)
		cancel()
	}
	tp := client.TopicPartition{Topic: "bench-commit", Partition: 0}
	b.ResetTimer()
	for i := range b.N {
		if err := gc.CommitOffsets(ctx, map[client.TopicPartition]int64{tp: int64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkShareGroupFetchAck measures share-group throughput: 3 members
// fetching and acknowledging (in batches) keyed records of 100 keys.
func BenchmarkShareGroupFetchAck(b *testing.B) {
	c := sharedCluster(b)
	cl := newClient(b, c)
	topic := fmt.Sprintf("bench-share-%d", time.Now().UnixNano())
	createTopic(b, cl, topic, 3, 3)
	ctx := context.Background()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		p.Produce(ctx, keyedRecord(topic, i, 100), nil)
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: topic, Topics: []string{topic}, MaxRecords: 200, MaxWait: 100 * time.Millisecond})
			if err != nil {
				b.Error(err)
				return
			}
			defer sc.Close(ctx)
			for acked.Load() < int64(b.N) {
				fctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
				recs, _ := sc.Fetch(fctx)
				cancel()
				if len(recs) == 0 {
					continue
				}
				acks := make([]client.ShareAck, len(recs))
				for i, r := range recs {
					acks[i] = client.ShareAck{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Type: client.ShareAccept}
				}
				errs, err := sc.Acknowledge(ctx, acks)
				if err != nil {
					continue
				}
				for _, e := range errs {
					if e == nil {
						acked.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkShareGroupFetchBatchedAck is BenchmarkShareGroupFetchAck with
// the acks batched onto the next fetch (AckAsync), 1000 keys over 6
// partitions: the shape of `skiff bench share`.
func BenchmarkShareGroupFetchBatchedAck(b *testing.B) {
	c := sharedCluster(b)
	cl := newClient(b, c)
	topic := fmt.Sprintf("bench-share-batched-%d", time.Now().UnixNano())
	createTopic(b, cl, topic, 6, 3)
	ctx := context.Background()
	p, err := cl.NewProducer(client.ProducerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		p.Produce(ctx, keyedRecord(topic, i, 1000), nil)
	}
	if err := p.Close(ctx); err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	onResult := func(_ client.ShareAck, err error) {
		if err == nil && acked.Add(1) == int64(b.N) {
			once.Do(func() { close(done) })
		}
	}
	b.ResetTimer()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, err := cl.NewShareConsumer(client.ShareConsumerConfig{Group: topic, Topics: []string{topic}, MaxRecords: 1000,
				MaxWait: 100 * time.Millisecond, OnAckResult: onResult})
			if err != nil {
				b.Error(err)
				return
			}
			defer sc.Close(ctx)
			for rctx.Err() == nil {
				recs, _ := sc.Fetch(rctx)
				for _, r := range recs {
					r.AckAsync()
				}
			}
		}()
	}
	<-done
	cancel()
	wg.Wait()
}
