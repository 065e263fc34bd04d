package rpc

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/partition"
)

// Node is what the server needs from a cluster node. *cluster.Node
// implements it; tests substitute fakes (a node that panics, say).
type Node interface {
	// ID is the node's id.
	ID() string
	// Ready reports whether the node can serve; the health service mirrors it.
	Ready() bool
	// Registry receives the server's metrics.
	Registry() *prometheus.Registry
	// Metadata is the node's current copy of the cluster metadata (read-only).
	Metadata() *metadata.State
	// MetadataWithTopic is Metadata, waited for briefly when topic is not
	// in it yet (a topic just created through another node).
	MetadataWithTopic(ctx context.Context, topic string) *metadata.State
	// BrokerGRPCAddr maps a node id to its client address, "" if unknown.
	BrokerGRPCAddr(id string) string

	// Replica returns this node's replica of a partition. Errors:
	// metadata.ErrUnknownTopic, *metadata.InvalidArgumentError (partition out
	// of range), *partition.NotLeaderError (no replica here).
	Replica(ctx context.Context, topic string, p int32) (*partition.Replica, error)
	// AllocateProducerID hands out a cluster-unique producer id.
	AllocateProducerID(ctx context.Context) (int64, error)

	CreateTopic(ctx context.Context, spec cluster.TopicSpec) (*metadata.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	AlterTopicConfig(ctx context.Context, name string, set map[string]string, del []string) (*metadata.Topic, error)
	// DescribeTopic gathers the partitions' live state from the nodes
	// hosting them: it costs a round of calls to every node.
	DescribeTopic(ctx context.Context, name string) (cluster.TopicDescription, error)
	// Status gathers the cluster's state (also a round of calls).
	Status(ctx context.Context) cluster.ClusterStatus

	// Groups is the node's consumer group coordinator (nil: groups are
	// not served).
	Groups() *consumergroup.Coordinator
	// GroupCoordinator names the node coordinating group.
	GroupCoordinator(ctx context.Context, group string) (string, error)
}

var _ Node = (*cluster.Node)(nil)
