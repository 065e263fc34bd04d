package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/cluster/placement"
	"github.com/skiff-mq/skiff/consumergroup"
	"github.com/skiff-mq/skiff/log"
	"github.com/skiff-mq/skiff/partition"
)

// Groups returns the node's consumer group coordinator.
func (n *Node) Groups() *consumergroup.Coordinator { return n.groups }

// GroupCoordinator returns the id of the node leading group's offsets
// partition, "" with consumergroup.ErrCoordinatorUnavailable while the
// offsets topic does not exist or that partition has no leader yet.
func (n *Node) GroupCoordinator(ctx context.Context, group string) (string, error) {
	st := n.meta.fsm.State()
	t, ok := st.Topics[consumergroup.OffsetsTopic]
	if !ok || len(t.Partitions) == 0 {
		n.requestOffsetsTopic()
		return "", consumergroup.ErrCoordinatorUnavailable
	}
	p := consumergroup.PartitionFor(group, int32(len(t.Partitions)))
	if r, _, ok := n.replicas.get(consumergroup.OffsetsTopic, p); ok {
		if r.IsLeader() {
			return n.id, nil
		}
		if id, _ := r.Leader(); id != "" {
			return id, nil
		}
	}
	for _, ps := range n.gatherPartitionStatus(ctx, st) {
		if ps.Topic == consumergroup.OffsetsTopic && ps.Partition == p && ps.State == "Leader" {
			return ps.Node, nil
		}
	}
	return "", consumergroup.ErrCoordinatorUnavailable
}

// requestOffsetsTopic has the controller create __consumer_offsets, in the
// background, the first time a client looks for a group coordinator (as
// Kafka does): clusters that never use groups carry no offsets partitions.
func (n *Node) requestOffsetsTopic() {
	select {
	case <-n.stop:
		return
	default:
	}
	if !n.creatingOffsets.CompareAndSwap(false, true) {
		return
	}
	n.goLoop(func() {
		defer n.creatingOffsets.Store(false)
		ctx, cancel := n.stopContext()
		defer cancel()
		ctx, cancelT := context.WithTimeout(ctx, 10*time.Second)
		defer cancelT()
		n.ensureOffsetsTopic(ctx)
	})
}

// ensureOffsetsTopic creates __consumer_offsets once enough brokers have
// registered for its replication factor. The meta leader (the controller)
// applies the creation.
func (n *Node) ensureOffsetsTopic(ctx context.Context) {
	st := n.meta.fsm.State()
	if _, ok := st.Topics[consumergroup.OffsetsTopic]; ok {
		return
	}
	nodes := n.placeableNodes(st)
	want := min(n.cfg.OffsetsReplicationFactor, max(n.cfg.BootstrapExpect, 1))
	if len(nodes) < want {
		return
	}
	rf := min(n.cfg.OffsetsReplicationFactor, len(nodes))
	cfg := metadata.DefaultTopicConfig()
	// The coordinator compacts this log itself (checkpoints), so neither
	// age nor size may delete from it; small segments let the prefix a
	// checkpoint supersedes go soon.
	cfg.RetentionMs, cfg.RetentionBytes, cfg.SegmentBytes = -1, -1, 8<<20
	cfg.Durability = partition.DurabilityFsync.String()
	assign, err := placement.AssignTopic(nodes, st.Load(), n.cfg.OffsetsPartitions, rf)
	if err != nil {
		n.logger.Warn("place offsets topic", "error", err)
		return
	}
	parts := make([]metadata.PartitionAssignment, len(assign))
	for i, replicas := range assign {
		parts[i] = metadata.PartitionAssignment{Partition: int32(i), Replicas: replicas}
	}
	_, err = n.proposeMeta(ctx, metadata.CreateTopic{Name: consumergroup.OffsetsTopic, Config: cfg, Partitions: parts, Internal: true})
	if err != nil && !errors.Is(err, metadata.ErrTopicExists) {
		n.logger.Warn("create offsets topic", "error", err)
		return
	}
	n.logger.Info("created the offsets topic", "partitions", len(parts), "replication_factor", rf)
}

// groupHost adapts the node to consumergroup.Host.
type groupHost struct{ n *Node }

func (h groupHost) OffsetsLogs() (map[int32]consumergroup.Log, int32) {
	st := h.n.meta.fsm.State()
	t, ok := st.Topics[consumergroup.OffsetsTopic]
	if !ok {
		return nil, 0
	}
	out := map[int32]consumergroup.Log{}
	for key, r := range h.n.replicas.all() {
		if key.Topic == consumergroup.OffsetsTopic && key.TopicID == t.ID {
			out[key.Partition] = offsetsLog{r}
		}
	}
	return out, int32(len(t.Partitions))
}

