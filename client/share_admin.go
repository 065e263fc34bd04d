package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/record"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// ShareGroupMember is one member of a share group.
type ShareGroupMember struct {
	MemberID   string    `json:"member_id"`
	ClientID   string    `json:"client_id,omitempty"`
	ClientHost string    `json:"client_host,omitempty"`
	InFlight   int       `json:"in_flight"` // records it holds now
	LastSeen   time.Time `json:"last_seen,omitzero"`
}

// SharePartitionState is a share group's progress in one partition.
type SharePartitionState struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// StartOffset is the first record not yet done (acked or dead-lettered);
	// every record before it is done.
	StartOffset   int64 `json:"start_offset"`
	HighWatermark int64 `json:"high_watermark"` // -1: unknown
	InFlight      int   `json:"in_flight"`      // acquired now
	Available     int64 `json:"available"`      // not yet done and not in flight
	Acked         int64 `json:"acked"`          // acknowledged so far (lifetime)
	Redeliveries  int64 `json:"redeliveries"`
	DeadLettered  int64 `json:"dead_lettered"`
	// Lag counts records not yet done: the queue depth.
	Lag                     int64   `json:"lag"`
	OldestUnackedAgeSeconds float64 `json:"oldest_unacked_age_seconds"`
	// QuarantinedKeys are keys whose later records wait for a dead letter
	// to be redriven or discarded (key-ordered mode).
	QuarantinedKeys [][]byte `json:"quarantined_keys,omitempty"`
}

// ShareGroupDescription is a share group's settings, members and
// per-partition state.
type ShareGroupDescription struct {
	Group string `json:"group"`
	// Config holds every setting (lock.timeout.ms, max.deliveries, ...)
	// with its current value.
	Config       map[string]string     `json:"config"`
	Paused       bool                  `json:"paused"`
	PausedReason string                `json:"paused_reason,omitempty"`
	Members      []ShareGroupMember    `json:"members"`
	Partitions   []SharePartitionState `json:"partitions"`
	Coordinator  string                `json:"coordinator"`
}

// TotalLag sums the lag of every partition.
func (d ShareGroupDescription) TotalLag() int64 {
	return sumLag(d.Partitions, func(p SharePartitionState) int64 { return p.Lag })
}

// DescribeShareGroup returns a share group's settings, members and the
// state of each of its share-partitions. An unknown group is
// ErrGroupNotFound.
func (c *Client) DescribeShareGroup(ctx context.Context, group string) (ShareGroupDescription, error) {
	if err := needGroup(group); err != nil {
		return ShareGroupDescription{}, err
	}
	var resp *skiffpb.DescribeShareGroupResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).DescribeShareGroup(ctx, &skiffpb.DescribeShareGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return ShareGroupDescription{}, fmt.Errorf("describe share group %s: %w", group, err)
	}
	d := ShareGroupDescription{Group: resp.GetGroup(), Config: map[string]string{}, Paused: resp.GetPaused(),
		PausedReason: resp.GetPausedReason(), Members: []ShareGroupMember{}, Partitions: []SharePartitionState{},
		Coordinator: resp.GetCoordinator()}
	for k, v := range resp.GetConfig() {
		d.Config[k] = v
	}
	for _, m := range resp.GetMembers() {
		sm := ShareGroupMember{MemberID: m.GetMemberId(), ClientID: m.GetClientId(), ClientHost: m.GetClientHost(), InFlight: int(m.GetInFlight())}
		sm.LastSeen = fromUnixMilli(m.GetLastSeenMs())
		d.Members = append(d.Members, sm)
	}
	for _, p := range resp.GetPartitions() {
		d.Partitions = append(d.Partitions, SharePartitionState{Topic: p.GetTopic(), Partition: p.GetPartition(),
			StartOffset: p.GetStartOffset(), HighWatermark: p.GetHighWatermark(), InFlight: int(p.GetInFlight()),
			Available: p.GetAvailable(), Acked: p.GetAcked(), Redeliveries: p.GetRedeliveries(), DeadLettered: p.GetDeadLettered(),
			Lag: p.GetLag(), OldestUnackedAgeSeconds: p.GetOldestUnackedAgeSeconds(), QuarantinedKeys: p.GetQuarantinedKeys()})
	}
	return d, nil
}

