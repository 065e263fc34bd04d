package client

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// transport is what producers and consumers need from the cluster: where
// partitions live, and the data-path calls to one broker. The Client
// implements it over gRPC; unit tests substitute a scripted fake, the way
// franz-go tests against kfake. Errors are already converted by
// fromStatus.
type transport interface {
	// partitionCount is the topic's partition count; an unknown topic is
	// errTopicGone.
	partitionCount(ctx context.Context, topic string) (int, error)
	// leaderAddr is the address to send the partition's requests to; with
	// anyReplica, a replica when no leader is known.
	leaderAddr(ctx context.Context, topic string, partition int32, anyReplica bool) (string, error)
	// learn feeds a failed request's error back into the metadata.
	learn(topic string, partition int32, err error)

	initProducerID(ctx context.Context) (id int64, epoch int16, err error)
	// produce puts req on the wire to addr and returns; wait blocks for
	// the answer (or ctx). Requests to one address are delivered and
	// handled in the order produce was called, which keeps a partition's
	// batches in sequence order with several in flight.
	produce(ctx context.Context, addr string, req *skiffpb.ProduceRequest) (wait func() (*skiffpb.ProduceResponse, error))
	fetch(ctx context.Context, addr string, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error)
	listOffsets(ctx context.Context, addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error)
}

// grpcTransport is the Client's transport.
type grpcTransport struct{ c *Client }

var _ transport = grpcTransport{}

func (t grpcTransport) partitionCount(ctx context.Context, topic string) (int, error) {
	return t.c.meta.partitionCount(ctx, topic)
}

func (t grpcTransport) leaderAddr(ctx context.Context, topic string, partition int32, anyReplica bool) (string, error) {
	return t.c.meta.leader(ctx, topic, partition, anyReplica)
}

func (t grpcTransport) learn(topic string, partition int32, err error) {
	t.c.meta.learn(topic, partition, err)
}

func (t grpcTransport) initProducerID(ctx context.Context) (int64, int16, error) {
	var resp *skiffpb.InitProducerIdResponse
	err := t.c.anyBroker(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = skiffpb.NewProducerClient(cc).InitProducerId(ctx, &skiffpb.InitProducerIdRequest{})
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("init producer id: %w", err)
	}
	if resp.GetProducerId() < 0 || resp.GetProducerEpoch() < 0 || resp.GetProducerEpoch() > 1<<15-1 {
		return 0, 0, fmt.Errorf("init producer id: broker returned id %d epoch %d: %w",
			resp.GetProducerId(), resp.GetProducerEpoch(), ErrRejected)
	}
	return resp.GetProducerId(), int16(resp.GetProducerEpoch()), nil
}

// produce sends the batch on the broker's ProduceStream (see
// produceStreams for why not unary Produce).
func (t grpcTransport) produce(ctx context.Context, addr string, req *skiffpb.ProduceRequest) func() (*skiffpb.ProduceResponse, error) {
	wait := t.c.streams.produce(ctx, addr, req)
	return func() (*skiffpb.ProduceResponse, error) {
		resp, err := wait()
		t.c.observe(addr, err)
		return resp, err
	}
}

func (t grpcTransport) fetch(ctx context.Context, addr string, req *skiffpb.FetchRequest) (*skiffpb.FetchResponse, error) {
	cc, err := t.c.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := skiffpb.NewConsumerClient(cc).Fetch(ctx, req)
	err = fromStatus(err)
	t.c.observe(addr, err)
	return resp, err
}

func (t grpcTransport) listOffsets(ctx context.Context, addr string, req *skiffpb.ListOffsetsRequest) (*skiffpb.ListOffsetsResponse, error) {
	cc, err := t.c.conn(addr)
	if err != nil {
		return nil, err
	}
	resp, err := skiffpb.NewConsumerClient(cc).ListOffsets(ctx, req)
	err = fromStatus(err)
	t.c.observe(addr, err)
	return resp, err
}
