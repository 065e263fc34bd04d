package rpc

import (
	"context"
	"time"

	"github.com/skiff-mq/skiff/cluster/metadata"
	"github.com/skiff-mq/skiff/partition"
	"github.com/skiff-mq/skiff/rpc/skiffpb"
)

// producerService serves skiff.v1.Producer.
type producerService struct {
	skiffpb.UnimplementedProducerServer
	s *Server
}

var _ skiffpb.ProducerServer = (*producerService)(nil)

// Produce writes one batch (or plain records) to a partition's leader.
func (p *producerService) Produce(ctx context.Context, req *skiffpb.ProduceRequest) (*skiffpb.ProduceResponse, error) {
	return p.s.produce(ctx, req)
}

// ProduceStream: see produceStream.
func (p *producerService) ProduceStream(stream skiffpb.Producer_ProduceStreamServer) error {
	return p.s.produceStream(stream)
}

// InitProducerId hands out a new producer id, epoch 0.
func (p *producerService) InitProducerId(ctx context.Context, _ *skiffpb.InitProducerIdRequest) (*skiffpb.InitProducerIdResponse, error) {
	id, err := p.s.node.AllocateProducerID(ctx)
	if err != nil {
		return nil, err
	}
	return &skiffpb.InitProducerIdResponse{ProducerId: id, ProducerEpoch: 0}, nil
}

// produce validates a request and writes its batch: the body of Produce.
// Nothing reaches Raft unless the whole request is valid. With ACKS_NONE it
// returns once the batch is queued (offsets -1); the write's outcome is only
// logged.
func (s *Server) produce(ctx context.Context, req *skiffpb.ProduceRequest) (*skiffpb.ProduceResponse, error) {
	return s.startProduce(ctx, req)(ctx)
}

// produceWaiter returns a started produce's response.
type produceWaiter func(ctx context.Context) (*skiffpb.ProduceResponse, error)

// startProduce validates a request and hands its batch to Raft, returning
// as soon as it is queued; the waiter returns the outcome. Requests started
// one after another for a partition are committed in that order, which
// lets ProduceStream keep many batches of one partition in flight.
func (s *Server) startProduce(ctx context.Context, req *skiffpb.ProduceRequest) produceWaiter {
	fail := func(err error) produceWaiter {
		return func(context.Context) (*skiffpb.ProduceResponse, error) { return nil, err }
	}
	t, err := lookupPartition(s.node.MetadataWithTopic(ctx, req.Topic), req.Topic, req.Partition)
	if err != nil {
		return fail(err)
	}
	if metadata.IsInternalTopic(t) {
		return fail(&metadata.InternalTopicError{Topic: t.Name, Action: "produce to it"})
	}
	if req.Acks != skiffpb.Acks_ACKS_ALL && req.Acks != skiffpb.Acks_ACKS_NONE {
		return fail(invalid("acks", "unknown value %d", req.Acks))
	}
	limit := t.Config.MaxMessageBytes
	batch, err := requestBatch(req, limit, time.Now())
	if err != nil {
		return fail(err)
	}
	if err := s.checkProducerID(ctx, batch); err != nil {
		return fail(err)
	}
	r, err := s.replica(ctx, req.Topic, req.Partition)
	if err != nil {
		return fail(err)
	}
	if err := s.diskFull(); err != nil {
		return fail(err)
	}
	resp := &skiffpb.ProduceResponse{Topic: req.Topic, Partition: req.Partition, CorrelationId: req.CorrelationId}
	if req.Acks == skiffpb.Acks_ACKS_NONE {
		// Redirect now, while the client still listens.
		if !r.IsLeader() {
			return fail(leaderErr(r))
		}
		if err := s.handOff(ctx, partKey{req.Topic, req.Partition}, r, batch, limit); err != nil {
			return fail(err)
		}
		resp.BaseOffset, resp.LastOffset = -1, -1
		return func(context.Context) (*skiffpb.ProduceResponse, error) { return resp, nil }
	}
	pending := r.ProduceAsync(ctx, batch, limit)
	return func(ctx context.Context) (*skiffpb.ProduceResponse, error) {
		res, err := pending.Wait(ctx)
		if err != nil {
			return nil, err
		}
		s.metrics.produced(req.Topic, batch)
		resp.BaseOffset, resp.LastOffset = res.BaseOffset, res.LastOffset
		resp.LeaderEpoch, resp.Duplicate = res.LeaderEpoch, res.Duplicate
		return resp, nil
	}
}

// handOff queues an ACKS_NONE batch and returns once it is queued (waiting
// for room while AsyncProduceLimit batches are pending). Batches of a
// partition are written in hand-off order.
func (s *Server) handOff(ctx context.Context, k partKey, r *partition.Replica, batch []byte, limit int) error {
	select {
	case s.asyncSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.metrics.asyncPending.Inc()
	s.metrics.produced(k.topic, batch)
	s.async.submit(k, func() {
		defer func() {
			<-s.asyncSlots
			s.metrics.asyncPending.Dec()
		}()
		var err error
		func() {
			defer s.recoverTo("async produce", &err)
			pctx, cancel := context.WithTimeout(s.asyncCtx, s.cfg.AsyncProduceTimeout)
			defer cancel()
			_, err = r.Produce(pctx, batch, limit)
		}()
		if err != nil {
			s.metrics.asyncErrors.Inc()
			s.logger.Warn("ACKS_NONE batch failed after its request was answered",
				"topic", k.topic, "partition", k.partition, "bytes", len(batch), "error", err)
		}
	})
	return nil
}
