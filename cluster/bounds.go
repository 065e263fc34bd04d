package cluster

import (
	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/partition"
)

// partitionBounds turns a topic's max.messages, max.bytes and
// overflow.policy into what its partition replicas enforce.
func partitionBounds(t *metadata.Topic) partition.Bounds {
	b := partition.Bounds{Topic: t.Name, MaxMessages: t.Config.MaxMessages, MaxBytes: t.Config.MaxBytes}
	if t.Config.Overflow() == metadata.OverflowDropOldest {
		b.Overflow = partition.OverflowDropOldest
	}
	return b
}
