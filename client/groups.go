package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

func compareTopicPartition(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// coordinators caches each group's coordinator address.
type coordinators struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (c *coordinators) get(group string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addrs[group]
}

func (c *coordinators) set(group, addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.addrs == nil {
		c.addrs = map[string]string{}
	}
	if addr == "" {
		delete(c.addrs, group)
	} else {
		c.addrs[group] = addr
	}
}

// groupCall runs call against group's coordinator, finding it first and
// again whenever it moved, retrying while the coordinator is unavailable
// or loading, until ctx ends or RequestTimeout passes.
func (c *Client) groupCall(ctx context.Context, group string, call func(ctx context.Context, cc *grpc.ClientConn) error) error {
	_, err := c.groupCallTracked(ctx, group, call)
	return err
}

// groupCallTracked is groupCall that also reports whether an attempt
// reached a coordinator and then failed as unavailable (the node died or
// stepped down with the call in flight): for a write, such an attempt may
// have applied before the one that answered.
func (c *Client) groupCallTracked(ctx context.Context, group string, call func(ctx context.Context, cc *grpc.ClientConn) error) (maybeApplied bool, err error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	bo := newBackoff()
	for {
		addr := c.coords.get(group)
		var err error
		if addr == "" {
			addr, err = c.findCoordinator(ctx, group)
		}
		if err == nil {
			var cc *grpc.ClientConn
			if cc, err = c.conn(addr); err != nil {
				return maybeApplied, err
			}
			err = fromStatus(call(ctx, cc))
			if err == nil {
				return maybeApplied, nil
			}
			if errors.Is(err, ErrUnavailable) {
				maybeApplied = true
			}
		}
		if !errors.Is(err, ErrNotCoordinator) && !errors.Is(err, ErrUnavailable) {
			return maybeApplied, err
		}
		c.coords.set(group, "")
		c.log.Debug("group coordinator unavailable, retrying", "group", group, "err", err)
		if werr := bo.wait(ctx); werr != nil {
			return maybeApplied, err
		}
	}
}

func (c *Client) findCoordinator(ctx context.Context, group string) (string, error) {
	var resp *skiffpb.FindCoordinatorResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewGroupsClient(cc).FindCoordinator(ctx, &skiffpb.FindCoordinatorRequest{Group: group})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("find coordinator of group %s: %w", group, err)
	}
	c.coords.set(group, resp.GetAddr())
	return resp.GetAddr(), nil
}

// GroupListing is one group in ListGroups.
type GroupListing struct {
	Group       string `json:"group"`
	State       string `json:"state"` // Empty, Stable, Reconciling
	Members     int    `json:"members"`
	Coordinator string `json:"coordinator"` // node id
}

// ListGroups lists the cluster's consumer groups: it asks every broker for
// the groups it coordinates. An offsets partition changing leader is
// coordinated by no broker for a moment, so the brokers are asked again
// until their answers cover every offsets partition; when the request
// times out first, the error names the partitions whose groups are
// missing.
func (c *Client) ListGroups(ctx context.Context) ([]GroupListing, error) {
	ctx, cancel := c.requestContext(ctx)
	defer cancel()
	bo := newBackoff()
	for {
		out, missing, err := c.listGroupsOnce(ctx)
		if err != nil || len(missing) == 0 {
			return out, err
		}
		c.log.Debug("offsets partitions without a coordinator, listing again", "partitions", missing)
		if werr := bo.wait(ctx); werr != nil {
			return nil, fmt.Errorf("list groups: offsets partitions %v have no coordinator right now, retry: %w", missing, ErrNotCoordinator)
		}
	}
}

