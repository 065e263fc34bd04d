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
		ci.Brokers = append(ci.Brokers, BrokerInfo{ID: b.GetId(), Addr: b.GetGrpcAddr(), Rack: b.GetRack(), State: b.GetState()})
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
