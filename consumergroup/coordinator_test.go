package consumergroup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skiff-mq/skiff/record"
)

// memLog is an in-memory offsets partition: batches at offsets, a
// leadership switch and segment-like prefix deletion.
type memLog struct {
	mu      sync.Mutex
	batches [][]byte // each stamped with its base offset
	start   int64    // log start offset
	next    int64
	leader  bool
	term    uint64
	changed chan struct{}
	appends int
}

func newMemLog(leader bool) *memLog {
	return &memLog{leader: leader, term: 1, changed: make(chan struct{})}
}

func (l *memLog) Append(ctx context.Context, batch []byte) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leader {
		return 0, ErrNotCoordinator
	}
	h, err := record.ParseHeader(batch)
	if err != nil {
		return 0, err
	}
	own := slices.Clone(batch)
	record.SetBaseOffset(own, l.next)
	base := l.next
	l.batches = append(l.batches, own)
	l.next += int64(h.LastOffsetDelta) + 1
	l.appends++
	close(l.changed)
	l.changed = make(chan struct{})
	return base, nil
}

// AppendAsync appends at once (in call order, as Append does); a refused
// append never got in.
func (l *memLog) AppendAsync(ctx context.Context, batch []byte) (func(context.Context) (int64, error), error) {
	base, err := l.Append(ctx, batch)
	if err != nil {
		return nil, err
	}
	return func(context.Context) (int64, error) { return base, nil }, nil
}

func (l *memLog) Read(ctx context.Context, offset int64, maxWait time.Duration) (ReadResult, error) {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	for {
		l.mu.Lock()
		res := ReadResult{Start: l.start, End: l.next}
		if offset < l.start {
			l.mu.Unlock()
			return res, nil
		}
		for _, b := range l.batches {
			h, _ := record.ParseHeader(b)
			if h.BaseOffset >= offset {
				res.Batches = append(res.Batches, b...)
			}
		}
		ch := l.changed
		l.mu.Unlock()
		if len(res.Batches) > 0 || maxWait == 0 {
			return res, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return res, nil
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

func (l *memLog) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

func (l *memLog) LeaderTerm() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term, l.leader
}

// DeleteBefore drops whole batches below offset, as segment deletion
// would with one batch per segment.
func (l *memLog) DeleteBefore(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.batches) > 1 {
		h, _ := record.ParseHeader(l.batches[1])
		if h.BaseOffset > offset {
			break
		}
		l.batches = l.batches[1:]
		l.start = h.BaseOffset
	}
	return nil
}

func (l *memLog) setLeader(leader bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader = leader
	l.term++
}

// fakeHost serves one offsets partition and in-memory data partitions.
type fakeHost struct {
	mu     sync.Mutex
	log    Log
	topics map[string]int32
	data   map[TopicPartition]*memLog
	// progress is the newest share progress reported per group and
	// share-partition.
	progress map[string]ShareProgress
}

func (h *fakeHost) ReportShareProgress(reports []ShareProgress) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.progress == nil {
		h.progress = map[string]ShareProgress{}
	}
	for _, r := range reports {
		h.progress[r.Group+"@"+tpKey(r.Topic, r.Partition)] = r
	}
}

func (h *fakeHost) shareProgress(group, topic string, p int32) (ShareProgress, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.progress[group+"@"+tpKey(topic, p)]
	return r, ok
}

func (h *fakeHost) dataLog(topic string, p int32) *memLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.data == nil {
		h.data = map[TopicPartition]*memLog{}
	}
	tp := TopicPartition{topic, p}
	if h.data[tp] == nil {
		h.data[tp] = newMemLog(true)
	}
	return h.data[tp]
}

func (h *fakeHost) ReadPartition(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (ReadResult, error) {
	return h.dataLog(topic, p).Read(ctx, offset, 0)
}

func (h *fakeHost) ProducePartition(ctx context.Context, topic string, p int32, batch []byte) (int64, error) {
	return h.dataLog(topic, p).Append(ctx, batch)
}

func (h *fakeHost) EnsureTopic(ctx context.Context, name string, partitions int32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.topics[name]; !ok {
		h.topics[name] = partitions
	}
	return nil
}

func (h *fakeHost) OffsetsLogs() (map[int32]Log, int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.log == nil {
		return nil, 1
	}
	return map[int32]Log{0: h.log}, 1
}

func (h *fakeHost) Topics() map[string]int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int32{}
	for k, v := range h.topics {
		out[k] = v
	}
	return out
}

