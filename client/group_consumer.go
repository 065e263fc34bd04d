package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// GroupConsumerConfig configures a GroupConsumer. Zero fields take the
// defaults documented on them.
type GroupConsumerConfig struct {
	// Group is the consumer group to join. Required.
	Group string
	// Topics subscribes to topics by name; Pattern subscribes to every
	// topic matching a pattern, topics created later included: "orders.*"
	// (one word), "*.completed", "orders.#" (any number of words), "#"
	// (all), or "re:<RE2>" for a regular expression. Exactly one of them.
	Topics  []string
	Pattern string
	// InstanceID makes the member static: restarted with the same id
	// within the session timeout, it gets its partitions back without a
	// rebalance.
	InstanceID string
	// ClientID names the consumer in DescribeGroup. Default: host name.
	ClientID string
	// AutoOffsetReset is where a partition without a committed offset
	// starts: "latest" (default, like Kafka), "earliest", or "none" (Poll
	// returns ErrNoOffset).
	AutoOffsetReset string
	// DisableAutoCommit turns off committing the positions of polled
	// records every AutoCommitInterval, before partitions are released and
	// on Close; call Commit instead.
	DisableAutoCommit bool
	// AutoCommitInterval paces automatic commits. Default 5s.
	AutoCommitInterval time.Duration
	// RebalanceTimeout is how long the member may take to release a
	// partition (between Polls) before the coordinator removes it.
	// Default 60s.
	RebalanceTimeout time.Duration
	// OnAssigned runs inside Poll after partitions were added, before
	// their records are returned.
	OnAssigned func(ctx context.Context, partitions []TopicPartition)
	// OnRevoked runs inside Poll (and Close) before partitions are given
	// up; the positions of records returned so far are still committable
	// (auto-commit commits them right after it).
	OnRevoked func(ctx context.Context, partitions []TopicPartition)
	// OnLost runs when the member was fenced or timed out and its
	// partitions already belong to others: nothing can be committed for
	// them. Default: OnRevoked.
	OnLost func(ctx context.Context, partitions []TopicPartition)
	// Fetch tunes the underlying fetches.
	Fetch ConsumerConfig
}

func (c GroupConsumerConfig) withDefaults() GroupConsumerConfig {
	if c.AutoOffsetReset == "" {
		c.AutoOffsetReset = "latest"
	}
	if c.AutoCommitInterval <= 0 {
		c.AutoCommitInterval = 5 * time.Second
	}
	if c.RebalanceTimeout <= 0 {
		c.RebalanceTimeout = 60 * time.Second
	}
	if c.ClientID == "" {
		c.ClientID, _ = os.Hostname()
	}
	if c.OnLost == nil {
		c.OnLost = c.OnRevoked
	}
	return c
}

// Validate reports every invalid field.
func (c GroupConsumerConfig) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("group consumer config: Group is required"))
	}
	if (len(c.Topics) == 0) == (c.Pattern == "") {
		errs = append(errs, errors.New("group consumer config: set exactly one of Topics and Pattern"))
	}
	switch c.AutoOffsetReset {
	case "", "earliest", "latest", "none":
	default:
		errs = append(errs, fmt.Errorf("group consumer config: AutoOffsetReset %q: want earliest, latest or none", c.AutoOffsetReset))
	}
	if err := c.Fetch.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// GroupConsumer is a member of a consumer group: the group's coordinator
// gives it a share of the subscribed topics' partitions, and moves
// partitions between members as they come and go, handing a partition to
// its new owner only after the old one released it. Delivery is
// at-least-once: positions are committed after the records were returned
// by Poll (and the next Poll, a revocation or Close shows they were
// processed).
//
// Poll, Commit and Close are meant for one goroutine; the rebalance
// callbacks run inside Poll and Close on that goroutine.
type GroupConsumer struct {
	c   *Client
	cfg GroupConsumerConfig
	co  *Consumer

	// owned is what Poll has taken on (assigned to co); only the Poll
	// goroutine changes it, the heartbeat loop reads a copy.
	ownedMu sync.Mutex
	owned   map[TopicPartition]bool
	// appliedAssignment is the coordinator's number of the assignment
	// owned reflects; heartbeats report both together.
	appliedAssignment int64

	mu         sync.Mutex // guards the fields below
	memberID   string
	epoch      int32
	target     []TopicPartition // the coordinator's latest answer
	targetNum  int64            // the coordinator's number of target
	targetSeq  uint64           // bumped with each new target
	appliedSeq uint64
	lost       bool  // fenced: give everything up before applying target
	fatal      error // e.g. an invalid subscription
	consumed   map[TopicPartition]int64
	committed  map[TopicPartition]int64
	lastCommit time.Time

	changed chan struct{} // cap 1: a new target arrived
	wake    chan struct{} // cap 1: heartbeat now (a release to report)
	stop    chan struct{}
	done    chan struct{}
	closed  bool
}

