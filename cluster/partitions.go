package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
)

// CreatePartitions grows a topic to total partitions, placing the new ones
// as CreateTopic places a topic's (over the live nodes not being
// decommissioned, evening out replicas and preferred leaders). A topic
// never shrinks: a total at or below the current count is refused with an
// *InvalidArgumentError that says so. Consumer groups see the new
// partitions at their next heartbeat (the partition count is part of a
// group's topology) and assign them.
func (n *Node) CreatePartitions(ctx context.Context, name string, total int) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(name); err != nil {
		return nil, err
	}
	limits := n.cfg.Limits
	if err := limits.ValidatePartitions(total); err != nil {
		return nil, err
	}
	st := n.awaitRegistrations(ctx)
	t, ok := st.Topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, name)
	}
	if metadata.IsInternalTopic(t) {
		return nil, &metadata.InternalTopicError{Topic: name, Action: "add partitions to it"}
	}
	have := len(t.Partitions)
	switch {
	case total < have:
		return nil, &metadata.InvalidArgumentError{Field: "partitions", Reason: fmt.Sprintf(
			"%d is fewer than the %d partitions topic %s has: partitions can only be added, never removed "+
				"(removing one would drop its records and send its keys elsewhere)", total, have, name)}
	case total == have:
		return nil, &metadata.InvalidArgumentError{Field: "partitions", Reason: fmt.Sprintf(
			"topic %s already has %d partitions: give a larger count to add partitions", name, have)}
	}
	if limits.MaxTotalPartitions > 0 {
		if cur := st.PartitionCount(); cur+total-have > limits.MaxTotalPartitions {
			return nil, &metadata.LimitExceededError{Limit: "max-partitions", What: "partitions", Current: cur, Adding: total - have, Max: limits.MaxTotalPartitions}
		}
	}
	rf := t.ReplicationFactor()
	assign, err := placement.AssignTopic(n.placeableNodes(st), st.Load(), total-have, rf)
	var few *placement.NotEnoughNodesError
	if errors.As(err, &few) {
		return nil, metadata.Refused("topic %s has replication factor %d but only %d nodes can take a new replica: start more nodes",
			name, few.Want, few.Have)
	}
	if err != nil {
		return nil, err
	}
	parts := make([]metadata.PartitionAssignment, len(assign))
	for i, replicas := range assign {
		parts[i] = metadata.PartitionAssignment{Partition: int32(have + i), Replicas: replicas}
	}
	res, err := n.proposeMeta(ctx, metadata.CreatePartitions{Topic: name, TopicID: t.ID, Partitions: parts,
		MaxTotalPartitions: limits.MaxTotalPartitions})
	if err != nil {
		return nil, err
	}
	return n.waitTopic(ctx, name, func(t *metadata.Topic) bool { return n.meta.fsm.State().Index >= res.Index })
}

// ReassignPartition replaces a partition's replica list by hand (skiff
// topic reassign). The first replica becomes the preferred leader. Every
// replica must be a registered node that gossip sees alive and that is
// not being decommissioned: a replica placed on a dead node would leave
// the partition under-replicated until the controller moved it again.
// The leader adds the new replicas, lets them catch up, then removes the
// old ones, so the partition stays writable throughout.
func (n *Node) ReassignPartition(ctx context.Context, topic string, p int32, replicas []string) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(topic); err != nil {
		return nil, err
	}
	st := n.meta.fsm.State()
	t, ok := st.Topics[topic]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, topic)
	}
	if metadata.IsInternalTopic(t) {
		return nil, &metadata.InternalTopicError{Topic: topic, Action: "reassign its partitions (the cluster places them)"}
	}
	if p < 0 || int(p) >= len(t.Partitions) {
		return nil, &metadata.InvalidArgumentError{Field: "partition",
			Reason: fmt.Sprintf("%d out of range: topic %s has partitions 0..%d", p, topic, len(t.Partitions)-1)}
	}
	if err := n.cfg.Limits.ValidateReplicationFactor(len(replicas)); err != nil {
		return nil, &metadata.InvalidArgumentError{Field: "replicas", Reason: fmt.Sprintf("%d replicas: must be 1..%d", len(replicas), n.cfg.Limits.MaxReplicationFactor)}
	}
	dead := n.deadSince()
	for i, id := range replicas {
		if slices.Contains(replicas[:i], id) {
			return nil, &metadata.InvalidArgumentError{Field: "replicas", Reason: fmt.Sprintf("node %q listed twice: replicas must be distinct", id)}
		}
		if _, ok := st.Brokers[id]; !ok {
			return nil, metadata.Refused("node %q is unknown: the registered nodes are %s", id, strings.Join(st.BrokerIDs(), ", "))
		}
		if since, gone := dead[id]; gone {
			return nil, metadata.Refused("node %s is dead (gossip: down since %s): a replica cannot be moved to it; pick a live node",
				id, since.UTC().Format("15:04:05"))
		}
		if st.Decommissioning(id) {
			return nil, metadata.Refused("node %s is being decommissioned: a replica cannot be moved to it (skiff node recommission %s first)", id, id)
		}
	}
	res, err := n.proposeMeta(ctx, metadata.ReassignPartition{Topic: topic, TopicID: t.ID, Partition: p, Replicas: slices.Clone(replicas)})
	if err != nil {
		return nil, err
	}
	return n.waitTopic(ctx, topic, func(*metadata.Topic) bool { return n.meta.fsm.State().Index >= res.Index })
}