func (h *fakeHost) HighWatermarks(context.Context, []TopicPartition) map[TopicPartition]int64 {
	return map[TopicPartition]int64{{"t", 0}: 100, {"t", 1}: 50}
}

// clock is a settable clock for session expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestCoordinator(t *testing.T, lg Log, topics map[string]int32, clk *clock) *Coordinator {
	t.Helper()
	c, _ := newTestCoordinatorHost(t, &fakeHost{log: lg, topics: topics}, clk)
	return c
}

func newTestCoordinatorHost(t *testing.T, host *fakeHost, clk *clock) (*Coordinator, *fakeHost) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TickInterval = 10 * time.Millisecond
	cfg.CheckpointBytes = 4 << 10
	if clk != nil {
		cfg.Now = clk.Now
	}
	c, err := New(cfg, host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, host
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// join joins a member and heartbeats until it owns its whole target.
func join(t *testing.T, c *Coordinator, group string, topics ...string) HeartbeatResponse {
	t.Helper()
	ctx := testCtx(t)
	resp, err := c.Heartbeat(ctx, HeartbeatRequest{Group: group, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestCommitsSurviveCheckpointsAndARestartFromTheTrimmedLog(t *testing.T) {
	lg := newMemLog(true)
	c := newTestCoordinator(t, lg, map[string]int32{"t": 2}, nil)
	ctx := testCtx(t)
	// Enough commits for several checkpoints (4 KiB each).
	for i := range 200 {
		g := fmt.Sprintf("g%d", i%5)
		err := c.CommitOffsets(ctx, CommitRequest{Group: g, Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", int32(i % 2)}, Offset: int64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteGroup(ctx, "g4"); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[TopicPartition]int64{}
	for _, g := range []string{"g0", "g1", "g2", "g3"} {
		got, err := c.FetchOffsets(ctx, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[g] = map[TopicPartition]int64{}
		for tp, cm := range got {
			want[g][tp] = cm.Offset
		}
	}
	// g0's commits are i = 0, 5, ..., 195, alternating partitions.
	if want["g0"][TopicPartition{"t", 0}] != 190 || want["g0"][TopicPartition{"t", 1}] != 195 {
		t.Fatalf("g0 offsets %v", want["g0"])
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		lg.mu.Lock()
		start := lg.start
		lg.mu.Unlock()
		if start > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint trimmed the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()

	// A new coordinator reading the trimmed log has the same offsets.
	c2 := newTestCoordinator(t, lg, map[string]int32{"t": 2}, nil)
	for g, offs := range want {
		got, err := c2.FetchOffsets(ctx, g, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(offs) {
			t.Fatalf("%s after restart: %v, want %v", g, got, offs)
		}
		for tp, o := range offs {
			if got[tp].Offset != o {
				t.Fatalf("%s %v after restart: %d, want %d", g, tp, got[tp].Offset, o)
			}
		}
	}
	if _, err := c2.DescribeGroup(ctx, "g4"); !errors.Is(err, ErrGroupNotFound) {
		t.Fatalf("deleted group after restart: %v", err)
	}
}

func TestMembershipFencingExpiryAndStaticRejoin(t *testing.T) {
	clk := &clock{now: time.Unix(1000, 0)}
	lg := newMemLog(true)
	c := newTestCoordinator(t, lg, map[string]int32{"t": 4}, clk)
	ctx := testCtx(t)

	a := join(t, c, "g", "t")
	if len(a.Assignment) != 4 {
		t.Fatalf("sole member got %v", a.Assignment)
	}
	// b joins: a must release two partitions before b gets them.
	b, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", InstanceID: "b-1", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Assignment) != 0 {
		t.Fatalf("b got %v while a still owns everything", b.Assignment)
	}
	a2, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, Owned: a.Assignment, AppliedSeq: a.AssignmentSeq})
	if err != nil {
		t.Fatal(err)
	}
	if len(a2.Assignment) != 2 || a2.MemberEpoch != a.MemberEpoch {
		t.Fatalf("a asked to keep %v at epoch %d (was %d)", a2.Assignment, a2.MemberEpoch, a.MemberEpoch)
	}
	// While a has not released, its old epoch still commits its partitions.
	if err := c.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: a.Assignment[3], Offset: 7}}}); err != nil {
		t.Fatalf("commit of a partition being revoked: %v", err)
	}
	a3, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, Owned: a2.Assignment, AppliedSeq: a2.AssignmentSeq})
	if err != nil {
		t.Fatal(err)
	}
	if a3.MemberEpoch <= a.MemberEpoch {
		t.Fatalf("a's epoch did not advance after releasing: %d", a3.MemberEpoch)
	}
	b2, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b2.Assignment) != 2 || slices.ContainsFunc(b2.Assignment, func(tp TopicPartition) bool { return slices.Contains(a3.Assignment, tp) }) {
		t.Fatalf("b got %v, a keeps %v", b2.Assignment, a3.Assignment)
	}
	// A zombie epoch is fenced.
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch - 1, Topics: []string{"t"}}); !errors.Is(err, ErrFencedMemberEpoch) {
		t.Fatalf("stale epoch heartbeat: %v", err)
	}

	// b restarts as the same static instance: same partitions, new id; the
	// old id is fenced.
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, InstanceID: "b-1", MemberEpoch: EpochStaticLeave}); err != nil {
		t.Fatal(err)
	}
	b3, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", InstanceID: "b-1", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if b3.MemberID == b.MemberID || !slices.Equal(b3.Assignment, b2.Assignment) {
		t.Fatalf("static rejoin: id %s (old %s), partitions %v (had %v)", b3.MemberID, b.MemberID, b3.Assignment, b2.Assignment)
	}
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b2.MemberEpoch, Topics: []string{"t"}}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("old static member id: %v", err)
	}

	// a stops heartbeating: after the session timeout b gets everything.
	clk.advance(DefaultConfig().SessionTimeout / 2)
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b3.MemberID, MemberEpoch: b3.MemberEpoch, Topics: []string{"t"}, Owned: b3.Assignment, AppliedSeq: b3.AssignmentSeq}); err != nil {
		t.Fatal(err)
	}
	clk.advance(DefaultConfig().SessionTimeout/2 + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := c.DescribeGroup(ctx, "g")
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Members) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a not expired: %+v", d.Members)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b4, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b3.MemberID, MemberEpoch: b3.MemberEpoch, Topics: []string{"t"}, Owned: b3.Assignment, AppliedSeq: b3.AssignmentSeq})
	if err != nil {
		t.Fatal(err)
	}
	if len(b4.Assignment) != 4 {
		t.Fatalf("after a expired, b owns %v", b4.Assignment)
	}
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a3.MemberEpoch, Topics: []string{"t"}}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("expired member heartbeat: %v", err)
	}
}

