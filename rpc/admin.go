package rpc

import (
	"context"
	"errors"
	"fmt"
	"github.com/skiff-mq/skiff/internal/acl"
	"strings"
	"sync"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adminService serves skiff.v1.Admin.
type adminService struct {
	skiffpb.UnimplementedAdminServer
	s *Server
}

var _ skiffpb.AdminServer = (*adminService)(nil)

// describeConcurrency bounds the topics described at once for Metadata
// and ListTopics (each description is a round of calls to every node).
const describeConcurrency = 4

// Metadata lists the registered brokers and the requested topics (all when
// none are named) with each partition's leader and its gRPC address.
// Named topics that do not exist are left out of the answer. Leaders are
// cached for up to MetadataCacheTTL.
func (a *adminService) Metadata(ctx context.Context, req *skiffpb.MetadataRequest) (*skiffpb.MetadataResponse, error) {
	s := a.s
	for i, name := range req.Topics {
		if err := validateTopic(fmt.Sprintf("topics[%d]", i), name); err != nil {
			return nil, err
		}
	}
	st := s.node.Metadata()
	names := req.Topics
	if len(names) == 0 {
		names = s.authz.filterNames(ctx, acl.Topic, st.TopicNames())
	}
	topics, err := s.topicsMetadata(ctx, st, names)
	if err != nil {
		return nil, err
	}
	cs, err := s.statusCached(ctx)
	if err != nil {
		return nil, err
	}
	return &skiffpb.MetadataResponse{Brokers: s.brokers(ctx, st, cs), Topics: topics, ControllerId: cs.ControllerID}, nil
}

// CreateTopic creates a topic and returns it as placed: replicas assigned,
// leaders not elected yet (empty leader, offsets -1).
func (a *adminService) CreateTopic(ctx context.Context, req *skiffpb.CreateTopicRequest) (*skiffpb.TopicMetadata, error) {
	s := a.s
	if err := s.checkTopicMessageBytes("configs", req.Configs); err != nil {
		return nil, err
	}
	t, err := s.node.CreateTopic(ctx, cluster.TopicSpec{Name: req.Name, Partitions: int(req.Partitions),
		ReplicationFactor: int(req.ReplicationFactor), Configs: req.Configs})
	s.describes.forget(req.Name)
	if err != nil {
		return nil, err
	}
	return s.topicMetadata(ctx, t, nil), nil
}

// DeleteTopic deletes a topic and its data on every node. Internal topics
// cannot be deleted (PERMISSION_DENIED; the metadata FSM refuses too).
func (a *adminService) DeleteTopic(ctx context.Context, req *skiffpb.DeleteTopicRequest) (*skiffpb.DeleteTopicResponse, error) {
	s := a.s
	if err := validateTopic("name", req.Name); err != nil {
		return nil, err
	}
	t, ok := s.node.Metadata().Topics[req.Name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrUnknownTopic, req.Name)
	}
	if metadata.IsInternalTopic(t) {
		return nil, &metadata.InternalTopicError{Topic: t.Name, Action: "delete it"}
	}
	err := s.node.DeleteTopic(ctx, req.Name)
	s.describes.forget(req.Name)
	if err != nil {
		return nil, err
	}
	return &skiffpb.DeleteTopicResponse{}, nil
}