// listGroupsOnce asks every broker once. missing are the offsets
// partitions no answer covered.
func (c *Client) listGroupsOnce(ctx context.Context) (out []GroupListing, missing []int32, err error) {
	err = c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		resp, err := skiffpb.NewAdminClient(cc).Metadata(ctx, &skiffpb.MetadataRequest{})
		if err == nil {
			c.meta.storeBrokers(resp)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list groups: %w", err)
	}
	var (
		mu         sync.Mutex
		wg         sync.WaitGroup
		seen       = map[string]GroupListing{}
		covered    = map[int32]bool{}
		partitions int32
		errs       []error
	)
	for _, addr := range c.meta.brokerAddrs() {
		wg.Add(1)
		go func(addr string) {
			defer wg.Done()
			cc, err := c.conn(addr)
			if err == nil {
				var resp *skiffpb.ListGroupsResponse
				resp, err = skiffpb.NewGroupsClient(cc).ListGroups(ctx, &skiffpb.ListGroupsRequest{LocalOnly: true})
				err = fromStatus(err)
				if err == nil {
					mu.Lock()
					for _, g := range resp.GetGroups() {
						seen[g.GetGroup()] = GroupListing{Group: g.GetGroup(), State: g.GetState(),
							Members: int(g.GetMembers()), Coordinator: g.GetCoordinator()}
					}
					for _, p := range resp.GetCoordinatedPartitions() {
						covered[p] = true
					}
					partitions = max(partitions, resp.GetOffsetsPartitions())
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			mu.Unlock()
		}(addr)
	}
	wg.Wait()
	out = slices.SortedFunc(maps.Values(seen), func(a, b GroupListing) int { return strings.Compare(a.Group, b.Group) })
	if len(out) == 0 && len(errs) > 0 {
		return nil, nil, fmt.Errorf("list groups: %w", errors.Join(errs...))
	}
	for p := range partitions {
		if !covered[p] {
			missing = append(missing, p)
		}
	}
	return out, missing, nil
}

// GroupMember describes one member of a group.
type GroupMember struct {
	MemberID   string           `json:"member_id"`
	InstanceID string           `json:"instance_id,omitempty"`
	ClientID   string           `json:"client_id,omitempty"`
	ClientHost string           `json:"client_host,omitempty"`
	Epoch      int32            `json:"member_epoch"`
	Topics     []string         `json:"topics,omitempty"`
	Pattern    string           `json:"pattern,omitempty"`
	Assigned   []TopicPartition `json:"assigned"`
	Target     []TopicPartition `json:"target"`
}

// GroupPartition is a group's position in one partition.
type GroupPartition struct {
	Topic         string    `json:"topic"`
	Partition     int32     `json:"partition"`
	Committed     int64     `json:"committed"`      // -1: nothing committed
	HighWatermark int64     `json:"high_watermark"` // -1: unknown
	Lag           int64     `json:"lag"`            // -1: unknown
	Owner         string    `json:"owner,omitempty"`
	Metadata      string    `json:"metadata,omitempty"`
	CommitTime    time.Time `json:"commit_time,omitzero"`
}

// GroupDescription is a group's members, assignments and offsets.
type GroupDescription struct {
	Group       string           `json:"group"`
	State       string           `json:"state"`
	Epoch       int32            `json:"group_epoch"`
	Rebalances  int64            `json:"rebalances"`
	Coordinator string           `json:"coordinator"`
	Members     []GroupMember    `json:"members"`
	Partitions  []GroupPartition `json:"partitions"`
}

// TotalLag sums the known lag of every partition.
func (d GroupDescription) TotalLag() int64 {
	return sumLag(d.Partitions, func(p GroupPartition) int64 { return p.Lag })
}

// sumLag adds up the known (non-negative) lags of partitions.
func sumLag[P any](partitions []P, lag func(P) int64) int64 {
	var n int64
	for _, p := range partitions {
		n += max(lag(p), 0)
	}
	return n
}

// DescribeGroup returns a group's members, assignments, committed offsets
// and lag per partition. A group with neither members nor offsets is
// ErrGroupNotFound.
func (c *Client) DescribeGroup(ctx context.Context, group string) (GroupDescription, error) {
	var resp *skiffpb.DescribeGroupResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewGroupsClient(cc).DescribeGroup(ctx, &skiffpb.DescribeGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return GroupDescription{}, fmt.Errorf("describe group %s: %w", group, err)
	}
	d := GroupDescription{Group: resp.GetGroup(), State: resp.GetState(), Epoch: resp.GetGroupEpoch(),
		Rebalances: resp.GetRebalances(), Coordinator: resp.GetCoordinator(), Members: []GroupMember{}, Partitions: []GroupPartition{}}
	for _, m := range resp.GetMembers() {
		d.Members = append(d.Members, GroupMember{MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(),
			ClientID: m.GetClientId(), ClientHost: m.GetClientHost(), Epoch: m.GetMemberEpoch(), Topics: m.GetTopics(),
			Pattern: m.GetPattern(), Assigned: fromPBPartitions(m.GetAssigned()), Target: fromPBPartitions(m.GetTarget())})
	}
	for _, o := range resp.GetOffsets() {
		p := GroupPartition{Topic: o.GetTopic(), Partition: o.GetPartition(), Committed: o.GetCommitted(),
			HighWatermark: o.GetHighWatermark(), Lag: o.GetLag(), Owner: o.GetOwner(), Metadata: o.GetMetadata()}
		if ms := o.GetCommitTimeMs(); ms > 0 {
			p.CommitTime = time.UnixMilli(ms)
		}
		d.Partitions = append(d.Partitions, p)
	}
	return d, nil
}

// DeleteGroup deletes a group's committed offsets. The group must have no
// active members (ErrGroupNotEmpty).
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewGroupsClient(cc).DeleteGroup(ctx, &skiffpb.DeleteGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return fmt.Errorf("delete group %s: %w", group, err)
	}
	return nil
}

// CommittedOffset is a group's committed position in one partition.
type CommittedOffset struct {
	TopicPartition
	Offset     int64 // the next record to consume
	Metadata   string
	CommitTime time.Time
}

// FetchGroupOffsets returns a group's committed offsets (all of them when
// no partitions are named).
func (c *Client) FetchGroupOffsets(ctx context.Context, group string, partitions ...TopicPartition) (map[TopicPartition]CommittedOffset, error) {
	var resp *skiffpb.FetchOffsetsResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewGroupsClient(cc).FetchOffsets(ctx, &skiffpb.FetchOffsetsRequest{Group: group, Partitions: toPBPartitions(partitions)})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	out := map[TopicPartition]CommittedOffset{}
	for _, o := range resp.GetOffsets() {
		tp := TopicPartition{Topic: o.GetTopic(), Partition: o.GetPartition()}
		out[tp] = CommittedOffset{TopicPartition: tp, Offset: o.GetOffset(), Metadata: o.GetMetadata(), CommitTime: time.UnixMilli(o.GetCommitTimeMs())}
	}
	return out, nil
}

// ResetSpec says where ResetGroupOffsets moves a group: exactly one of
// To (Earliest(), Latest(), At(n), AtTime(t)) or Shift.
type ResetSpec struct {
	To    Offset
	Shift int64 // move the committed offsets by this many records (negative: back); clamped to the log
	// ByShift selects Shift (so that a shift of 0 is expressible).
	ByShift bool
}

// ResetGroupOffsets moves a group's committed offsets in the partitions of
// topic (all of them when partitions is empty) for replay or to skip ahead,
// and returns the new offsets. Like Kafka's kafka-consumer-groups
// --reset-offsets it needs a group without active members
// (ErrGroupNotEmpty).
func (c *Client) ResetGroupOffsets(ctx context.Context, group, topic string, spec ResetSpec, partitions ...int32) (map[TopicPartition]int64, error) {
	n, err := c.meta.partitionCount(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("reset offsets of group %s: %w", group, err)
	}
	if len(partitions) == 0 {
		for p := range n {
			partitions = append(partitions, int32(p))
		}
	}
	co := newConsumer(grpcTransport{c}, ConsumerConfig{}, c.cfg.RequestTimeout, c.log)
	defer co.Close()
	var committed map[TopicPartition]CommittedOffset
	if spec.ByShift {
		if committed, err = c.FetchGroupOffsets(ctx, group); err != nil {
			return nil, err
		}
	}
	out := map[TopicPartition]int64{}
	var req []*skiffpb.OffsetCommit
	for _, p := range partitions {
		if p < 0 || int(p) >= n {
			return nil, &InvalidArgumentError{Field: "partition", Reason: fmt.Sprintf("%d out of range: topic %s has partitions 0..%d", p, topic, n-1)}
		}
		tp := topicPartition{topic, p}
		var off int64
		if spec.ByShift {
			start, err := co.resolve(ctx, tp, Earliest())
			if err != nil {
				return nil, err
			}
			end, err := co.resolve(ctx, tp, Latest())
			if err != nil {
				return nil, err
			}
			cur, ok := committed[TopicPartition{topic, p}]
			base := start
			if ok {
				base = cur.Offset
			}
			off = min(max(base+spec.Shift, start), end)
		} else if o, ok := spec.To.exact(); ok {
			off = o
		} else if off, err = co.resolve(ctx, tp, spec.To); err != nil {
			return nil, err
		}
		out[TopicPartition{topic, p}] = off
		req = append(req, &skiffpb.OffsetCommit{Topic: topic, Partition: p, Offset: off})
	}
	err = c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewGroupsClient(cc).ResetOffsets(ctx, &skiffpb.ResetOffsetsRequest{Group: group, Offsets: req})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reset offsets of group %s: %w", group, err)
	}
	return out, nil
}

func fromPBPartitions(in []*skiffpb.TopicPartitions) []TopicPartition {
	out := []TopicPartition{}
	for _, t := range in {
		for _, p := range t.GetPartitions() {
			out = append(out, TopicPartition{Topic: t.GetTopic(), Partition: p})
		}
	}
	slices.SortFunc(out, compareTopicPartition)
	return out
}

func toPBPartitions(in []TopicPartition) []*skiffpb.TopicPartitions {
	sorted := slices.SortedFunc(slices.Values(in), compareTopicPartition)
	var out []*skiffpb.TopicPartitions
	for _, tp := range sorted {
		if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
			out = append(out, &skiffpb.TopicPartitions{Topic: tp.Topic})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return out
}