func TestNewCoordinatorAdoptsMembersOfTheOldOne(t *testing.T) {
	lg := newMemLog(true)
	c := newTestCoordinator(t, lg, map[string]int32{"t": 2}, nil)
	ctx := testCtx(t)
	a := join(t, c, "g", "t")
	if err := c.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 1}, Offset: 42}}}); err != nil {
		t.Fatal(err)
	}
	// Leadership moves (a new term): soft state is rebuilt from heartbeats.
	lg.setLeader(false)
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}}); !errors.Is(err, ErrNotCoordinator) {
		t.Fatalf("heartbeat to a follower: %v", err)
	}
	lg.setLeader(true)
	again, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, Owned: a.Assignment, AppliedSeq: a.AssignmentSeq})
	if err != nil {
		t.Fatalf("adoption: %v", err)
	}
	if again.MemberID != a.MemberID || !slices.Equal(again.Assignment, a.Assignment) {
		t.Fatalf("adopted member %s owns %v; was %s with %v", again.MemberID, again.Assignment, a.MemberID, a.Assignment)
	}
	if err := c.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: TopicPartition{"t", 0}, Offset: 9}}}); err != nil {
		t.Fatalf("commit with the pre-failover epoch: %v", err)
	}
	got, err := c.FetchOffsets(ctx, "g", nil)
	if err != nil || got[TopicPartition{"t", 1}].Offset != 42 || got[TopicPartition{"t", 0}].Offset != 9 {
		t.Fatalf("offsets after failover: %v %v", got, err)
	}
}

