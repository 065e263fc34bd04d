package client

import (
	"context"
	"fmt"
	"math"
	"sort"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// TopicInfo describes a topic.
type TopicInfo struct {
	Name string
	ID   uint64
	// Internal topics (such as __consumer_offsets) belong to Skiff itself.
	Internal bool
	// Configs holds the topic's configuration overrides (retention,
	// durability, max.message.bytes, ...).
	Configs    map[string]string
	Partitions []PartitionInfo
}

// PartitionInfo describes one partition of a topic.
type PartitionInfo struct {
	Partition int32
	// Leader is the id of the broker leading the partition, empty while an
	// election is in progress; LeaderAddr is its gRPC address.
	Leader, LeaderAddr string
	// Replicas lists the broker ids holding the partition, the preferred
	// leader first; InSync those keeping up with the leader.
	Replicas, InSync []string
	// HighWatermark is the offset the next record will get; LogStartOffset
	// the first offset still in the log.
	HighWatermark, LogStartOffset int64
	// DirtyRatio, for a compacted topic, is the share of the partition's
	// records that are obsolete (not the latest of their key), as measured
	// by the answering broker's replica; -1 when unknown there. 0 for other
	// topics.
	DirtyRatio float64
}

// ClusterInfo summarises the cluster.
type ClusterInfo struct {
	Brokers      []BrokerInfo
	ControllerID string
	// Topics and Partitions count what exists; UnderReplicatedPartitions
	// those with fewer in-sync replicas than replicas, OfflinePartitions
	// those without a leader.
	Topics, Partitions, UnderReplicatedPartitions, OfflinePartitions int
}

// BrokerInfo describes one node.
type BrokerInfo struct {
	ID, Addr, Rack string
	// State is alive, dead or left, as gossip sees the node.
	State string
	// Mode is active, maintenance or decommissioning: what operators
	// asked of the node (skiff node ...).
	Mode string
}

// CreateTopic creates a topic and returns it once it exists. configs may
// be nil. An existing topic is ErrTopicExists; a bad name, partition count
// or replication factor an *InvalidArgumentError naming the field.
func (c *Client) CreateTopic(ctx context.Context, name string, partitions, replicationFactor int, configs map[string]string) (TopicInfo, error) {
	if partitions < 0 || partitions > math.MaxInt32 {
		return TopicInfo{}, &InvalidArgumentError{Field: "partitions", Reason: fmt.Sprintf("%d out of range", partitions)}
	}
	if replicationFactor < 0 || replicationFactor > math.MaxInt32 {
		return TopicInfo{}, &InvalidArgumentError{Field: "replication_factor", Reason: fmt.Sprintf("%d out of range", replicationFactor)}
	}
	var tm *skiffpb.TopicMetadata
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		tm, err = skiffpb.NewAdminClient(cc).CreateTopic(ctx, &skiffpb.CreateTopicRequest{
			Name: name, Partitions: int32(partitions), ReplicationFactor: int32(replicationFactor), Configs: configs,
		})
		return err
	})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("create topic %q: %w", name, err)
	}
	c.meta.store(tm)
	return topicInfo(tm), nil
}

// DeleteTopic deletes a topic and all its records. An unknown topic is
// ErrUnknownTopic.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := skiffpb.NewAdminClient(cc).DeleteTopic(ctx, &skiffpb.DeleteTopicRequest{Name: name})
		return err
	})
	c.meta.forget(name)
	if err != nil {
		return fmt.Errorf("delete topic %q: %w", name, err)
	}
	return nil
}

// DescribeTopic returns a topic with its partitions' leaders, replicas and
// offsets. An unknown topic is ErrUnknownTopic.
func (c *Client) DescribeTopic(ctx context.Context, name string) (TopicInfo, error) {
	var tm *skiffpb.TopicMetadata
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		tm, err = skiffpb.NewAdminClient(cc).DescribeTopic(ctx, &skiffpb.DescribeTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	c.meta.store(tm)
	return topicInfo(tm), nil
}

// ListTopics returns every topic, sorted by name.
func (c *Client) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	var resp *skiffpb.ListTopicsResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).ListTopics(ctx, &skiffpb.ListTopicsRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	topics := make([]TopicInfo, 0, len(resp.GetTopics()))
	for _, tm := range resp.GetTopics() {
		topics = append(topics, topicInfo(tm))
	}
	sort.Slice(topics, func(i, j int) bool { return topics[i].Name < topics[j].Name })
	return topics, nil
}

