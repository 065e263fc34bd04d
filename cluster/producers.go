package cluster

import (
	"context"

	"github.com/skiff-mq/skiff/cluster/metadata"
)

// AllocateProducerID hands out a producer id no other producer of the
// cluster has or will get (blocks are recorded in the meta group).
func (n *Node) AllocateProducerID(ctx context.Context) (int64, error) {
	res, err := n.proposeMeta(ctx, metadata.AllocateProducerIDs{Count: 1})
	if err != nil {
		return 0, err
	}
	return res.FirstProducerID, nil
}

// BrokerGRPCAddr returns the client address of a broker, "" if unknown.
func (n *Node) BrokerGRPCAddr(id string) string {
	return n.meta.fsm.State().Brokers[id].GRPCAddr
}