// NewGroupConsumer joins cfg.Group. Records come from Poll once the
// coordinator has assigned partitions.
func (c *Client) NewGroupConsumer(cfg GroupConsumerConfig) (*GroupConsumer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	g := &GroupConsumer{
		c: c, cfg: cfg,
		co:        newConsumer(grpcTransport{c}, cfg.Fetch, c.cfg.RequestTimeout, c.log),
		owned:     map[TopicPartition]bool{},
		consumed:  map[TopicPartition]int64{},
		committed: map[TopicPartition]int64{},
		changed:   make(chan struct{}, 1),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	g.lastCommit = time.Now()
	go g.heartbeatLoop()
	return g, nil
}

// MemberID is the id the coordinator gave this member ("" before joining).
func (g *GroupConsumer) MemberID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.memberID
}

// Assignment returns the partitions this member reads now.
func (g *GroupConsumer) Assignment() []TopicPartition {
	g.ownedMu.Lock()
	defer g.ownedMu.Unlock()
	return slices.SortedFunc(maps.Keys(g.owned), compareTopicPartition)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// heartbeatLoop keeps the membership: it heartbeats every interval the
// coordinator asks for (and at once when Poll released partitions), and
// rejoins after being fenced.
func (g *GroupConsumer) heartbeatLoop() {
	defer close(g.done)
	interval := time.Second
	bo := newBackoff()
	for {
		resp, err := g.heartbeat(context.Background(), 0)
		switch {
		case err == nil:
			bo = newBackoff()
			if ms := resp.GetHeartbeatIntervalMs(); ms > 0 {
				interval = time.Duration(ms) * time.Millisecond
			}
		case errors.Is(err, ErrUnknownMember), errors.Is(err, ErrFencedMemberEpoch):
			g.c.log.Warn("group member fenced; rejoining", "group", g.cfg.Group, "err", err)
			g.mu.Lock()
			g.memberID, g.epoch, g.lost, g.target = "", 0, true, nil
			g.targetSeq++
			g.mu.Unlock()
			signal(g.changed)
			continue
		case errors.Is(err, ErrRejected), isInvalidArgument(err):
			g.mu.Lock()
			g.fatal = fmt.Errorf("group %s: %w", g.cfg.Group, err)
			g.mu.Unlock()
			signal(g.changed)
		default:
			g.c.log.Debug("group heartbeat failed", "group", g.cfg.Group, "err", err)
			interval = bo.delay()
		}
		t := time.NewTimer(interval)
		select {
		case <-g.stop:
			t.Stop()
			return
		case <-g.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func isInvalidArgument(err error) bool {
	var ia *InvalidArgumentError
	return errors.As(err, &ia)
}

// heartbeat sends one heartbeat; epoch overrides the member epoch when
// non-zero (leaving).
func (g *GroupConsumer) heartbeat(ctx context.Context, leaveEpoch int32) (*skiffpb.GroupHeartbeatResponse, error) {
	g.mu.Lock()
	req := &skiffpb.GroupHeartbeatRequest{Group: g.cfg.Group, MemberId: g.memberID, InstanceId: g.cfg.InstanceID,
		MemberEpoch: g.epoch, Topics: g.cfg.Topics, Pattern: g.cfg.Pattern,
		RebalanceTimeoutMs: int32(g.cfg.RebalanceTimeout / time.Millisecond), ClientId: g.cfg.ClientID}
	lost := g.lost
	g.mu.Unlock()
	if leaveEpoch != 0 {
		req.MemberEpoch = leaveEpoch
	}
	if lost {
		// Until Poll has given up the old partitions, joining again would
		// let them be assigned to us twice over.
		return nil, nil
	}
	// Owned also lists the partitions of the latest answer not taken yet:
	// they are ours as far as the coordinator knows, and a new coordinator
	// (after a failover) adopts exactly what we report.
	g.mu.Lock()
	pending := slices.Clone(g.target)
	g.mu.Unlock()
	g.ownedMu.Lock()
	owned := maps.Clone(g.owned)
	req.AppliedAssignmentSeq = g.appliedAssignment
	g.ownedMu.Unlock()
	for _, tp := range pending {
		owned[tp] = true
	}
	req.Owned = toPBPartitions(slices.SortedFunc(maps.Keys(owned), compareTopicPartition))
	var resp *skiffpb.GroupHeartbeatResponse
	err := g.c.groupCall(ctx, g.cfg.Group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewGroupsClient(cc).Heartbeat(ctx, req)
		return err
	})
	if err != nil || leaveEpoch != 0 {
		return resp, err
	}
	target := fromPBPartitions(resp.GetAssignment())
	g.mu.Lock()
	g.memberID, g.epoch = resp.GetMemberId(), resp.GetMemberEpoch()
	if !slices.Equal(target, g.target) || resp.GetAssignmentSeq() != g.targetNum {
		g.target, g.targetNum = target, resp.GetAssignmentSeq()
		g.targetSeq++
		signal(g.changed)
	}
	g.mu.Unlock()
	return resp, nil
}

// Poll returns the next records of the member's partitions, applying
// assignment changes first (running OnRevoked/OnAssigned). It blocks until
// there are records or ctx ends.
func (g *GroupConsumer) Poll(ctx context.Context) ([]*Record, error) {
	for {
		if err := g.reconcile(ctx); err != nil {
			return nil, err
		}
		g.maybeAutoCommit(ctx)
		if len(g.Assignment()) == 0 {
			select {
			case <-g.changed:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		pctx, cancel := context.WithCancel(ctx)
		if !g.cfg.DisableAutoCommit {
			// Wake up to auto-commit what earlier Polls returned even when
			// no new record arrives.
			pctx, cancel = context.WithTimeout(ctx, g.cfg.AutoCommitInterval)
		}
		stopWatch := make(chan struct{})
		go func() {
			select {
			case <-g.changed:
				signal(g.changed) // for reconcile's next look
				cancel()
			case <-stopWatch:
			}
		}()
		recs, err := g.co.Poll(pctx)
		woken := pctx.Err() != nil // an assignment change or the auto-commit timer
		close(stopWatch)
		cancel()
		if len(recs) > 0 {
			g.mu.Lock()
			for _, r := range recs {
				g.consumed[TopicPartition{r.Topic, r.Partition}] = r.Offset + 1
			}
			g.mu.Unlock()
			return recs, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var oor *OffsetOutOfRangeError
		if errors.As(err, &oor) && oor.Topic != "" {
			if rerr := g.resetOutOfRange(ctx, oor); rerr != nil {
				return nil, rerr
			}
			continue
		}
		if err != nil && !woken {
			return nil, err
		}
	}
}

// resetOutOfRange applies AutoOffsetReset to a partition whose position
// fell outside its log (retention deleted the committed offset, or the
// topic was recreated), as Kafka's auto.offset.reset does.
func (g *GroupConsumer) resetOutOfRange(ctx context.Context, oor *OffsetOutOfRangeError) error {
	from := Latest()
	switch {
	case g.cfg.AutoOffsetReset == "none":
		return fmt.Errorf("group %s: %w (%v)", g.cfg.Group, ErrNoOffset, oor)
	case oor.Offset < oor.Start && g.cfg.AutoOffsetReset == "earliest":
		from = Earliest()
	}
	g.c.log.Warn("position out of range; resetting", "group", g.cfg.Group, "partition", fmt.Sprintf("%s/%d", oor.Topic, oor.Partition),
		"offset", oor.Offset, "to", from)
	return g.co.Assign(ctx, oor.Topic, oor.Partition, from)
}

// reconcile brings the consumer to the coordinator's latest target.
func (g *GroupConsumer) reconcile(ctx context.Context) error {
	g.mu.Lock()
	if g.fatal != nil {
		err := g.fatal
		g.mu.Unlock()
		return err
	}
	if g.closed {
		g.mu.Unlock()
		return fmt.Errorf("poll: group consumer %w", ErrClosed)
	}
	seq, target, targetNum, lost := g.targetSeq, g.target, g.targetNum, g.lost
	g.mu.Unlock()
	if seq == g.appliedSeq && !lost {
		return nil
	}
	owned := g.Assignment()
	if lost {
		if len(owned) > 0 && g.cfg.OnLost != nil {
			g.cfg.OnLost(ctx, owned)
		}
		g.release(owned)
		g.ownedMu.Lock()
		g.appliedAssignment = 0
		g.ownedMu.Unlock()
		g.mu.Lock()
		g.lost = false
		g.mu.Unlock()
		signal(g.wake)
		return nil
	}
	want := map[TopicPartition]bool{}
	for _, tp := range target {
		want[tp] = true
	}
	var revoke, add []TopicPartition
	for _, tp := range owned {
		if !want[tp] {
			revoke = append(revoke, tp)
		}
	}
	for _, tp := range target {
		if !slices.Contains(owned, tp) {
			add = append(add, tp)
		}
	}
	if len(revoke) > 0 {
		if g.cfg.OnRevoked != nil {
			g.cfg.OnRevoked(ctx, revoke)
		}
		if !g.cfg.DisableAutoCommit {
			if err := g.commitPositions(ctx, revoke); err != nil {
				g.c.log.Warn("commit on revoke failed", "group", g.cfg.Group, "err", err)
			}
		}
		g.release(revoke)
	}
	if len(add) > 0 {
		// Report them owned from now on: if the coordinator takes them
		// back while we are still starting to read them, it must wait for
		// our release rather than hand them to another member at once.
		g.ownedMu.Lock()
		for _, tp := range add {
			g.owned[tp] = true
		}
		g.ownedMu.Unlock()
		if err := g.take(ctx, add); err != nil {
			g.release(add)
			return err
		}
		if g.cfg.OnAssigned != nil {
			g.cfg.OnAssigned(ctx, add)
		}
	}
	g.appliedSeq = seq
	g.ownedMu.Lock()
	g.appliedAssignment = targetNum
	g.ownedMu.Unlock()
	if len(revoke) > 0 || len(add) > 0 {
		signal(g.wake)
	}
	return nil
}

func (g *GroupConsumer) release(tps []TopicPartition) {
	for _, tp := range tps {
		g.co.Unassign(tp.Topic, tp.Partition)
	}
	g.ownedMu.Lock()
	for _, tp := range tps {
		delete(g.owned, tp)
	}
	g.ownedMu.Unlock()
	g.mu.Lock()
	for _, tp := range tps {
		delete(g.consumed, tp)
		delete(g.committed, tp)
	}
	g.mu.Unlock()
}

// take starts reading newly assigned partitions at their committed
// offsets, or where AutoOffsetReset says.
func (g *GroupConsumer) take(ctx context.Context, tps []TopicPartition) error {
	offs, err := g.c.FetchGroupOffsets(ctx, g.cfg.Group, tps...)
	if err != nil {
		return err
	}
	for _, tp := range tps {
		from := Latest()
		if c, ok := offs[tp]; ok {
			from = At(c.Offset)
		} else {
			switch g.cfg.AutoOffsetReset {
			case "earliest":
				from = Earliest()
			case "none":
				return fmt.Errorf("group %s, %s: %w", g.cfg.Group, tp, ErrNoOffset)
			}
		}
		if err := g.co.Assign(ctx, tp.Topic, tp.Partition, from); err != nil {
			return err
		}
		pos, _ := g.co.Position(tp.Topic, tp.Partition)
		g.mu.Lock()
		if c, ok := offs[tp]; ok {
			g.committed[tp] = c.Offset
		}
		g.consumed[tp] = pos
		g.mu.Unlock()
		g.ownedMu.Lock()
		g.owned[tp] = true
		g.ownedMu.Unlock()
	}
	return nil
}

func (g *GroupConsumer) maybeAutoCommit(ctx context.Context) {
	if g.cfg.DisableAutoCommit {
		return
	}
	g.mu.Lock()
	due := time.Since(g.lastCommit) >= g.cfg.AutoCommitInterval
	g.mu.Unlock()
	if !due {
		return
	}
	if err := g.commitPositions(ctx, g.Assignment()); err != nil {
		g.c.log.Warn("auto-commit failed", "group", g.cfg.Group, "err", err)
	}
}

// Commit commits the position after the last record Poll returned, for
// every owned partition, and returns once the commit is replicated.
func (g *GroupConsumer) Commit(ctx context.Context) error {
	return g.commitPositions(ctx, g.Assignment())
}

// CommitAsync commits like Commit in the background and reports the
// outcome to done (which may be nil).
func (g *GroupConsumer) CommitAsync(done func(error)) {
	tps := g.Assignment()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), g.c.cfg.RequestTimeout)
		defer cancel()
		err := g.commitPositions(ctx, tps)
		if done != nil {
			done(err)
		}
	}()
}

// CommitOffsets commits explicit offsets (the next record to consume) of
// owned partitions.
func (g *GroupConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	return g.commit(ctx, offsets)
}

func (g *GroupConsumer) commitPositions(ctx context.Context, tps []TopicPartition) error {
	g.mu.Lock()
	offsets := map[TopicPartition]int64{}
	for _, tp := range tps {
		if pos, ok := g.consumed[tp]; ok {
			if c, done := g.committed[tp]; !done || c != pos {
				offsets[tp] = pos
			}
		}
	}
	g.lastCommit = time.Now()
	g.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	return g.commit(ctx, offsets)
}

func (g *GroupConsumer) commit(ctx context.Context, offsets map[TopicPartition]int64) error {
	g.mu.Lock()
	req := &skiffpb.CommitOffsetsRequest{Group: g.cfg.Group, MemberId: g.memberID, MemberEpoch: g.epoch}
	g.mu.Unlock()
	if req.MemberId == "" {
		return fmt.Errorf("commit: group %s: not joined yet: %w", g.cfg.Group, ErrUnknownMember)
	}
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), compareTopicPartition) {
		req.Offsets = append(req.Offsets, &skiffpb.OffsetCommit{Topic: tp.Topic, Partition: tp.Partition, Offset: offsets[tp]})
	}
	bo := newBackoff()
	for {
		err := g.c.groupCall(ctx, g.cfg.Group, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := skiffpb.NewGroupsClient(cc).CommitOffsets(ctx, req)
			return err
		})
		if err == nil {
			g.mu.Lock()
			for tp, off := range offsets {
				g.committed[tp] = off
			}
			g.mu.Unlock()
			return nil
		}
		// An indeterminate commit is safe to repeat: it sets the same
		// offsets.
		if !errors.Is(err, ErrIndeterminate) {
			return fmt.Errorf("commit group %s: %w", g.cfg.Group, err)
		}
		if werr := bo.wait(ctx); werr != nil {
			return fmt.Errorf("commit group %s: %w", g.cfg.Group, err)
		}
	}
}

// Close commits (unless auto-commit is off), releases the partitions
// (OnRevoked), leaves the group so that its partitions move at once, and
// stops. A static member (InstanceID) keeps its partitions for the
// session timeout, to get them back when it restarts.
func (g *GroupConsumer) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	owned := g.Assignment()
	var errs []error
	if len(owned) > 0 {
		if g.cfg.OnRevoked != nil {
			g.cfg.OnRevoked(ctx, owned)
		}
		if !g.cfg.DisableAutoCommit {
			errs = append(errs, g.commitPositions(ctx, owned))
		}
	}
	close(g.stop)
	<-g.done
	leave := int32(-1)
	if g.cfg.InstanceID != "" {
		leave = -2
	}
	if g.MemberID() != "" {
		if _, err := g.heartbeat(ctx, leave); err != nil && !errors.Is(err, ErrUnknownMember) {
			errs = append(errs, fmt.Errorf("leave group %s: %w", g.cfg.Group, err))
		}
	}
	g.release(owned)
	errs = append(errs, g.co.Close())
	return errors.Join(errs...)
}
