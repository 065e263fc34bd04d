package cluster

import (
	"context"
	"fmt"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/internal/acl"
)

// CreateACLs adds ACL bindings through the meta leader and returns how many
// were new. It returns once this node's metadata has them, so the next
// request this node authorizes sees them.
func (n *Node) CreateACLs(ctx context.Context, bindings []acl.Binding) (int64, error) {
	res, err := n.proposeMeta(ctx, metadata.CreateACLs{Bindings: bindings})
	if err != nil {
		return 0, err
	}
	return res.Count, n.waitMetaIndex(ctx, res.Index)
}

// DeleteACLs removes ACL bindings and returns how many were removed.
func (n *Node) DeleteACLs(ctx context.Context, bindings []acl.Binding) (int64, error) {
	res, err := n.proposeMeta(ctx, metadata.DeleteACLs{Bindings: bindings})
	if err != nil {
		return 0, err
	}
	return res.Count, n.waitMetaIndex(ctx, res.Index)
}

// waitMetaIndex waits until this node's metadata has applied index.
func (n *Node) waitMetaIndex(ctx context.Context, index uint64) error {
	for {
		changed := n.meta.fsm.Changed()
		if n.meta.fsm.State().Index >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for metadata index %d: %w", index, ctx.Err())
		case <-changed:
		}
	}
}