// TestStaleOwnedReportDoesNotReleaseUnappliedPartitions: a heartbeat whose
// owned list predates the answer that handed partitions out must not free
// them (the member may be taking them right now).
func TestStaleOwnedReportDoesNotReleaseUnappliedPartitions(t *testing.T) {
	c := newTestCoordinator(t, newMemLog(true), map[string]int32{"t": 4}, nil)
	ctx := testCtx(t)
	a := join(t, c, "g", "t")
	if len(a.Assignment) != 4 || a.AssignmentSeq == 0 {
		t.Fatalf("first answer %+v", a)
	}
	b, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	// a's report was taken before it applied its first answer.
	stale, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, AppliedSeq: 0})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b2.Assignment) != 0 {
		t.Fatalf("b got %v from a stale report of a (a keeps %v)", b2.Assignment, stale.Assignment)
	}
	// Once a reports, as of its applied answer, that it released them, b gets them.
	if _, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"},
		Owned: stale.Assignment, AppliedSeq: stale.AssignmentSeq}); err != nil {
		t.Fatal(err)
	}
	b3, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b2.MemberEpoch, Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(b3.Assignment) != 2 {
		t.Fatalf("b after a released: %v", b3.Assignment)
	}
}

// TestNewCoordinatorRestoresMembersFromTheLog: after a coordinator
// change the group is restored from its last snapshot: members keep their
// partitions and epochs and may commit before their first heartbeat, and
// nobody is handed a partition another member holds.
func TestNewCoordinatorRestoresMembersFromTheLog(t *testing.T) {
	lg := newMemLog(true)
	c := newTestCoordinator(t, lg, map[string]int32{"t": 4}, nil)
	ctx := testCtx(t)
	a := join(t, c, "g", "t")
	b, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	// Let a release two partitions and b take them.
	a2, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a.MemberEpoch, Topics: []string{"t"}, Owned: a.Assignment, AppliedSeq: a.AssignmentSeq})
	if err != nil {
		t.Fatal(err)
	}
	a3, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: a.MemberID, MemberEpoch: a2.MemberEpoch, Topics: []string{"t"}, Owned: a2.Assignment, AppliedSeq: a2.AssignmentSeq})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b.MemberEpoch, Topics: []string{"t"}})
	if err != nil || len(b2.Assignment) != 2 || len(a3.Assignment) != 2 {
		t.Fatalf("before the failover a %v, b %v (%v)", a3.Assignment, b2.Assignment, err)
	}

	lg.setLeader(false)
	lg.setLeader(true) // a new term: soft state is gone, the log is not
	if err := c.CommitOffsets(ctx, CommitRequest{Group: "g", MemberID: b.MemberID, MemberEpoch: b2.MemberEpoch,
		Offsets: []CommitOffset{{TopicPartition: b2.Assignment[0], Offset: 7}}}); err != nil {
		t.Fatalf("commit right after the failover, before any heartbeat: %v", err)
	}
	for _, m := range []HeartbeatResponse{a3, b2} {
		resp, err := c.Heartbeat(ctx, HeartbeatRequest{Group: "g", MemberID: m.MemberID, MemberEpoch: m.MemberEpoch, Topics: []string{"t"},
			Owned: m.Assignment, AppliedSeq: m.AssignmentSeq})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(resp.Assignment, m.Assignment) {
			t.Fatalf("%s after the failover owns %v, before %v", m.MemberID, resp.Assignment, m.Assignment)
		}
	}
	d, err := c.DescribeGroup(ctx, "g")
	if err != nil || len(d.Members) != 2 || d.State != StateStable {
		t.Fatalf("restored group %+v %v", d, err)
	}
}

// A listing says which offsets partitions it covers, so a cluster-wide
// listing taken while a partition changes leader can tell that its groups
// are missing rather than gone.
func TestListGroupsSaysWhichPartitionsItCovered(t *testing.T) {
	lg := newMemLog(true)
	c := newTestCoordinator(t, lg, map[string]int32{"t": 2}, nil)
	join(t, c, "billing", "t")

	got := c.ListGroups(testCtx(t))
	if len(got.Groups) != 1 || got.Groups[0].Group != "billing" || !slices.Equal(got.Coordinated, []int32{0}) || got.Partitions != 1 {
		t.Fatalf("while leading: %+v", got)
	}

	lg.setLeader(false)
	got = c.ListGroups(testCtx(t))
	if len(got.Groups) != 0 || len(got.Coordinated) != 0 || got.Partitions != 1 {
		t.Fatalf("while not leading: %+v", got)
	}
}
