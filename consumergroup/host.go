package consumergroup

import (
	"context"
	"time"
)

// Log is this node's replica of one offsets partition.
type Log interface {
	// Append replicates batch and returns once it is committed, with the
	// offset of its first record. Only the leader may append.
	Append(ctx context.Context, batch []byte) (baseOffset int64, err error)
	// AppendAsync hands batch to replication and returns without waiting
	// for it to commit; wait returns what Append would. Batches handed
	// over one after the other from one goroutine enter the log in that
	// order. err says the batch never reached the log (wait is nil then);
	// a batch handed over after it could still get in, so a caller whose
	// later batches depend on it must stop there. ctx bounds the append
	// as it bounds Append.
	AppendAsync(ctx context.Context, batch []byte) (wait func(ctx context.Context) (baseOffset int64, err error), err error)
	// Read returns committed batches from offset on (a follower's too),
	// waiting up to maxWait at the end of the log. When offset is below the
	// log start it returns no batches and the bounds.
	Read(ctx context.Context, offset int64, maxWait time.Duration) (ReadResult, error)
	// HighWatermark is the offset after the last committed record this
	// replica holds.
	HighWatermark() int64
	// LeaderTerm returns the Raft term in which this replica leads and has
	// caught up; ok is false when it does not lead.
	LeaderTerm() (term uint64, ok bool)
	// DeleteBefore deletes whole segments holding only offsets below
	// offset.
	DeleteBefore(offset int64) error
}

// ReadResult is what Log.Read returns.
type ReadResult struct {
	Batches []byte
	Start   int64 // log start offset
	End     int64 // high watermark
}

// Host is the coordinator's view of the node and cluster around it.
type Host interface {
	// OffsetsLogs returns this node's replicas of the offsets topic by
	// partition, and the topic's partition count (0 until it exists).
	OffsetsLogs() (logs map[int32]Log, partitions int32)
	// Topics returns the user topics and their partition counts.
	Topics() map[string]int32
	// HighWatermarks returns the high watermarks of partitions as their
	// leaders report them (of every partition when tps is empty); unknown
	// ones are missing.
	HighWatermarks(ctx context.Context, tps []TopicPartition) map[TopicPartition]int64

	// ReadPartition reads committed batches of a user topic's partition
	// from offset on, from any replica (this node's, or another node's).
	// Below the log start it returns no batches and the bounds.
	ReadPartition(ctx context.Context, topic string, partition int32, offset int64, maxBytes int) (ReadResult, error)
	// ProducePartition appends a batch to a partition through its leader
	// and returns the offset of its first record.
	ProducePartition(ctx context.Context, topic string, partition int32, batch []byte) (int64, error)
	// EnsureTopic creates a topic with the given partitions unless it
	// exists, and waits until its partitions have leaders.
	EnsureTopic(ctx context.Context, name string, partitions int32) error
	// ReportShareProgress hands the share groups' progress through user
	// topics' partitions to the partitions' replicas, which bound
	// producers with it (overflow.policy reject-unacked). It must not
	// block: the host delivers the newest reports in the background.
	ReportShareProgress(reports []ShareProgress)
}

// ShareProgress is how far a share group has got through a partition:
// every record below Floor is done, and Done more at or above it. Epoch
// (the coordinator's leader term) and Seq order one group's reports.
type ShareProgress struct {
	Group string
	TopicPartition
	Floor, Done int64
	Epoch, Seq  uint64
}