// AlterTopicConfig sets the configs in set and returns those in del to
// their defaults, in one step; it returns the topic as it is afterwards.
func (c *Client) AlterTopicConfig(ctx context.Context, name string, set map[string]string, del []string) (TopicInfo, error) {
	var tm *skiffpb.TopicMetadata
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		tm, err = skiffpb.NewAdminClient(cc).AlterTopicConfig(ctx, &skiffpb.AlterTopicConfigRequest{Name: name, Set: set, Delete: del})
		return err
	})
	if err != nil {
		return TopicInfo{}, fmt.Errorf("alter topic %q: %w", name, err)
	}
	return topicInfo(tm), nil
}

// DescribeCluster returns the brokers, the controller and partition
// health counts.
func (c *Client) DescribeCluster(ctx context.Context) (ClusterInfo, error) {
	var resp *skiffpb.DescribeClusterResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).DescribeCluster(ctx, &skiffpb.DescribeClusterRequest{})
		return err
	})
	if err != nil {
		return ClusterInfo{}, fmt.Errorf("describe cluster: %w", err)
	}
	ci := ClusterInfo{
		ControllerID:              resp.GetControllerId(),
		Topics:                    int(resp.GetTopics()),
		Partitions:                int(resp.GetPartitions()),
		UnderReplicatedPartitions: int(resp.GetUnderReplicatedPartitions()),
		OfflinePartitions:         int(resp.GetOfflinePartitions()),
	}
	for _, b := range resp.GetBrokers() {
		ci.Brokers = append(ci.Brokers, BrokerInfo{ID: b.GetId(), Addr: b.GetGrpcAddr(), Rack: b.GetRack(), State: b.GetState(), Mode: b.GetMode()})
	}
	sort.Slice(ci.Brokers, func(i, j int) bool { return ci.Brokers[i].ID < ci.Brokers[j].ID })
	return ci, nil
}

func topicInfo(tm *skiffpb.TopicMetadata) TopicInfo {
	ti := TopicInfo{Name: tm.GetName(), ID: tm.GetTopicId(), Internal: tm.GetInternal(), Configs: tm.GetConfigs()}
	if ti.Configs == nil {
		ti.Configs = map[string]string{}
	}
	for _, pm := range tm.GetPartitions() {
		ti.Partitions = append(ti.Partitions, PartitionInfo{
			Partition:      pm.GetPartition(),
			Leader:         pm.GetLeaderId(),
			LeaderAddr:     pm.GetLeaderAddr(),
			Replicas:       pm.GetReplicas(),
			InSync:         pm.GetInSync(),
			HighWatermark:  pm.GetHighWatermark(),
			LogStartOffset: pm.GetLogStartOffset(),
			DirtyRatio:     pm.GetDirtyRatio(),
		})
	}
	sort.Slice(ti.Partitions, func(i, j int) bool { return ti.Partitions[i].Partition < ti.Partitions[j].Partition })
	return ti
}

// CreatePartitions grows a topic to total partitions and returns it. A
// total at or below the current count is an *InvalidArgumentError (topics
// never shrink); an internal topic is ErrInternalTopic. Producers of this
// client see the new partitions at once; consumer groups at their next
// heartbeat.
func (c *Client) CreatePartitions(ctx context.Context, name string, total int) (TopicInfo, error) {
	if total < 1 || total > math.MaxInt32 {
		return TopicInfo{}, &InvalidArgumentError{Field: "partitions", Reason: fmt.Sprintf("%d out of range", total)}
	}
	var tm *skiffpb.TopicMetadata
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		tm, err = skiffpb.NewAdminClient(cc).CreatePartitions(ctx, &skiffpb.CreatePartitionsRequest{Name: name, Partitions: int32(total)})
		return err
	})
	c.meta.forget(name)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("add partitions to topic %q: %w", name, err)
	}
	return topicInfo(tm), nil
}

// ReassignPartition replaces a partition's replicas (the first becomes
// its preferred leader) and returns the topic as assigned; the move itself
// completes in the background (watch DescribeTopic's in-sync replicas). A
// dead or decommissioning node is ErrRefused, an unknown one ErrRefused
// naming the registered nodes.
func (c *Client) ReassignPartition(ctx context.Context, topic string, partition int32, replicas []string) (TopicInfo, error) {
	var tm *skiffpb.TopicMetadata
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		tm, err = skiffpb.NewAdminClient(cc).ReassignPartition(ctx, &skiffpb.ReassignPartitionRequest{Topic: topic, Partition: partition, Replicas: replicas})
		return err
	})
	c.meta.forget(topic)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("reassign %s/%d: %w", topic, partition, err)
	}
	return topicInfo(tm), nil
}

