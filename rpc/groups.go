package rpc

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/internal/acl"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// groupsService serves skiff.v1.Groups on top of the node's coordinator.
type groupsService struct {
	skiffpb.UnimplementedGroupsServer
	s *Server
}

var _ skiffpb.GroupsServer = (*groupsService)(nil)

func (g *groupsService) coordinator() (*consumergroup.Coordinator, error) {
	c := g.s.node.Groups()
	if c == nil {
		return nil, consumergroup.ErrCoordinatorUnavailable
	}
	return c, nil
}

func (g *groupsService) FindCoordinator(ctx context.Context, req *skiffpb.FindCoordinatorRequest) (*skiffpb.FindCoordinatorResponse, error) {
	if req.Group == "" {
		return nil, invalid("group", "group id is empty")
	}
	id, err := g.s.node.GroupCoordinator(ctx, req.Group)
	if err != nil {
		return nil, err
	}
	addr, err := g.s.brokerAddr(ctx, id)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, consumergroup.ErrCoordinatorUnavailable
	}
	return &skiffpb.FindCoordinatorResponse{NodeId: id, Addr: addr}, nil
}

func (g *groupsService) Heartbeat(ctx context.Context, req *skiffpb.GroupHeartbeatRequest) (*skiffpb.GroupHeartbeatResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	resp, err := c.Heartbeat(ctx, consumergroup.HeartbeatRequest{
		Group: req.Group, MemberID: req.MemberId, InstanceID: req.InstanceId, MemberEpoch: req.MemberEpoch,
		Topics: req.Topics, Pattern: req.Pattern, Owned: fromTopicPartitions(req.Owned), AppliedSeq: req.AppliedAssignmentSeq,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMs) * time.Millisecond,
		ClientID:         req.ClientId, ClientHost: peerHost(ctx), MayRead: g.s.authz.topicReader(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &skiffpb.GroupHeartbeatResponse{MemberId: resp.MemberID, MemberEpoch: resp.MemberEpoch,
		HeartbeatIntervalMs: int32(resp.HeartbeatInterval / time.Millisecond),
		Assignment:          toTopicPartitions(resp.Assignment), AssignmentSeq: resp.AssignmentSeq}, nil
}

func (g *groupsService) CommitOffsets(ctx context.Context, req *skiffpb.CommitOffsetsRequest) (*skiffpb.CommitOffsetsResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	err = c.CommitOffsets(ctx, consumergroup.CommitRequest{Group: req.Group, MemberID: req.MemberId,
		MemberEpoch: req.MemberEpoch, Offsets: fromOffsetCommits(req.Offsets)})
	if err != nil {
		return nil, err
	}
	return &skiffpb.CommitOffsetsResponse{}, nil
}

func (g *groupsService) FetchOffsets(ctx context.Context, req *skiffpb.FetchOffsetsRequest) (*skiffpb.FetchOffsetsResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	got, err := c.FetchOffsets(ctx, req.Group, fromTopicPartitions(req.Partitions))
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.FetchOffsetsResponse{}
	// Named topics were checked by the access rule; without any, the
	// coordinator answers with every committed topic of the group, and the
	// answer keeps those the principal may describe.
	described := map[string]bool{}
	for _, tp := range slices.SortedFunc(maps.Keys(got), compareGroupTP) {
		ok, seen := described[tp.Topic]
		if !seen {
			ok = g.s.authz.mayDescribe(ctx, acl.Topic, tp.Topic)
			described[tp.Topic] = ok
		}
		if !ok {
			continue
		}
		cm := got[tp]
		resp.Offsets = append(resp.Offsets, &skiffpb.CommittedOffset{Topic: tp.Topic, Partition: tp.Partition,
			Offset: cm.Offset, Metadata: cm.Metadata, CommitTimeMs: cm.CommitTime.UnixMilli()})
	}
	return resp, nil
}

func (g *groupsService) ListGroups(ctx context.Context, req *skiffpb.ListGroupsRequest) (*skiffpb.ListGroupsResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	list := c.ListGroups(ctx)
	resp := &skiffpb.ListGroupsResponse{CoordinatedPartitions: list.Coordinated, OffsetsPartitions: list.Partitions}
	for _, l := range list.Groups {
		if !g.s.authz.mayDescribe(ctx, acl.Group, l.Group) {
			continue
		}
		resp.Groups = append(resp.Groups, &skiffpb.GroupListing{Group: l.Group, State: l.State,
			Members: int32(l.Members), Coordinator: g.s.node.ID()})
	}
	return resp, nil
}

func (g *groupsService) DescribeGroup(ctx context.Context, req *skiffpb.DescribeGroupRequest) (*skiffpb.DescribeGroupResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	d, err := c.DescribeGroup(ctx, req.Group)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.DescribeGroupResponse{Group: d.Group, State: d.State, GroupEpoch: d.Epoch,
		Rebalances: d.Rebalances, Coordinator: g.s.node.ID()}
	// Describe on the group shows the group; which topics it reads, and
	// how far, only for topics the principal may describe too, as
	// FetchOffsets does.
	visible := g.s.authz.topicDescriber(ctx)
	for _, m := range d.Members {
		resp.Members = append(resp.Members, &skiffpb.GroupMember{MemberId: m.MemberID, InstanceId: m.InstanceID,
			ClientId: m.ClientID, ClientHost: m.ClientHost, MemberEpoch: m.Epoch, Topics: slices.DeleteFunc(slices.Clone(m.Topics), func(t string) bool { return !visible(t) }),
			Pattern: m.Pattern, Assigned: toTopicPartitions(visibleTPs(m.Assigned, visible)), Target: toTopicPartitions(visibleTPs(m.Target, visible))})
	}
	for _, o := range d.Offsets {
		if !visible(o.Topic) {
			continue
		}
		po := &skiffpb.GroupPartitionOffset{Topic: o.Topic, Partition: o.Partition, Committed: o.Committed,
			HighWatermark: o.HighWatermark, Lag: o.Lag, Owner: o.Owner, Metadata: o.Metadata}
		if !o.CommitTime.IsZero() {
			po.CommitTimeMs = o.CommitTime.UnixMilli()
		}
		resp.Offsets = append(resp.Offsets, po)
	}
	return resp, nil
}

func (g *groupsService) DeleteGroup(ctx context.Context, req *skiffpb.DeleteGroupRequest) (*skiffpb.DeleteGroupResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	if err := c.DeleteGroup(ctx, req.Group); err != nil {
		return nil, err
	}
	return &skiffpb.DeleteGroupResponse{}, nil
}

func (g *groupsService) ResetOffsets(ctx context.Context, req *skiffpb.ResetOffsetsRequest) (*skiffpb.ResetOffsetsResponse, error) {
	c, err := g.coordinator()
	if err != nil {
		return nil, err
	}
	st := g.s.node.Metadata()
	for i, o := range req.Offsets {
		t, ok := st.Topics[o.Topic]
		if !ok {
			return nil, invalid(fmt.Sprintf("offsets[%d].topic", i), "topic %q does not exist", o.Topic)
		}
		if o.Partition < 0 || int(o.Partition) >= len(t.Partitions) {
			return nil, invalid(fmt.Sprintf("offsets[%d].partition", i), "partition %d out of range: topic %s has partitions 0..%d", o.Partition, o.Topic, len(t.Partitions)-1)
		}
	}
	if err := c.ResetOffsets(ctx, req.Group, fromOffsetCommits(req.Offsets)); err != nil {
		return nil, err
	}
	return &skiffpb.ResetOffsetsResponse{}, nil
}

// visibleTPs keeps the partitions of topics visible says the caller may
// see.
func visibleTPs(tps []consumergroup.TopicPartition, visible func(string) bool) []consumergroup.TopicPartition {
	return slices.DeleteFunc(slices.Clone(tps), func(tp consumergroup.TopicPartition) bool { return !visible(tp.Topic) })
}

// peerHost is the caller's address as the server sees it.
func peerHost(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

func fromTopicPartitions(in []*skiffpb.TopicPartitions) []consumergroup.TopicPartition {
	var out []consumergroup.TopicPartition
	for _, t := range in {
		for _, p := range t.Partitions {
			out = append(out, consumergroup.TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	return out
}

// toTopicPartitions groups sorted partitions by topic.
func toTopicPartitions(in []consumergroup.TopicPartition) []*skiffpb.TopicPartitions {
	var out []*skiffpb.TopicPartitions
	for _, tp := range in {
		if len(out) == 0 || out[len(out)-1].Topic != tp.Topic {
			out = append(out, &skiffpb.TopicPartitions{Topic: tp.Topic})
		}
		last := out[len(out)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return out
}

func fromOffsetCommits(in []*skiffpb.OffsetCommit) []consumergroup.CommitOffset {
	out := make([]consumergroup.CommitOffset, len(in))
	for i, o := range in {
		out[i] = consumergroup.CommitOffset{TopicPartition: consumergroup.TopicPartition{Topic: o.Topic, Partition: o.Partition},
			Offset: o.Offset, Metadata: o.Metadata}
	}
	return out
}

func compareGroupTP(a, b consumergroup.TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}