// fromUnixMilli is the time of a millisecond field, zero for 0 (unset).
func fromUnixMilli(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// AlterShareGroup changes a share group's settings (keys as listed in
// DescribeShareGroup's Config: lock.timeout.ms, max.deliveries,
// key.ordered, dlq.topic, backoff.initial.ms, backoff.max.ms,
// backoff.multiplier, backoff.jitter, dlq.flood.per.minute,
// max.inflight, auto.offset.reset) and, with resume, lifts a pause of the
// DLQ flood breaker. It returns the whole configuration after the change.
// A bad key or value is an *InvalidArgumentError.
func (c *Client) AlterShareGroup(ctx context.Context, group string, set map[string]string, resume bool) (map[string]string, error) {
	if err := needGroup(group); err != nil {
		return nil, err
	}
	var resp *skiffpb.AlterShareGroupResponse
	// Setting the same values again is harmless: repeat a lost outcome.
	_, err := c.shareGroupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).AlterShareGroup(ctx, &skiffpb.AlterShareGroupRequest{Group: group, Set: set, Resume: resume})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("alter share group %s: %w", group, err)
	}
	out := make(map[string]string, len(resp.GetConfig()))
	for k, v := range resp.GetConfig() {
		out[k] = v
	}
	return out, nil
}

// DeadLetter is a record a share group sent to its dead-letter topic, with
// its provenance and payload.
type DeadLetter struct {
	// Topic, Partition and Offset are where the record came from.
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Offset       int64  `json:"offset"`
	DLQTopic     string `json:"dlq_topic"`
	DLQPartition int32  `json:"dlq_partition"`
	// DLQOffset names the dead letter in ResolveDeadLetters.
	DLQOffset int64 `json:"dlq_offset"`
	// State is pending, redriven or discarded.
	State         string    `json:"state"`
	DeliveryCount int       `json:"delivery_count"`
	LastError     string    `json:"last_error,omitempty"`
	FirstDelivery time.Time `json:"first_delivery,omitzero"`
	LastDelivery  time.Time `json:"last_delivery,omitzero"`
	// Key is nil for a record without a key.
	Key     []byte          `json:"key"`
	Value   []byte          `json:"value"`
	Headers []record.Header `json:"headers,omitempty"`
	// RedriveOffset is the offset of the copy in the source topic, after
	// a redrive.
	RedriveOffset int64 `json:"redrive_offset,omitempty"`
}

// ListDeadLetters lists a share group's dead letters from source topic
// (every topic when topic is ""), pending and resolved ones alike.
func (c *Client) ListDeadLetters(ctx context.Context, group, topic string) ([]DeadLetter, error) {
	if err := needGroup(group); err != nil {
		return nil, err
	}
	var resp *skiffpb.ListDeadLettersResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).ListDeadLetters(ctx, &skiffpb.ListDeadLettersRequest{Group: group, Topic: topic})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters of share group %s: %w", group, err)
	}
	out := make([]DeadLetter, 0, len(resp.GetDeadLetters()))
	for _, d := range resp.GetDeadLetters() {
		out = append(out, DeadLetter{Topic: d.GetTopic(), Partition: d.GetPartition(), Offset: d.GetOffset(),
			DLQTopic: d.GetDlqTopic(), DLQPartition: d.GetDlqPartition(), DLQOffset: d.GetDlqOffset(), State: d.GetState(),
			DeliveryCount: int(d.GetDeliveryCount()), LastError: d.GetLastError(),
			FirstDelivery: fromUnixMilli(d.GetFirstDeliveryMs()), LastDelivery: fromUnixMilli(d.GetLastDeliveryMs()),
			Key: nonNullBytes(d.GetKey(), d.GetKeyNull()), Value: d.GetValue(), Headers: fromPBHeaders(d.GetHeaders()),
			RedriveOffset: d.GetRedriveOffset()})
	}
	return out, nil
}

