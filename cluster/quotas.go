package cluster

import (
	"context"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// SetQuota sets a principal's quota through the meta leader. It returns once
// this node's metadata has it.
func (n *Node) SetQuota(ctx context.Context, principal string, q metadata.Quota) error {
	res, err := n.proposeMeta(ctx, metadata.SetQuota{Principal: principal, Quota: q})
	if err != nil {
		return err
	}
	return n.waitMetaIndex(ctx, res.Index)
}

// DeleteQuota removes a principal's quota (metadata.ErrUnknownQuota if it
// has none).
func (n *Node) DeleteQuota(ctx context.Context, principal string) error {
	res, err := n.proposeMeta(ctx, metadata.DeleteQuota{Principal: principal})
	if err != nil {
		return err
	}
	return n.waitMetaIndex(ctx, res.Index)
}
