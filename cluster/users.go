package cluster

import (
	"context"
	"fmt"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// UpsertUser records a user's credential (a hash: see
// metadata.NewCredential) through the meta leader and returns once this
// node's metadata has it, so that the caller's next call to this node
// authenticates with it.
func (n *Node) UpsertUser(ctx context.Context, cmd metadata.UpsertUser) error {
	res, err := n.proposeMeta(ctx, cmd)
	if err != nil {
		return err
	}
	return n.waitIndex(ctx, res.Index)
}

// DeleteUser removes a user through the meta leader and returns once this
// node's metadata no longer has it.
func (n *Node) DeleteUser(ctx context.Context, name string) error {
	res, err := n.proposeMeta(ctx, metadata.DeleteUser{Name: name})
	if err != nil {
		return err
	}
	return n.waitIndex(ctx, res.Index)
}

// waitIndex waits until this node's metadata has applied index.
func (n *Node) waitIndex(ctx context.Context, index uint64) error {
	for {
		ch := n.meta.fsm.Changed()
		if n.meta.fsm.State().Index >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for metadata index %d: %w", index, ctx.Err())
		case <-n.stop:
			return fmt.Errorf("waiting for metadata index %d: node is shutting down", index)
		}
	}
}
