package cluster

import (
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/partition"
)

// partitionBounds turns a topic's max.messages, max.bytes and
// overflow.policy into what its partition replicas enforce.
func partitionBounds(t *metadata.Topic) partition.Bounds {
	b := partition.Bounds{Topic: t.Name, MaxMessages: t.Config.MaxMessages, MaxBytes: t.Config.MaxBytes}
	switch t.Config.Overflow() {
	case metadata.OverflowDropOldest:
		b.Overflow = partition.OverflowDropOldest
	case metadata.OverflowRejectUnacked:
		b.Overflow = partition.OverflowRejectUnacked
	}
	return b
}

// partitionCompaction turns a topic's cleanup.policy and compaction
// settings into its replicas' compaction rules.
func partitionCompaction(t *metadata.Topic) partition.Compaction {
	c := t.Config
	return partition.Compaction{
		Enabled:         c.Compacted() && !metadata.IsInternalTopic(t),
		DeleteRetention: c.DeleteRetention(),
		MinLag:          c.MinCompactionLag(),
		MaxLag:          c.MaxCompactionLag(),
		MinDirtyRatio:   c.DirtyRatio(),
	}
}

// applyTopicRules gives a replica its topic's bounds and compaction rules.
func applyTopicRules(r *partition.Replica, t *metadata.Topic) error {
	if err := r.SetBounds(partitionBounds(t)); err != nil {
		return err
	}
	return r.SetCompaction(partitionCompaction(t))
}
