package rpc

import (
	"context"
	"errors"
	"time"

	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// shareService serves skiff.v1.ShareGroups on top of the coordinator.
type shareService struct {
	skiffpb.UnimplementedShareGroupsServer
	s *Server
}

var _ skiffpb.ShareGroupsServer = (*shareService)(nil)

func (h *shareService) coordinator() (*consumergroup.Coordinator, error) {
	c := h.s.node.Groups()
	if c == nil {
		return nil, consumergroup.ErrCoordinatorUnavailable
	}
	return c, nil
}

func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func toPBHeaders(hs []record.Header) []*skiffpb.Header {
	out := make([]*skiffpb.Header, len(hs))
	for i, h := range hs {
		out[i] = &skiffpb.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

func (h *shareService) ShareFetch(ctx context.Context, req *skiffpb.ShareFetchRequest) (*skiffpb.ShareFetchResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	if req.MaxRecords < 0 || req.MaxWaitMs < 0 {
		return nil, invalid("max_records", "max_records and max_wait_ms must not be negative")
	}
	if req.MaxBytes < 0 {
		return nil, invalid("max_bytes", "max_bytes must not be negative")
	}
	if len(req.Acks) > consumergroup.MaxShareAcksPerRequest {
		return nil, invalid("acks", "%d acknowledgements: at most %d per request", len(req.Acks), consumergroup.MaxShareAcksPerRequest)
	}
	if len(req.Acks) > 0 && req.MemberId == "" {
		return nil, invalid("member_id", "acknowledgements need the member id of the fetch that delivered the records")
	}
	ctx, cancel := h.s.shutdownContext(ctx)
	defer cancel()
	resp, err := c.ShareFetch(ctx, consumergroup.ShareFetchRequest{Group: req.Group, MemberID: req.MemberId, Topics: req.Topics,
		Pattern: req.Pattern, MaxRecords: int(req.MaxRecords), MaxBytes: int(req.MaxBytes),
		MaxWait: time.Duration(req.MaxWaitMs) * time.Millisecond, ClientID: req.ClientId, ClientHost: peerHost(ctx),
		Acks: fromPBShareAcks(req.Acks), MayRead: h.s.authz.topicReader(ctx)})
	if err != nil {
		return nil, err
	}
	out := &skiffpb.ShareFetchResponse{MemberId: resp.MemberID, Paused: resp.Paused, PausedReason: resp.PausedReason,
		LockTimeoutMs: int32(resp.LockTimeout / time.Millisecond)}
	if len(req.Acks) > 0 {
		out.AckResults = toPBShareAckResults(req.Acks, resp.AckResults)
	}
	for _, r := range resp.Records {
		out.Records = append(out.Records, &skiffpb.ShareRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Record.Offset,
			Key: r.Record.Key, KeyNull: r.Record.Key == nil, Value: r.Record.Value, ValueNull: r.Record.Value == nil,
			Headers: toPBHeaders(r.Record.Headers), TimestampMs: r.Record.Timestamp, DeliveryCount: r.DeliveryCount,
			LockUntilMs: r.LockUntil.UnixMilli()})
	}
	return out, nil
}

func (h *shareService) ShareAcknowledge(ctx context.Context, req *skiffpb.ShareAckRequest) (*skiffpb.ShareAckResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	if len(req.Acks) == 0 {
		return nil, invalid("acks", "no acknowledgements")
	}
	results, err := c.ShareAcknowledge(ctx, req.Group, req.MemberId, fromPBShareAcks(req.Acks))
	if err != nil {
		return nil, err
	}
	return &skiffpb.ShareAckResponse{Results: toPBShareAckResults(req.Acks, results)}, nil
}

// fromPBShareAcks converts acknowledgements; errors longer than 4 KiB are
// cut (they are kept in the replicated state).
func fromPBShareAcks(in []*skiffpb.ShareAck) []consumergroup.ShareAck {
	if len(in) == 0 {
		return nil
	}
	acks := make([]consumergroup.ShareAck, len(in))
	for i, a := range in {
		acks[i] = consumergroup.ShareAck{TopicPartition: consumergroup.TopicPartition{Topic: a.Topic, Partition: a.Partition},
			Offset: a.Offset, Type: consumergroup.ShareAckType(a.Type), Delay: time.Duration(a.DelayMs) * time.Millisecond, Error: a.Error}
		if a.DelayMs < 0 {
			acks[i].Delay = -1
		}
		if len(a.Error) > 4096 {
			acks[i].Error = a.Error[:4096]
		}
	}
	return acks
}

// toPBShareAckResults pairs each acknowledgement with its outcome. A
// result the coordinator did not give (it never does so) is an error, not
// a silent success.
func toPBShareAckResults(acks []*skiffpb.ShareAck, results []consumergroup.ShareAckResult) []*skiffpb.ShareAckResult {
	out := make([]*skiffpb.ShareAckResult, 0, len(acks))
	for i, a := range acks {
		res := &skiffpb.ShareAckResult{Topic: a.Topic, Partition: a.Partition, Offset: a.Offset}
		if i >= len(results) {
			res.ErrorReason, res.Error = "NO_RESULT", "the coordinator gave no result for this acknowledgement"
			out = append(out, res)
			continue
		}
		r := results[i]
		res.LockUntilMs = msOf(r.LockUntil)
		if r.Err != nil {
			res.Error = r.Err.Error()
			switch {
			case errors.Is(r.Err, consumergroup.ErrNotHeld):
				res.ErrorReason = "NOT_HELD"
			case errors.Is(r.Err, consumergroup.ErrLockExpired):
				res.ErrorReason = "LOCK_EXPIRED"
			case errors.Is(r.Err, consumergroup.ErrUnknownRecord):
				res.ErrorReason = "UNKNOWN_RECORD"
			default:
				res.ErrorReason = ReasonInvalidArgument
			}
		}
		out = append(out, res)
	}
	return out
}

func (h *shareService) ShareLeave(ctx context.Context, req *skiffpb.ShareLeaveRequest) (*skiffpb.ShareLeaveResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	n, err := c.ShareLeave(ctx, req.Group, req.MemberId)
	if err != nil {
		return nil, err
	}
	return &skiffpb.ShareLeaveResponse{Released: int32(n)}, nil
}

func (h *shareService) ShareInspect(ctx context.Context, req *skiffpb.ShareInspectRequest) (*skiffpb.ShareInspectResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	st, err := c.ShareInspect(ctx, req.Group, consumergroup.TopicPartition{Topic: req.Topic, Partition: req.Partition}, req.Offset)
	if err != nil {
		return nil, err
	}
	return &skiffpb.ShareInspectResponse{State: st.State, DeliveryCount: st.DeliveryCount, LockHolder: st.LockHolder,
		LockUntilMs: msOf(st.LockUntil), VisibleAtMs: msOf(st.VisibleAt), KeyQuarantined: st.KeyQuarantined, Key: st.Key,
		LastError: st.LastError, FirstDeliveryMs: msOf(st.FirstDelivery), LastDeliveryMs: msOf(st.LastDelivery),
		StartOffset: st.StartOffset, BlockedBy: st.BlockedBy}, nil
}

func (h *shareService) DescribeShareGroup(ctx context.Context, req *skiffpb.DescribeShareGroupRequest) (*skiffpb.DescribeShareGroupResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	d, err := c.DescribeShareGroup(ctx, req.Group)
	if err != nil {
		return nil, err
	}
	out := &skiffpb.DescribeShareGroupResponse{Group: d.Group, Config: d.Config, Paused: d.Paused, PausedReason: d.PausedReason,
		Coordinator: h.s.node.ID()}
	for _, m := range d.Members {
		out.Members = append(out.Members, &skiffpb.ShareGroupMember{MemberId: m.MemberID, ClientId: m.ClientID,
			ClientHost: m.ClientHost, InFlight: int32(m.InFlight), LastSeenMs: msOf(m.LastSeen)})
	}
	visible := h.s.authz.topicDescriber(ctx)
	for _, p := range d.Partitions {
		if !visible(p.Topic) {
			continue // describe on the group does not reveal the topics it reads
		}
		out.Partitions = append(out.Partitions, &skiffpb.SharePartitionState{Topic: p.Topic, Partition: p.Partition,
			StartOffset: p.StartOffset, HighWatermark: p.HighWatermark, InFlight: int32(p.InFlight), Available: p.Available,
			Acked: p.Acked, Redeliveries: p.Redeliveries, DeadLettered: p.DeadLettered, Lag: p.Lag,
			OldestUnackedAgeSeconds: p.OldestUnackedAge.Seconds(), QuarantinedKeys: p.QuarantinedKeys})
	}
	return out, nil
}

func (h *shareService) AlterShareGroup(ctx context.Context, req *skiffpb.AlterShareGroupRequest) (*skiffpb.AlterShareGroupResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	cfg, err := c.AlterShareGroup(ctx, req.Group, req.Set, req.Resume)
	if err != nil {
		return nil, err
	}
	return &skiffpb.AlterShareGroupResponse{Config: cfg}, nil
}

func (h *shareService) ListDeadLetters(ctx context.Context, req *skiffpb.ListDeadLettersRequest) (*skiffpb.ListDeadLettersResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	dls, err := c.ListDeadLetters(ctx, req.Group, req.Topic)
	if err != nil {
		return nil, err
	}
	out := &skiffpb.ListDeadLettersResponse{}
	// A named topic was checked by the access rule; without one, the
	// answer keeps the dead letters of the topics the principal may read,
	// and says nothing of the others.
	mayRead := h.s.authz.topicReader(ctx)
	for _, d := range dls {
		if mayRead != nil && !mayRead(d.Topic) {
			continue
		}
		pd := &skiffpb.DeadLetter{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, DlqTopic: d.DLQTopic,
			DlqPartition: d.DLQPartition, DlqOffset: d.DLQOffset, State: d.State, DeliveryCount: d.DeliveryCount,
			LastError: d.LastError, FirstDeliveryMs: msOf(d.FirstDelivery), LastDeliveryMs: msOf(d.LastDelivery),
			RedriveOffset: d.RedriveOffset}
		if d.Record != nil {
			pd.Key, pd.KeyNull, pd.Value, pd.Headers = d.Record.Key, d.Record.Key == nil, d.Record.Value, toPBHeaders(d.Record.Headers)
		}
		out.DeadLetters = append(out.DeadLetters, pd)
	}
	return out, nil
}

func (h *shareService) ResolveDeadLetters(ctx context.Context, req *skiffpb.ResolveDeadLettersRequest) (*skiffpb.ResolveDeadLettersResponse, error) {
	c, err := h.coordinator()
	if err != nil {
		return nil, err
	}
	n, err := c.ResolveDeadLetters(ctx, req.Group, req.Topic, req.DlqOffsets, req.All, req.Action == skiffpb.DeadLetterAction_DEAD_LETTER_DISCARD)
	if err != nil {
		return nil, err
	}
	return &skiffpb.ResolveDeadLettersResponse{Count: int32(n)}, nil
}
