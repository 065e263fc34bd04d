package rpc

import (
	"context"
	"time"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/partition"
)

// replica returns this node's replica of a partition. When the node hosts
// none, the *partition.NotLeaderError it returns names the leader as the
// cluster reports it (cached briefly), so the client can go straight there.
func (s *Server) replica(ctx context.Context, topic string, p int32) (*partition.Replica, error) {
	r, err := s.node.Replica(ctx, topic, p)
	if nl, ok := partition.IsNotLeader(err); ok && nl.LeaderID == "" {
		return nil, &partition.NotLeaderError{LeaderID: s.lookupLeader(ctx, topic, p)}
	}
	return r, err
}

// lookupLeader returns the id of the partition's leader, "" if unknown.
func (s *Server) lookupLeader(ctx context.Context, topic string, p int32) string {
	d, err := s.describeCached(ctx, topic)
	if err != nil || int(p) >= len(d.Partitions) {
		return ""
	}
	return d.Partitions[p].Leader
}

// describeCached is the node's DescribeTopic, remembered for
// MetadataCacheTTL (a fifth of it while a partition has no leader, so a
// finished election shows soon). Clients retry on NotLeader, so a stale
// leader costs one extra hop.
func (s *Server) describeCached(ctx context.Context, name string) (cluster.TopicDescription, error) {
	return s.describes.get(ctx, name, s.cfg.LookupTimeout, func(ctx context.Context) (cluster.TopicDescription, time.Duration, error) {
		d, err := s.node.DescribeTopic(ctx, name)
		ttl := s.cfg.MetadataCacheTTL
		for _, p := range d.Partitions {
			if p.Leader == "" {
				ttl /= 5
				break
			}
		}
		return d, ttl, err
	})
}

// statusCached is the node's Status, remembered like describeCached.
func (s *Server) statusCached(ctx context.Context) (cluster.ClusterStatus, error) {
	return s.statuses.get(ctx, "", s.cfg.LookupTimeout, func(ctx context.Context) (cluster.ClusterStatus, time.Duration, error) {
		return s.node.Status(ctx), s.cfg.MetadataCacheTTL, nil
	})
}

// leaderErr is the error for a request only the leader serves, sent to a
// replica r that does not lead.
func leaderErr(r *partition.Replica) error {
	id, _ := r.Leader()
	if id == r.ID() {
		// Elected, but its barrier has not committed yet.
		return partition.ErrNotReady
	}
	return &partition.NotLeaderError{LeaderID: id}
}