// NodeInfo is one node as ListNodes describes it.
type NodeInfo struct {
	ID, Addr, Rack string
	// State is what gossip says: alive, suspect, dead, left or unknown.
	State string
	// Mode is active, maintenance, decommissioning or decommissioned.
	Mode string
	// Maintenance is set while leadership is kept off the node.
	Maintenance bool
	// Replicas is how many partition replicas the node is assigned,
	// Leaders how many partitions it leads now.
	Replicas, Leaders int
	// Meta is the node's role in the metadata group: voter, nonvoter, or
	// "" when it is not a member.
	Meta string
	// Blocked says why a decommission cannot progress ("" otherwise).
	Blocked string
}

// ListNodes returns every registered node, sorted by id.
func (c *Client) ListNodes(ctx context.Context) ([]NodeInfo, error) {
	var resp *skiffpb.ListNodesResponse
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).ListNodes(ctx, &skiffpb.ListNodesRequest{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]NodeInfo, 0, len(resp.GetNodes()))
	for _, n := range resp.GetNodes() {
		out = append(out, nodeInfo(n))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// NodeModeChange is what SetNodeMode asks of a node.
type NodeModeChange int

// The changes SetNodeMode accepts.
const (
	// Decommission moves every replica off the node, then removes it from
	// the metadata group. Asking again resumes; refused (ErrRefused) when
	// no other node could take its replicas.
	Decommission NodeModeChange = iota + 1
	// Recommission cancels a decommission.
	Recommission
	// MaintenanceOn drains partition and metadata leadership off the node
	// and keeps it off.
	MaintenanceOn
	// MaintenanceOff ends maintenance.
	MaintenanceOff
)

// SetNodeMode applies change to node id and returns the node as it is
// then. An unknown id is ErrUnknownNode.
func (c *Client) SetNodeMode(ctx context.Context, id string, change NodeModeChange) (NodeInfo, error) {
	var pc skiffpb.NodeModeChange
	switch change {
	case Decommission:
		pc = skiffpb.NodeModeChange_NODE_DECOMMISSION
	case Recommission:
		pc = skiffpb.NodeModeChange_NODE_RECOMMISSION
	case MaintenanceOn:
		pc = skiffpb.NodeModeChange_NODE_MAINTENANCE_ON
	case MaintenanceOff:
		pc = skiffpb.NodeModeChange_NODE_MAINTENANCE_OFF
	default:
		return NodeInfo{}, &InvalidArgumentError{Field: "change", Reason: fmt.Sprintf("unknown node mode change %d", change)}
	}
	var ni *skiffpb.NodeInfo
	err := c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		ni, err = skiffpb.NewAdminClient(cc).SetNodeMode(ctx, &skiffpb.SetNodeModeRequest{Node: id, Change: pc})
		return err
	})
	if err != nil {
		return NodeInfo{}, fmt.Errorf("node %s: %w", id, err)
	}
	return nodeInfo(ni), nil
}

func nodeInfo(n *skiffpb.NodeInfo) NodeInfo {
	return NodeInfo{ID: n.GetId(), Addr: n.GetGrpcAddr(), Rack: n.GetRack(), State: n.GetState(), Mode: n.GetMode(),
		Maintenance: n.GetMaintenance(), Replicas: int(n.GetReplicas()), Leaders: int(n.GetLeaders()), Meta: n.GetMeta(), Blocked: n.GetBlocked()}
}

// RebalanceMove is one partition of a rebalance plan: its replicas before
// and after. LeaderOnly moves keep the replicas and change the preferred
// leader (no data is copied).
type RebalanceMove struct {
	Topic      string
	Partition  int32
	From, To   []string
	LeaderOnly bool
}

// Rebalance asks the cluster to even replicas and preferred leaders over
// its live nodes. With dryRun it only returns the plan; otherwise the
// node applies it in the background (applying is then true), a few
// partitions at a time. A rebalance already running through the same
// node is ErrRefused.
func (c *Client) Rebalance(ctx context.Context, dryRun bool) (moves []RebalanceMove, applying bool, err error) {
	var resp *skiffpb.RebalanceResponse
	err = c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewAdminClient(cc).Rebalance(ctx, &skiffpb.RebalanceRequest{DryRun: dryRun})
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("rebalance: %w", err)
	}
	for _, m := range resp.GetMoves() {
		moves = append(moves, RebalanceMove{Topic: m.GetTopic(), Partition: m.GetPartition(), From: m.GetFrom(), To: m.GetTo(), LeaderOnly: m.GetLeaderOnly()})
	}
	return moves, resp.GetApplying(), nil
}