func (h groupHost) Topics() map[string]int32 {
	st := h.n.meta.fsm.State()
	out := make(map[string]int32, len(st.Topics))
	for name, t := range st.Topics {
		if !t.Internal {
			out[name] = int32(len(t.Partitions))
		}
	}
	return out
}

func (h groupHost) HighWatermarks(ctx context.Context, tps []consumergroup.TopicPartition) map[consumergroup.TopicPartition]int64 {
	want := make(map[consumergroup.TopicPartition]bool, len(tps))
	for _, tp := range tps {
		want[tp] = true
	}
	out := map[consumergroup.TopicPartition]int64{}
	for _, ps := range h.n.gatherPartitionStatus(ctx, h.n.meta.fsm.State()) {
		tp := consumergroup.TopicPartition{Topic: ps.Topic, Partition: ps.Partition}
		if ps.State == "Leader" && (want[tp] || len(tps) == 0) {
			out[tp] = ps.HighWatermark
		}
	}
	return out
}

func (h groupHost) ReadPartition(ctx context.Context, topic string, p int32, offset int64, maxBytes int) (consumergroup.ReadResult, error) {
	return h.n.ReadPartition(ctx, topic, p, offset, maxBytes)
}

func (h groupHost) ProducePartition(ctx context.Context, topic string, p int32, batch []byte) (int64, error) {
	// Groups write only dead letters and redriven records, to user topics;
	// a record of theirs in an internal topic would be replayed as cluster
	// state (the coordinator refuses too: belt and braces).
	if strings.HasPrefix(topic, metadata.InternalTopicPrefix) {
		return 0, &metadata.InternalTopicError{Topic: topic, Action: "have groups write to it"}
	}
	return h.n.ProducePartition(ctx, topic, p, batch)
}

func (h groupHost) ReportShareProgress(reports []consumergroup.ShareProgress) {
	h.n.shareProgress.offer(reports, time.Now())
}

func (h groupHost) EnsureTopic(ctx context.Context, name string, partitions int32) error {
	return h.n.EnsureTopic(ctx, name, partitions)
}

// offsetsLog adapts a partition replica to consumergroup.Log.
type offsetsLog struct{ r *partition.Replica }

func (l offsetsLog) Append(ctx context.Context, batch []byte) (int64, error) {
	res, err := l.r.Produce(ctx, batch, 0)
	if err != nil {
		return 0, offsetsLogError(err)
	}
	return res.BaseOffset, nil
}

func (l offsetsLog) AppendAsync(ctx context.Context, batch []byte) (func(context.Context) (int64, error), error) {
	pending := l.r.ProduceInOrder(ctx, batch)
	if err := pending.Err(); err != nil {
		return nil, offsetsLogError(err)
	}
	return func(ctx context.Context) (int64, error) {
		res, err := pending.Wait(ctx)
		if err != nil {
			return 0, offsetsLogError(err)
		}
		return res.BaseOffset, nil
	}, nil
}

// offsetsLogError turns "not the leader" into ErrNotCoordinator.
func offsetsLogError(err error) error {
	var nl *partition.NotLeaderError
	if errors.As(err, &nl) || errors.Is(err, partition.ErrNotReady) {
		return consumergroup.ErrNotCoordinator
	}
	return err
}

func (l offsetsLog) Read(ctx context.Context, offset int64, maxWait time.Duration) (consumergroup.ReadResult, error) {
	res, err := l.r.Fetch(ctx, partition.FetchRequest{Offset: offset, MaxBytes: 1 << 20, MaxWait: maxWait, AllowFollower: true})
	var oor *log.OffsetOutOfRangeError
	if errors.As(err, &oor) {
		return consumergroup.ReadResult{Start: oor.Start, End: oor.End}, nil
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return consumergroup.ReadResult{}, err
	}
	return consumergroup.ReadResult{Batches: res.Batches, Start: res.LogStartOffset, End: res.HighWatermark}, nil
}

func (l offsetsLog) HighWatermark() int64 {
	_, hw := l.r.Offsets()
	return hw
}

func (l offsetsLog) LeaderTerm() (uint64, bool) { return l.r.LeaderTerm() }

func (l offsetsLog) DeleteBefore(offset int64) error { return l.r.DeleteBefore(offset) }
