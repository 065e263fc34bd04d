package consumergroup

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Coordinator serves the groups whose offsets partitions this node leads
// and keeps the offsets tables of every offsets partition it replicates.
type Coordinator struct {
	cfg     Config
	host    Host
	logger  *slog.Logger
	metrics *metrics

	mu     sync.Mutex
	shards map[int32]*shard
	nparts int32
	closed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// New starts a coordinator on host. reg receives its metrics (nil: none).
// Close stops it.
func New(cfg Config, host Host, reg prometheus.Registerer) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c := &Coordinator{cfg: cfg, host: host, logger: cfg.Logger, metrics: newMetrics(reg),
		shards: map[int32]*shard{}, stop: make(chan struct{})}
	c.wg.Add(2)
	go c.run()
	go c.runLag()
	return c, nil
}

// Close stops every reader and loop. Groups' soft state is dropped; members
// move to the next coordinator.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	shards := c.shards
	c.shards = map[int32]*shard{}
	c.mu.Unlock()
	close(c.stop)
	c.wg.Wait()
	for _, s := range shards {
		s.close()
	}
	c.metrics.unregister()
	return nil
}

// HeartbeatInterval is what members are told to heartbeat at.
func (c *Coordinator) HeartbeatInterval() time.Duration { return c.cfg.HeartbeatInterval }

// run keeps one shard per local offsets replica and does the periodic
// duties: session expiry, topic changes, checkpoints.
func (c *Coordinator) run() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.TickInterval)
	defer t.Stop()
	for {
		c.syncShards()
		c.tick()
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
	}
}

func (c *Coordinator) syncShards() {
	logs, n := c.host.OffsetsLogs()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.nparts = n
	var stale []*shard
	for p, s := range c.shards {
		if lg, ok := logs[p]; !ok || lg != s.log {
			stale = append(stale, s)
			delete(c.shards, p)
		}
	}
	for p, lg := range logs {
		if _, ok := c.shards[p]; !ok {
			c.shards[p] = newShard(c, p, lg)
		}
	}
	c.mu.Unlock()
	for _, s := range stale {
		s.close()
	}
}

func (c *Coordinator) tick() {
	now := c.cfg.Now()
	topics := c.host.Topics()
	for _, s := range c.shardList() {
		if !s.stillLeads() {
			s.mu.Lock()
			if len(s.groups) > 0 {
				for id := range s.groups {
					c.metrics.forgetGroup(id)
				}
				s.groups = map[string]*group{}
			}
			s.term = 0
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		snaps := map[*group]*groupSnapshot{}
		for id, g := range s.groups {
			if gone := g.expire(&c.cfg, now); len(gone) > 0 {
				c.logger.Info("members removed", "group", id, "members", gone)
			}
			g.refreshTopology(topics)
			g.updateTarget(topics)
			c.metrics.observeGroup(g)
			if snap := takeSnapshot(g); snap != nil {
				snaps[g] = snap
			}
			if len(g.members) == 0 && len(g.fenced) == 0 {
				delete(s.groups, id)
			}
		}
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for g, snap := range snaps {
			if err := c.writeGroupState(ctx, s, g, snap); err != nil {
				c.logger.Warn("record group state", "group", g.id, "error", err)
			}
		}
		c.shareTick(ctx, s, c.cfg.Now())
		c.observeShares(s)
		s.maybeCheckpoint(ctx)
		cancel()
	}
}

func (c *Coordinator) shardList() []*shard {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.shards))
}

