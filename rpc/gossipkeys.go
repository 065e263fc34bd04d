package rpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/skiff-mq/skiff/cluster"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// gossipKeyer is what GossipKeys needs from the node. It is asserted at
// call time rather than added to Node so test fakes need not implement it;
// *cluster.Node does.
type gossipKeyer interface {
	GossipKeys(ctx context.Context, op cluster.GossipKeyOp, key string) (cluster.GossipKeysResult, error)
}

var _ gossipKeyer = (*cluster.Node)(nil)

var gossipKeyOps = map[skiffpb.GossipKeyOp]cluster.GossipKeyOp{
	skiffpb.GossipKeyOp_GOSSIP_KEY_OP_LIST:    cluster.GossipKeysList,
	skiffpb.GossipKeyOp_GOSSIP_KEY_OP_INSTALL: cluster.GossipKeyInstall,
	skiffpb.GossipKeyOp_GOSSIP_KEY_OP_USE:     cluster.GossipKeyUse,
	skiffpb.GossipKeyOp_GOSSIP_KEY_OP_REMOVE:  cluster.GossipKeyRemove,
}

// GossipKeys lists or rotates the gossip keys of every live node (see
// cluster.Node.GossipKeys). Per-node failures are in the response, not
// the status: the operation may have succeeded elsewhere.
func (a *adminService) GossipKeys(ctx context.Context, req *skiffpb.GossipKeysRequest) (*skiffpb.GossipKeysResponse, error) {
	k, ok := a.s.node.(gossipKeyer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server does not manage gossip keys")
	}
	op, ok := gossipKeyOps[req.Op]
	if !ok {
		return nil, invalid("op", "%v is not list, install, use or remove", req.Op)
	}
	res, err := k.GossipKeys(ctx, op, req.Key)
	if err != nil {
		return nil, err
	}
	resp := &skiffpb.GossipKeysResponse{Key: res.Key}
	for _, nk := range res.Nodes {
		resp.Nodes = append(resp.Nodes, &skiffpb.GossipKeyNode{NodeId: nk.Node, Keys: nk.Keys, Error: nk.Error})
	}
	return resp, nil
}