// DescribeTopic returns a topic with its partitions' live state, gathered
// afresh from the nodes.
func (a *adminService) DescribeTopic(ctx context.Context, req *skiffpb.DescribeTopicRequest) (*skiffpb.TopicMetadata, error) {
	s := a.s
	if err := validateTopic("name", req.Name); err != nil {
		return nil, err
	}
	d, err := s.node.DescribeTopic(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	return s.topicMetadata(ctx, d.Topic, &d), nil
}

// ListTopics lists every topic as Metadata does.
func (a *adminService) ListTopics(ctx context.Context, _ *skiffpb.ListTopicsRequest) (*skiffpb.ListTopicsResponse, error) {
	s := a.s
	st := s.node.Metadata()
	topics, err := s.topicsMetadata(ctx, st, s.authz.filterNames(ctx, acl.Topic, st.TopicNames()))
	if err != nil {
		return nil, err
	}
	return &skiffpb.ListTopicsResponse{Topics: topics}, nil
}

// AlterTopicConfig sets config keys and resets others to their defaults.
// Internal topics' configurations are the cluster's (PERMISSION_DENIED).
func (a *adminService) AlterTopicConfig(ctx context.Context, req *skiffpb.AlterTopicConfigRequest) (*skiffpb.TopicMetadata, error) {
	s := a.s
	if err := validateTopic("name", req.Name); err != nil {
		return nil, err
	}
	if t := s.node.Metadata().Topics[req.Name]; metadata.IsInternalTopic(t) || strings.HasPrefix(req.Name, metadata.InternalTopicPrefix) {
		return nil, &metadata.InternalTopicError{Topic: req.Name, Action: "alter its configuration"}
	}
	if err := s.checkTopicMessageBytes("set", req.Set); err != nil {
		return nil, err
	}
	t, err := s.node.AlterTopicConfig(ctx, req.Name, req.Set, req.Delete)
	if err != nil {
		return nil, err
	}
	s.describes.forget(req.Name)
	d, err := s.describeCached(ctx, req.Name)
	if err != nil || d.Topic == nil || d.Topic.ID != t.ID {
		return s.topicMetadata(ctx, t, nil), nil
	}
	d.Topic = t // the altered config, whatever the cache holds
	return s.topicMetadata(ctx, t, &d), nil
}

// DescribeCluster summarises the cluster, gathered afresh.
func (a *adminService) DescribeCluster(ctx context.Context, _ *skiffpb.DescribeClusterRequest) (*skiffpb.DescribeClusterResponse, error) {
	s := a.s
	cs := s.node.Status(ctx)
	resp := &skiffpb.DescribeClusterResponse{
		ControllerId:              cs.ControllerID,
		Topics:                    int32(cs.Topics),
		Partitions:                int32(cs.Partitions),
		UnderReplicatedPartitions: int32(cs.UnderReplicatedPartition),
		OfflinePartitions:         int32(cs.OfflinePartitions),
	}
	st := s.node.Metadata()
	for _, n := range cs.Nodes {
		addr := s.nodeAddrFor(ctx, n.ID, n.GRPCAddr)
		resp.Brokers = append(resp.Brokers, &skiffpb.Broker{Id: n.ID, GrpcAddr: addr, Rack: n.Rack, State: n.State, Mode: nodeMode(st.Mode(n.ID))})
	}
	if s.authz.enabled {
		// Count only the topics the principal may describe.
		resp.Topics, resp.Partitions = 0, 0
		for _, name := range s.authz.filterNames(ctx, acl.Topic, st.TopicNames()) {
			resp.Topics++
			resp.Partitions += int32(len(st.Topics[name].Partitions))
		}
	}
	return resp, nil
}

// topicsMetadata describes the named topics that exist (cached), a few
// at a time, in the order named.
func (s *Server) topicsMetadata(ctx context.Context, st *metadata.State, names []string) ([]*skiffpb.TopicMetadata, error) {
	out := make([]*skiffpb.TopicMetadata, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, describeConcurrency)
	var wg sync.WaitGroup
	for i, name := range names {
		t, ok := st.Topics[name]
		if !ok {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer s.recoverTo("describe topic", &errs[i])
			d, err := s.describeCached(ctx, name)
			switch {
			case err == nil && d.Topic != nil && d.Topic.ID == t.ID:
				out[i] = s.topicMetadata(ctx, t, &d)
			case err == nil || isUnknownTopic(err):
				// Deleted or recreated since st: report what st says.
				out[i] = s.topicMetadata(ctx, t, nil)
			default:
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	var topics []*skiffpb.TopicMetadata
	for i := range names {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if out[i] != nil {
			topics = append(topics, out[i])
		}
	}
	return topics, nil
}

// topicMetadata converts a topic, with its partitions' live state when d
// is given (else leaders are empty and offsets -1).
func (s *Server) topicMetadata(ctx context.Context, t *metadata.Topic, d *cluster.TopicDescription) *skiffpb.TopicMetadata {
	tm := &skiffpb.TopicMetadata{Name: t.Name, TopicId: t.ID, Configs: t.Config.Map(), Internal: t.Internal}
	for i, pa := range t.Partitions {
		pm := &skiffpb.PartitionMetadata{Partition: pa.Partition, Replicas: pa.Replicas, HighWatermark: -1, LogStartOffset: -1}
		if d != nil && i < len(d.Partitions) {
			info := d.Partitions[i]
			pm.LeaderId, pm.InSync = info.Leader, info.InSync
			pm.HighWatermark, pm.LogStartOffset = info.HighWatermark, info.LogStartOffset
			if info.Leader != "" {
				// A leader without the caller's listener is shown without
				// an address: the client waits, as for an election.
				pm.LeaderAddr, _ = s.brokerAddr(ctx, info.Leader)
			}
		}
		if t.Config.Compacted() {
			pm.DirtyRatio = -1
			if r, err := s.node.Replica(ctx, t.Name, pa.Partition); err == nil {
				if ratio, ok := r.DirtyRatio(); ok {
					pm.DirtyRatio = ratio
				}
			}
		}
		tm.Partitions = append(tm.Partitions, pm)
	}
	return tm
}

// brokers lists the registered brokers with their gossip state ("unknown"
// for one gossip has not seen).
func (s *Server) brokers(ctx context.Context, st *metadata.State, cs cluster.ClusterStatus) []*skiffpb.Broker {
	states := make(map[string]string, len(cs.Nodes))
	for _, n := range cs.Nodes {
		states[n.ID] = n.State
	}
	var out []*skiffpb.Broker
	for _, id := range st.BrokerIDs() {
		b := st.Brokers[id]
		state, ok := states[id]
		if !ok {
			state = "unknown"
		}
		addr, err := s.brokerAddr(ctx, id)
		if err != nil {
			continue // not reachable on the caller's listener
		}
		out = append(out, &skiffpb.Broker{Id: b.ID, GrpcAddr: addr, Rack: b.Rack, State: state})
	}
	return out
}

func isUnknownTopic(err error) bool { return errors.Is(err, metadata.ErrUnknownTopic) }

// Operations is what the day-2 admin RPCs need from a node beyond Node.
// *cluster.Node implements it; a Node without it (a test fake) answers
// them UNIMPLEMENTED.
type Operations interface {
	CreatePartitions(ctx context.Context, name string, total int) (*metadata.Topic, error)
	ReassignPartition(ctx context.Context, topic string, p int32, replicas []string) (*metadata.Topic, error)
	ListNodes(ctx context.Context) ([]cluster.NodeInfo, error)
	Decommission(ctx context.Context, id string) (cluster.NodeInfo, error)
	Recommission(ctx context.Context, id string) (cluster.NodeInfo, error)
	SetMaintenance(ctx context.Context, id string, on bool) (cluster.NodeInfo, error)
	Rebalance(ctx context.Context, dryRun bool) (cluster.RebalancePlan, error)
}

var _ Operations = (*cluster.Node)(nil)

func (s *Server) ops() (Operations, error) {
	if o, ok := s.node.(Operations); ok {
		return o, nil
	}
	return nil, status.Error(codes.Unimplemented, "this node does not serve cluster operations")
}

// CreatePartitions grows a topic (never shrinks it: INVALID_ARGUMENT says
// so). Internal topics keep the partition count the cluster chose.
func (a *adminService) CreatePartitions(ctx context.Context, req *skiffpb.CreatePartitionsRequest) (*skiffpb.TopicMetadata, error) {
	s := a.s
	if strings.HasPrefix(req.Name, metadata.InternalTopicPrefix) {
		return nil, &metadata.InternalTopicError{Topic: req.Name, Action: "add partitions to it"}
	}
	if err := validateTopic("name", req.Name); err != nil {
		return nil, err
	}
	ops, err := s.ops()
	if err != nil {
		return nil, err
	}
	t, err := ops.CreatePartitions(ctx, req.Name, int(req.Partitions))
	s.describes.forget(req.Name)
	if err != nil {
		return nil, err
	}
	return s.topicMetadata(ctx, t, nil), nil
}

// ReassignPartition moves one partition's replicas by hand.
func (a *adminService) ReassignPartition(ctx context.Context, req *skiffpb.ReassignPartitionRequest) (*skiffpb.TopicMetadata, error) {
	s := a.s
	if strings.HasPrefix(req.Topic, metadata.InternalTopicPrefix) {
		return nil, &metadata.InternalTopicError{Topic: req.Topic, Action: "reassign its partitions (the cluster places them)"}
	}
	if err := validateTopic("topic", req.Topic); err != nil {
		return nil, err
	}
	ops, err := s.ops()
	if err != nil {
		return nil, err
	}
	t, err := ops.ReassignPartition(ctx, req.Topic, req.Partition, req.Replicas)
	s.describes.forget(req.Topic)
	if err != nil {
		return nil, err
	}
	return s.topicMetadata(ctx, t, nil), nil
}

// ListNodes lists the registered nodes with their modes and load.
func (a *adminService) ListNodes(ctx context.Context, _ *skiffpb.ListNodesRequest) (*skiffpb.ListNodesResponse, error) {
	s := a.s
	ops, err := s.ops()
	if err != nil {
		return nil, err
	}
	nodes, err := ops.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.ListNodesResponse{}
	for _, ni := range nodes {
		resp.Nodes = append(resp.Nodes, s.nodeInfo(ctx, ni))
	}
	return resp, nil
}

// SetNodeMode decommissions, recommissions, or puts a node in or out of
// maintenance, and returns the node as it is then.
func (a *adminService) SetNodeMode(ctx context.Context, req *skiffpb.SetNodeModeRequest) (*skiffpb.NodeInfo, error) {
	s := a.s
	if req.Node == "" {
		return nil, &metadata.InvalidArgumentError{Field: "node", Reason: "required"}
	}
	ops, err := s.ops()
	if err != nil {
		return nil, err
	}
	var ni cluster.NodeInfo
	switch req.Change {
	case skiffpb.NodeModeChange_NODE_DECOMMISSION:
		ni, err = ops.Decommission(ctx, req.Node)
	case skiffpb.NodeModeChange_NODE_RECOMMISSION:
		ni, err = ops.Recommission(ctx, req.Node)
	case skiffpb.NodeModeChange_NODE_MAINTENANCE_ON:
		ni, err = ops.SetMaintenance(ctx, req.Node, true)
	case skiffpb.NodeModeChange_NODE_MAINTENANCE_OFF:
		ni, err = ops.SetMaintenance(ctx, req.Node, false)
	default:
		return nil, &metadata.InvalidArgumentError{Field: "change", Reason: fmt.Sprintf("%v: want decommission, recommission, maintenance on or off", req.Change)}
	}
	if err != nil {
		return nil, err
	}
	return s.nodeInfo(ctx, ni), nil
}

func (s *Server) nodeInfo(ctx context.Context, ni cluster.NodeInfo) *skiffpb.NodeInfo {
	addr := s.nodeAddrFor(ctx, ni.ID, ni.GRPCAddr)
	return &skiffpb.NodeInfo{Id: ni.ID, GrpcAddr: addr, Rack: ni.Rack, State: ni.State, Mode: ni.Mode,
		Maintenance: ni.Maintenance, Replicas: int32(ni.Replicas), Leaders: int32(ni.Leaders), Meta: ni.Meta, Blocked: ni.Blocked}
}

// nodeAddrFor is the address of node id to show the caller: the one
// advertised for the caller's listener. A node that has not registered
// yet is known only by its gossiped address, the default listener's, which
// is shown only to callers on that listener; a node without the caller's
// listener shows none, never another listener's address.
func (s *Server) nodeAddrFor(ctx context.Context, id, gossiped string) string {
	a, err := s.brokerAddr(ctx, id)
	if err != nil {
		return ""
	}
	if a != "" {
		return a
	}
	if l := listenerOf(ctx); l == "" || l == metadata.DefaultListener {
		return gossiped
	}
	return ""
}

// nodeMode names what operators asked of a node, for cluster status.
func nodeMode(m metadata.NodeMode) string {
	switch {
	case m.Decommission:
		return cluster.ModeDecommissioning
	case m.Maintenance:
		return cluster.ModeMaintenance
	case m.DiskDegraded:
		return cluster.ModeDegraded
	}
	return cluster.ModeActive
}

// Rebalance plans (and unless dry_run starts) a rebalance.
func (a *adminService) Rebalance(ctx context.Context, req *skiffpb.RebalanceRequest) (*skiffpb.RebalanceResponse, error) {
	ops, err := a.s.ops()
	if err != nil {
		return nil, err
	}
	plan, err := ops.Rebalance(ctx, req.DryRun)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.RebalanceResponse{Applying: plan.Applying}
	for _, m := range plan.Moves {
		resp.Moves = append(resp.Moves, &skiffpb.RebalanceMove{Topic: m.Topic, Partition: m.Partition, From: m.From, To: m.To, LeaderOnly: m.LeaderOnly})
	}
	return resp, nil
}

// diskFull refuses a write while this node's disk is (nearly) full (a
// Node without the check never refuses).
func (s *Server) diskFull() error {
	if d, ok := s.node.(interface{ DiskFull() error }); ok {
		return d.DiskFull()
	}
	return nil
}