// shardFor returns the led, loaded shard of group.
func (c *Coordinator) shardFor(ctx context.Context, groupID string) (*shard, error) {
	if groupID == "" {
		return nil, invalidf("group id is empty")
	}
	if err := checkID("group id", groupID, MaxGroupIDLength); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	n := c.nparts
	c.mu.Unlock()
	if n == 0 {
		c.syncShards()
		c.mu.Lock()
		n = c.nparts
		c.mu.Unlock()
		if n == 0 {
			return nil, ErrCoordinatorUnavailable
		}
	}
	p := PartitionFor(groupID, n)
	c.mu.Lock()
	s := c.shards[p]
	c.mu.Unlock()
	if s == nil {
		return nil, ErrNotCoordinator
	}
	if err := s.lead(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Heartbeat serves a member's heartbeat.
func (c *Coordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) (HeartbeatResponse, error) {
	if err := checkID("member id", req.MemberID, MaxMemberIDLength); err != nil {
		return HeartbeatResponse{}, err
	}
	if err := checkID("instance id", req.InstanceID, MaxMemberIDLength); err != nil {
		return HeartbeatResponse{}, err
	}
	s, err := c.shardFor(ctx, req.Group)
	if err != nil {
		return HeartbeatResponse{}, err
	}
	topics := c.host.Topics()
	now := c.cfg.Now()
	s.mu.Lock()
	g := s.group(req.Group, now)
	if g == nil {
		if req.MemberEpoch == EpochLeave {
			s.mu.Unlock()
			return HeartbeatResponse{MemberID: req.MemberID, MemberEpoch: EpochLeave}, nil
		}
		g = newGroup(req.Group)
		s.groups[req.Group] = g
	}
	before := g.epoch
	adopt := now.Sub(s.leaderSince) < c.cfg.AdoptWindow
	resp, err := g.heartbeat(req, topics, &c.cfg, now, adopt)
	if g.epoch != before {
		c.metrics.rebalances.WithLabelValues(g.id).Add(float64(g.epoch - before))
	}
	c.metrics.observeGroup(g)
	snap := takeSnapshot(g)
	s.mu.Unlock()
	// The member learns of a partition only once the log says it has it:
	// a new coordinator restores exactly that.
	if err := c.writeGroupState(ctx, s, g, snap); err != nil {
		return HeartbeatResponse{}, err
	}
	return resp, err
}

// takeSnapshot returns a snapshot of g if it changed since the last one
// written (nil otherwise). s.mu must be held.
func takeSnapshot(g *group) *groupSnapshot {
	if !g.dirty {
		return nil
	}
	g.dirty, g.granted = false, false
	return g.snapshot()
}

// writeGroupState appends a group snapshot (nil: nothing to write); on
// failure the group stays dirty for the next attempt.
func (c *Coordinator) writeGroupState(ctx context.Context, s *shard, g *group, snap *groupSnapshot) error {
	if snap == nil {
		return nil
	}
	s.writeMu.RLock()
	err := s.append(ctx, []entry{{Kind: kindGroupState, Group: g.id, GroupState: snap}})
	s.writeMu.RUnlock()
	if err != nil {
		s.mu.Lock()
		g.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("record group %s: %w", g.id, err)
	}
	return nil
}

// CommitOffset is one partition's position to commit.
type CommitOffset struct {
	TopicPartition
	Offset   int64
	Metadata string
}

// CommitRequest commits offsets for a group. A member commits with its id
// and epoch and only partitions it owns; without a member id the commit
// is accepted only while the group has no members (a standalone consumer
// or an admin tool).
type CommitRequest struct {
	Group       string
	MemberID    string
	MemberEpoch int32
	Offsets     []CommitOffset
}

// CommitOffsets replicates the commit and returns once a majority of the
// offsets partition's replicas have it.
func (c *Coordinator) CommitOffsets(ctx context.Context, req CommitRequest) error {
	start := time.Now()
	if len(req.Offsets) == 0 {
		return invalidf("no offsets to commit")
	}
	tps := make([]TopicPartition, len(req.Offsets))
	for i, o := range req.Offsets {
		if o.Offset < 0 {
			return invalidf("offset %d for %s/%d is negative", o.Offset, o.Topic, o.Partition)
		}
		if len(o.Metadata) > 4096 {
			return invalidf("commit metadata for %s/%d is %d bytes, at most 4096 allowed", o.Topic, o.Partition, len(o.Metadata))
		}
		tps[i] = o.TopicPartition
	}
	s, err := c.shardFor(ctx, req.Group)
	if err != nil {
		return err
	}
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	s.mu.Lock()
	g := s.group(req.Group, c.cfg.Now())
	switch {
	case req.MemberID == "":
		if g != nil && g.active() {
			err = fmt.Errorf("%w: a commit without a member id is refused while group %s has %d members", ErrGroupNotEmpty, req.Group, len(g.members))
		}
	case g == nil:
		err = ErrUnknownMember
	default:
		err = g.canCommit(req.MemberID, req.MemberEpoch, tps)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	now := c.cfg.Now().UnixMilli()
	entries := make([]entry, len(req.Offsets))
	for i, o := range req.Offsets {
		entries[i] = entry{Kind: kindCommit, Group: req.Group, Topic: o.Topic, Partition: o.Partition,
			Offset: o.Offset, Metadata: o.Metadata, CommitTime: now}
	}
	if err := s.append(ctx, entries); err != nil {
		return err
	}
	c.metrics.commitSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// FetchOffsets returns a group's committed offsets, all of them when tps is
// empty. Partitions without a commit are missing from the result.
func (c *Coordinator) FetchOffsets(ctx context.Context, groupID string, tps []TopicPartition) (map[TopicPartition]Committed, error) {
	s, err := c.shardFor(ctx, groupID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	all := s.table.group(groupID)
	s.mu.Unlock()
	if len(tps) == 0 {
		if all == nil {
			all = map[TopicPartition]Committed{}
		}
		return all, nil
	}
	out := make(map[TopicPartition]Committed, len(tps))
	for _, tp := range tps {
		if c, ok := all[tp]; ok {
			out[tp] = c
		}
	}
	return out, nil
}

// ResetOffsets replaces committed offsets of an inactive group (replay).
func (c *Coordinator) ResetOffsets(ctx context.Context, groupID string, offsets []CommitOffset) error {
	return c.CommitOffsets(ctx, CommitRequest{Group: groupID, Offsets: offsets})
}

// DeleteGroup deletes an inactive group's committed offsets.
func (c *Coordinator) DeleteGroup(ctx context.Context, groupID string) error {
	s, err := c.shardFor(ctx, groupID)
	if err != nil {
		return err
	}
	s.writeMu.RLock()
	defer s.writeMu.RUnlock()
	s.mu.Lock()
	g := s.group(groupID, c.cfg.Now())
	_, hasOffsets := s.table.groups[groupID]
	switch {
	case g != nil && g.active():
		err = fmt.Errorf("%w: group %s has %d members", ErrGroupNotEmpty, groupID, len(g.members))
	case !hasOffsets && g == nil:
		err = fmt.Errorf("%w: %s", ErrGroupNotFound, groupID)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.append(ctx, []entry{{Kind: kindDeleteGroup, Group: groupID}}); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.groups, groupID)
	s.mu.Unlock()
	c.metrics.forgetGroup(groupID)
	return nil
}

// GroupListing is one group in ListGroups.
type GroupListing struct {
	Group   string
	State   string
	Members int
}

// GroupList is ListGroups' answer.
type GroupList struct {
	Groups []GroupListing
	// Coordinated are the offsets partitions this node led when it
	// answered, and Partitions how many the cluster has: a cluster-wide
	// listing that gathers every node's answer is complete only when their
	// Coordinated cover every partition. One handing over leadership is
	// led by no node for a moment, and its groups are in no answer.
	Coordinated []int32
	Partitions  int32
}

// ListGroups lists the groups this node coordinates (offsets partitions it
// leads). A cluster-wide listing asks every node.
func (c *Coordinator) ListGroups(ctx context.Context) GroupList {
	var out GroupList
	c.mu.Lock()
	out.Partitions = c.nparts
	c.mu.Unlock()
	for _, s := range c.shardList() {
		if s.lead(ctx) != nil {
			continue
		}
		out.Coordinated = append(out.Coordinated, s.partition)
		s.mu.Lock()
		ids := map[string]bool{}
		for _, id := range s.table.groupIDs() {
			ids[id] = true
		}
		for id, g := range s.groups {
			if g.active() {
				ids[id] = true
			}
		}
		for id := range s.table.members {
			ids[id] = true
		}
		for id := range ids {
			l := GroupListing{Group: id, State: StateEmpty}
			if g := s.group(id, c.cfg.Now()); g != nil {
				l.State, l.Members = g.state(), len(g.members)
			}
			out.Groups = append(out.Groups, l)
		}
		s.mu.Unlock()
	}
	slices.SortFunc(out.Groups, func(a, b GroupListing) int { return strings.Compare(a.Group, b.Group) })
	slices.Sort(out.Coordinated)
	return out
}

// MemberDescription describes one member.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Epoch      int32
	Topics     []string
	Pattern    string
	Assigned   []TopicPartition // owned now
	Target     []TopicPartition // to own once handovers finish
}

// PartitionOffset is a group's position in one partition.
type PartitionOffset struct {
	TopicPartition
	Committed     int64 // -1 when nothing is committed
	HighWatermark int64 // -1 when unknown
	Lag           int64 // -1 when unknown
	Owner         string
	Metadata      string
	CommitTime    time.Time
}

// GroupDescription is DescribeGroup's answer.
type GroupDescription struct {
	Group      string
	State      string
	Epoch      int32
	Rebalances int64
	Members    []MemberDescription
	Offsets    []PartitionOffset
}

// DescribeGroup describes a group with its lag per partition: every
// partition of the subscribed topics and every partition with a commit.
func (c *Coordinator) DescribeGroup(ctx context.Context, groupID string) (GroupDescription, error) {
	return c.describeGroup(ctx, groupID, nil)
}

// describeGroup is DescribeGroup with the high watermarks known already
// (nil: ask the cluster).
func (c *Coordinator) describeGroup(ctx context.Context, groupID string, hws map[TopicPartition]int64) (GroupDescription, error) {
	s, err := c.shardFor(ctx, groupID)
	if err != nil {
		return GroupDescription{}, err
	}
	topics := c.host.Topics()
	s.mu.Lock()
	offs := s.table.group(groupID)
	g := s.group(groupID, c.cfg.Now())
	d := GroupDescription{Group: groupID, State: StateEmpty}
	owners := map[TopicPartition]string{}
	parts := map[TopicPartition]bool{}
	for tp := range offs {
		parts[tp] = true
	}
	if g != nil {
		d.State, d.Epoch, d.Rebalances = g.state(), g.epoch, g.rebalances
		for _, id := range slices.Sorted(maps.Keys(g.members)) {
			m := g.members[id]
			d.Members = append(d.Members, MemberDescription{MemberID: m.id, InstanceID: m.instanceID,
				ClientID: m.clientID, ClientHost: m.clientHost, Epoch: m.epoch, Topics: m.topics,
				Pattern: m.pattern, Assigned: sortedTPs(m.assigned, m.assigned), Target: slices.Clone(g.target[id])})
			for _, t := range m.subscribed(topics) {
				for p := range topics[t] {
					parts[TopicPartition{Topic: t, Partition: p}] = true
				}
			}
		}
		maps.Copy(owners, g.owner)
	}
	s.mu.Unlock()
	if g == nil && offs == nil {
		return GroupDescription{}, fmt.Errorf("%w: %s", ErrGroupNotFound, groupID)
	}
	tps := slices.SortedFunc(maps.Keys(parts), compareTP)
	if hws == nil {
		hws = c.host.HighWatermarks(ctx, tps)
	}
	for _, tp := range tps {
		po := PartitionOffset{TopicPartition: tp, Committed: -1, HighWatermark: -1, Lag: -1, Owner: owners[tp]}
		if cm, ok := offs[tp]; ok {
			po.Committed, po.Metadata, po.CommitTime = cm.Offset, cm.Metadata, cm.CommitTime
		}
		if hw, ok := hws[tp]; ok {
			po.HighWatermark = hw
			if po.Committed >= 0 {
				po.Lag = max(0, hw-po.Committed)
			} else {
				po.Lag = hw
			}
		}
		d.Offsets = append(d.Offsets, po)
	}
	return d, nil
}

// runLag refreshes the committed-offset and lag metrics (records and
// seconds) of the groups this node coordinates.
func (c *Coordinator) runLag() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	ages := newLagAges(c.host)
	var exported map[string]bool // groups listed last round
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.LagInterval)
		groups := c.ListGroups(ctx).Groups
		// A group deleted or moved to another coordinator while this round
		// described it would otherwise keep its series for ever.
		listed := make(map[string]bool, len(groups))
		for _, l := range groups {
			listed[l.Group] = true
		}
		for id := range exported {
			if !listed[id] {
				c.metrics.forgetGroup(id)
			}
		}
		exported = listed
		if len(groups) > 0 {
			// One round of calls for every group's partitions.
			hws := c.host.HighWatermarks(ctx, nil)
			now := c.cfg.Now()
			for _, l := range groups {
				if d, err := c.describeGroup(ctx, l.Group, hws); err == nil {
					c.metrics.observeOffsets(ctx, d, ages, now)
				}
			}
		}
		ages.endRound()
		cancel()
	}
}