// ResolveDeadLetters redrives (back to the source topic, delivered again
// before later records of its key) or, with discard, drops the dead
// letters of source topic named by their DLQ offsets, or every pending
// one with all, releasing their quarantined keys. It returns how many
// were resolved. A call whose outcome was lost in a coordinator failover
// is not repeated (a repeat would count nothing): it fails with
// ErrIndeterminate, and ListDeadLetters shows what happened.
func (c *Client) ResolveDeadLetters(ctx context.Context, group, topic string, dlqOffsets []int64, all bool, discard bool) (int, error) {
	verb := "redrive"
	action := skiffpb.DeadLetterAction_DEAD_LETTER_REDRIVE
	if discard {
		verb, action = "discard", skiffpb.DeadLetterAction_DEAD_LETTER_DISCARD
	}
	switch {
	case group == "":
		return 0, needGroup(group)
	case topic == "":
		return 0, &InvalidArgumentError{Field: "topic", Reason: "the source topic is required"}
	case all == (len(dlqOffsets) > 0):
		return 0, &InvalidArgumentError{Field: "dlq_offsets", Reason: "give either DLQ offsets or all, not both or neither"}
	}
	var resp *skiffpb.ResolveDeadLettersResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).ResolveDeadLetters(ctx, &skiffpb.ResolveDeadLettersRequest{
			Group: group, Topic: topic, DlqOffsets: dlqOffsets, All: all, Action: action})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s dead letters of share group %s, topic %s: %w", verb, group, topic, err)
	}
	return int(resp.GetCount()), nil
}

// ShareRecordState is what a share group knows of one record, from
// InspectShareRecord.
type ShareRecordState struct {
	// State is available, acquired, acknowledged, dead (on its way to the
	// DLQ), dead-lettered, not-delivered-yet or below-start (done and
	// forgotten).
	State         string    `json:"state"`
	DeliveryCount int       `json:"delivery_count"`
	LockHolder    string    `json:"lock_holder,omitempty"`
	LockUntil     time.Time `json:"lock_until,omitzero"`
	// VisibleAt is the next time the record may be delivered (a delay, a
	// backoff, a not-before header); zero when it may be delivered now.
	VisibleAt      time.Time `json:"visible_at,omitzero"`
	KeyQuarantined bool      `json:"key_quarantined"`
	Key            []byte    `json:"key"`
	LastError      string    `json:"last_error,omitempty"`
	FirstDelivery  time.Time `json:"first_delivery,omitzero"`
	LastDelivery   time.Time `json:"last_delivery,omitzero"`
	// StartOffset is the share-partition's start offset.
	StartOffset int64 `json:"start_offset"`
	// BlockedBy says why an available record is not delivered now ("" if
	// it is deliverable).
	BlockedBy string `json:"blocked_by,omitempty"`
}

// InspectShareRecord shows a record's state in a share group without
// acquiring it.
func (c *Client) InspectShareRecord(ctx context.Context, group, topic string, partition int32, offset int64) (ShareRecordState, error) {
	if err := needGroup(group); err != nil {
		return ShareRecordState{}, err
	}
	if topic == "" {
		return ShareRecordState{}, &InvalidArgumentError{Field: "topic", Reason: "required"}
	}
	var resp *skiffpb.ShareInspectResponse
	err := c.groupCall(ctx, group, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewShareGroupsClient(cc).ShareInspect(ctx, &skiffpb.ShareInspectRequest{Group: group, Topic: topic, Partition: partition, Offset: offset})
		return err
	})
	if err != nil {
		return ShareRecordState{}, fmt.Errorf("inspect %s/%d@%d in share group %s: %w", topic, partition, offset, group, err)
	}
	return ShareRecordState{State: resp.GetState(), DeliveryCount: int(resp.GetDeliveryCount()), LockHolder: resp.GetLockHolder(),
		LockUntil: fromUnixMilli(resp.GetLockUntilMs()), VisibleAt: fromUnixMilli(resp.GetVisibleAtMs()),
		KeyQuarantined: resp.GetKeyQuarantined(), Key: resp.GetKey(), LastError: resp.GetLastError(),
		FirstDelivery: fromUnixMilli(resp.GetFirstDeliveryMs()), LastDelivery: fromUnixMilli(resp.GetLastDeliveryMs()),
		StartOffset: resp.GetStartOffset(), BlockedBy: resp.GetBlockedBy()}, nil
}

// needGroup refuses a share admin call without a group name before it
// reaches the network.
func needGroup(group string) error {
	if group == "" {
		return &InvalidArgumentError{Field: "group", Reason: "a share group name is required"}
	}
	return nil
}
